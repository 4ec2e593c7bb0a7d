"""Person-disjoint train/val/test splits and the forget/retain split of train.

:func:`make_splits` assigns whole persons, never single images:

* ``val_fraction`` and ``test_fraction`` are fractions of the *persons*
  (rounded, at least one person each); since persons have different numbers
  of images, the share of images is only approximately the same;
* persons are stratified by age group (a person's group is the most common
  ``age_group`` of their images): the persons are ordered by group and,
  within a group, at random, and val and test take evenly spaced positions
  of that order (systematic sampling with a random start), so every split
  gets each group in proportion, and every group with enough persons
  (about ``1 / fraction``) appears in every split;
* forget: whole train persons, taken in a random order until their images
  come closest to ``forget_fraction`` of the train images (at least one
  person, never all train persons); retain is the rest of train.

Every index array is sorted int64; the result depends only on the dataset's
labels and ``cfg.seed``.

Layouts that come with their own split (the 2023 Kaggle files) do not go
through :func:`make_splits`: :func:`unlearning_challenge.data.adapters.build_dataset_and_splits`
returns the layout's split instead (see :mod:`unlearning_challenge.data.adapters`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unlearning_challenge.config import SplitConfig
from unlearning_challenge.data.dataset import NUM_AGE_GROUPS, DataError, FaceDataset, Splits

MIN_PERSONS = 4  # one for val, one for test, two for train (forget must leave retain non-empty)


def check_split_config(cfg: SplitConfig) -> None:
    """Raise :class:`DataError` for fractions no split can meet."""
    for key in ("val_fraction", "test_fraction", "forget_fraction"):
        value = getattr(cfg, key)
        if not 0 < value < 1:
            raise DataError(f"split: {key} must be in (0, 1), got {value}")
    if cfg.val_fraction + cfg.test_fraction >= 1:
        raise DataError(
            f"split: val_fraction + test_fraction must be below 1 (train needs persons), "
            f"got {cfg.val_fraction} + {cfg.test_fraction} = {cfg.val_fraction + cfg.test_fraction:g}"
        )


def person_groups(dataset: FaceDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(persons, group, num_images)``: sorted person ids, each one's age group
    (the most common among their images, the lowest on ties) and image count."""
    persons, inverse, counts = np.unique(dataset.person_id, return_inverse=True, return_counts=True)
    table = np.zeros((len(persons), NUM_AGE_GROUPS), dtype=np.int64)
    np.add.at(table, (inverse, dataset.age_group), 1)
    return persons, table.argmax(axis=1).astype(np.int64), counts.astype(np.int64)


def _systematic(rng: np.random.Generator, n_items: int, n_pick: int) -> np.ndarray:
    """``n_pick`` evenly spaced distinct positions in ``0..n_items-1`` with a random start."""
    start = rng.random()
    return np.floor((np.arange(n_pick) + start) * (n_items / n_pick)).astype(np.int64)


def _indices(dataset: FaceDataset, chosen_persons: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(dataset.person_id, chosen_persons)).astype(np.int64)


def choose_forget_persons(
    rng: np.random.Generator, persons: np.ndarray, num_images: np.ndarray, fraction: float
) -> np.ndarray:
    """Whole persons (a random prefix of a random order) whose images come closest
    to ``fraction`` of all images; at least one person, never all (unless only one)."""
    if len(persons) < 2:
        raise DataError(f"split: need at least 2 train persons to choose a forget set, got {len(persons)}")
    order = rng.permutation(len(persons))
    cum = np.cumsum(num_images[order])
    target = fraction * num_images.sum()
    k_max = len(persons) - 1
    k = int(np.argmin(np.abs(cum[:k_max] - target))) + 1  # ties: the smaller prefix
    return np.sort(persons[order[:k]])


