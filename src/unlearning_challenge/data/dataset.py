"""The in-memory face-age dataset, its split, their npz file and the loaders.

Batches are dicts, as in the 2023 Kaggle edition (keys in its order): ``image``
float32 ``[B, 3, H, W]`` with values 0-255, ``image_id`` int64 ``[B]``,
``age_group`` int64 ``[B]``, ``age`` int64 ``[B]``, ``person_id`` int64 ``[B]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from unlearning_challenge.atomic import write_npz

NUM_AGE_GROUPS = 10
BATCH_KEYS = ("image", "image_id", "age_group", "age", "person_id")  # the 2023 Kaggle loaders' order
SPLIT_NAMES = ("train", "val", "test", "retain", "forget")
DATASET_FORMAT_VERSION = 1


class DataError(ValueError):
    """A dataset or split file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class FaceDataset:
    """All images of one phase.

    images: uint8 ``[n, 3, H, W]``; age_group: int64 ``[n]`` in 0..9;
    age: int64 ``[n]`` in years; person_id: int64 ``[n]``; image_id: int64
    ``[n]``, unique.
    """

    images: np.ndarray
    age_group: np.ndarray
    age: np.ndarray
    person_id: np.ndarray
    image_id: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"images must be uint8 [n, 3, H, W], got {self.images.dtype} {self.images.shape}")
        for name in ("age_group", "age", "person_id", "image_id"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise DataError(f"{name} must have shape ({n},), got {arr.shape}")
        if n and (self.age_group.min() < 0 or self.age_group.max() >= NUM_AGE_GROUPS):
            raise DataError(f"age_group values must be in 0..{NUM_AGE_GROUPS - 1}")
        if len(np.unique(self.image_id)) != n:
            raise DataError("image_id values must be unique")

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class Splits:
    """Index arrays (int64, into the dataset) of each split.

    train = retain + forget (disjoint); train, val, test are disjoint and
    never share a person; forget holds whole persons.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    retain: np.ndarray
    forget: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}


def split_fingerprint(dataset: FaceDataset, splits: Splits) -> str:
    """sha256 over the images, labels, ids and split indices: two sides agree
    on it only when they use the very same data and split."""
    h = hashlib.sha256()
    for arr in (dataset.images, dataset.age_group, dataset.age, dataset.person_id, dataset.image_id):
        h.update(np.ascontiguousarray(arr).tobytes())
    for name in SPLIT_NAMES:
        h.update(name.encode())
        h.update(np.ascontiguousarray(getattr(splits, name), dtype=np.int64).tobytes())
    return h.hexdigest()


def save_dataset(path: str | Path, dataset: FaceDataset, splits: Splits, only: tuple[str, ...] | None = None) -> None:
    """Write the dataset and its splits to one npz file (atomically).

    ``only`` keeps just the images of the named splits (the others' indices are
    kept, their images are zeroed), e.g. to hand a worker retain/forget/val
    without the test set.
    """
    images = dataset.images
    if only is not None:
        keep = np.zeros(len(dataset), dtype=bool)
        for name in only:
            keep[getattr(splits, name)] = True
        images = np.where(keep[:, None, None, None], images, 0).astype(np.uint8)
    arrays = {
        "format_version": np.array(DATASET_FORMAT_VERSION),
        "images": images,
        "age_group": dataset.age_group,
        "age": dataset.age,
        "person_id": dataset.person_id,
        "image_id": dataset.image_id,
    }
    arrays.update({f"split_{name}": np.asarray(idx, dtype=np.int64) for name, idx in splits.as_dict().items()})
    write_npz(path, arrays)


def load_dataset(path: str | Path) -> tuple[FaceDataset, Splits]:
    """Read a file written by :func:`save_dataset` (no pickles are allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except Exception as exc:  # zipfile/ValueError/OSError: a corrupt file
        raise DataError(f"cannot read dataset file {path}: {exc}") from exc
    version = int(arrays.get("format_version", -1))
    if version != DATASET_FORMAT_VERSION:
        raise DataError(f"{path}: dataset format version {version}, expected {DATASET_FORMAT_VERSION}")
    try:
        dataset = FaceDataset(
            images=arrays["images"],
            age_group=arrays["age_group"].astype(np.int64),
            age=arrays["age"].astype(np.int64),
            person_id=arrays["person_id"].astype(np.int64),
            image_id=arrays["image_id"].astype(np.int64),
        )
        splits = Splits(**{name: arrays[f"split_{name}"].astype(np.int64) for name in SPLIT_NAMES})
    except KeyError as exc:
        raise DataError(f"{path}: missing array {exc}") from exc
    return dataset, splits


class _DictDataset(Dataset):
    """Map-style dataset over a subset; items are dicts of tensors."""

    def __init__(self, dataset: FaceDataset, indices: np.ndarray):
        idx = np.asarray(indices, dtype=np.int64)
        self.images = torch.from_numpy(dataset.images[idx])
        self.age_group = torch.from_numpy(dataset.age_group[idx])
        self.age = torch.from_numpy(dataset.age[idx])
        self.person_id = torch.from_numpy(dataset.person_id[idx])
        self.image_id = torch.from_numpy(dataset.image_id[idx])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        values = (self.images[i].float(), self.image_id[i], self.age_group[i], self.age[i], self.person_id[i])
        return dict(zip(BATCH_KEYS, values))

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [self[i] for i in indices]


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def make_loader(
    dataset: FaceDataset,
    indices: np.ndarray,
    *,
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int | None = 0,
) -> DataLoader:
    """A real ``torch.utils.data.DataLoader`` over ``dataset[indices]`` with dict batches.

    Shuffling is reproducible from ``seed``; with ``seed=None`` each pass draws its
    order from torch's global random generator, as the 2023 Kaggle loaders did (so
    ``torch.manual_seed`` before a pass fixes its order).
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        _DictDataset(dataset, indices),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=0,
        collate_fn=_collate,
    )