def make_splits(dataset: FaceDataset, cfg: SplitConfig) -> Splits:
    """Split ``dataset`` by person into train/val/test, and train into retain/forget (see the module doc)."""
    check_split_config(cfg)
    persons, groups, counts = person_groups(dataset)
    n = len(persons)
    if n < MIN_PERSONS:
        raise DataError(
            f"split: the dataset has {n} person(s); at least {MIN_PERSONS} are needed "
            "(one each for val and test, two for train)"
        )
    n_val = max(1, int(round(cfg.val_fraction * n)))
    n_test = max(1, int(round(cfg.test_fraction * n)))
    if n - n_val - n_test < 2:
        raise DataError(
            f"split: with {n} persons, val_fraction={cfg.val_fraction} and test_fraction={cfg.test_fraction} "
            f"give {n_val} val and {n_test} test persons, leaving {n - n_val - n_test} for train (at least 2 needed)"
        )
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    # stratified order: by group, random within a group
    order = np.lexsort((rng.random(n), groups))
    val_pos = _systematic(rng, n, n_val)
    rest = np.delete(order, val_pos)
    test_pos = _systematic(rng, len(rest), n_test)
    val_p = persons[order[val_pos]]
    test_p = persons[rest[test_pos]]
    train_mask = np.ones(n, dtype=bool)
    train_mask[order[val_pos]] = False
    train_mask[rest[test_pos]] = False
    train_p, train_counts = persons[train_mask], counts[train_mask]
    forget_p = choose_forget_persons(rng, train_p, train_counts, cfg.forget_fraction)
    retain_p = np.setdiff1d(train_p, forget_p)
    return Splits(
        train=_indices(dataset, train_p),
        val=_indices(dataset, val_p),
        test=_indices(dataset, test_p),
        retain=_indices(dataset, retain_p),
        forget=_indices(dataset, forget_p),
    )


def check_splits(dataset: FaceDataset, splits: Splits, *, person_disjoint: bool = True) -> None:
    """Raise :class:`DataError` unless ``splits`` keeps the rules of :class:`Splits`:
    sorted unique int64 indices in range, train/val/test disjoint and (unless
    ``person_disjoint`` is false) without shared persons, train = retain + forget
    (disjoint), forget holds every train image of its persons, none empty."""
    n = len(dataset)
    for name, idx in splits.as_dict().items():
        idx = np.asarray(idx)
        if idx.dtype != np.int64 or idx.ndim != 1:
            raise DataError(f"split '{name}' must be a 1-d int64 array, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"split '{name}' has indices outside 0..{n - 1}")
        if np.any(np.diff(idx) <= 0):
            raise DataError(f"split '{name}' must be sorted without repeats")
        if not len(idx):
            raise DataError(f"split '{name}' is empty")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if len(np.intersect1d(getattr(splits, a), getattr(splits, b))):
            raise DataError(f"splits '{a}' and '{b}' share images")
    owners = {name: set(dataset.person_id[getattr(splits, name)].tolist()) for name in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = owners[a] & owners[b]
        if shared and person_disjoint:
            raise DataError(f"splits '{a}' and '{b}' share person(s) {sorted(shared)[:5]}")
    if not np.array_equal(np.union1d(splits.retain, splits.forget), splits.train) or len(
        np.intersect1d(splits.retain, splits.forget)
    ):
        raise DataError("split 'train' must be the disjoint union of 'retain' and 'forget'")
    forget_persons = np.unique(dataset.person_id[splits.forget])
    whole = np.intersect1d(_indices(dataset, forget_persons), splits.train)
    if not np.array_equal(whole, splits.forget):
        raise DataError("split 'forget' must hold every train image of its persons")


@dataclass(frozen=True)
class EvaluationSamples:
    """Dataset indices (sorted int64) of the retain and validation examples whose logits
    every reference and unlearned model keeps: ``retain`` ``[R]``, ``validation`` ``[V]``."""

    retain: np.ndarray
    validation: np.ndarray


def evaluation_samples(splits: Splits, size: int, seed: int) -> EvaluationSamples:
    """``size`` retain and ``size`` validation examples (all of a smaller split), drawn without
    replacement; they depend only on the split, ``size`` and ``seed``."""
    rng = np.random.Generator(np.random.PCG64([seed, 0x5A4D]))

    def draw(split: np.ndarray) -> np.ndarray:
        k = min(size, len(split))
        return np.sort(rng.choice(split, size=k, replace=False)).astype(np.int64)

    return EvaluationSamples(retain=draw(splits.retain), validation=draw(splits.val))
