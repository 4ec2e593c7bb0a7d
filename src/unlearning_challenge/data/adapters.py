"""Real-data adapters: read an image layout on disk into a :class:`FaceDataset`.

Entry points:

* :func:`build_dataset` ``(cfg: DatasetConfig) -> FaceDataset`` dispatches on
  ``cfg.kind``: ``synthetic`` (:func:`~unlearning_challenge.data.synthetic.generate_synthetic`),
  ``kaggle`` (:func:`load_kaggle`, ``cfg.root``), ``casia`` (:func:`load_casia`,
  ``cfg.root``) or ``csv`` (:func:`load_csv_manifest`, ``cfg.manifest``).
* :func:`build_dataset_and_splits` ``(dataset_cfg, split_cfg) -> (FaceDataset, Splits)``:
  the dataset and its split. The Kaggle layout fixes the split itself
  (retain/forget/validation files), so for ``kaggle`` the layout's split is
  returned and ``split_cfg`` only decides how the validation persons are
  shared between val and test when there is no ``test.csv``; every other kind
  is split by :func:`~unlearning_challenge.data.splits.make_splits`.

Images are read with PIL, converted to RGB and resized to
``cfg.image_size`` squared (bilinear, with PIL's antialiasing when shrinking).
Every problem raises :class:`DataError` naming the file (and the line, for
text files).

Layouts
-------
``kaggle`` (the 2023 Kaggle competition)::

    root/retain.csv, root/forget.csv, root/validation.csv[, root/test.csv]
    root/images/<a>/<b>.png

  Each csv has the columns ``image_id, age_group, age, person_id`` (other
  columns are ignored). ``image_id`` is a string ``"<a>-<b>"`` naming the
  image ``images/<a>/<b>.png`` (as the competition's notebook reads it;
  ``<a>`` is the person's folder). The numeric ``image_id`` of the
  :class:`FaceDataset` is the running index of the images sorted by that
  string (numeric parts compared as numbers), over all files. ``person_id``
  and ``age`` are integers, ``age_group`` in 0..9 is taken as given. Split:
  train = retain + forget, val/test from validation.csv (divided by person,
  see :func:`load_kaggle`) or validation.csv and test.csv.

``casia`` (CASIA-SURF, as the 2023 challenge's reference code reads it)::

    root/Age_Gender.txt        lines "<subject> <age> <gender>" (whitespace separated)
    root/**/<subject>/real.rssdk/color/*.jpg   (the CASIA-SURF tree), or
    root/**/<subject>/*.{jpg,jpeg,png}          (any per-subject folder)

  A subject's folder may be anywhere below ``root`` (several folders with the
  subject's name are merged). Age groups follow that reference code: ten
  equal-width bins over the observed ages, ``linspace(min_age, max_age + 1, 11)``
  (``age_bins="decades"`` uses the synthetic data's decades instead).
  ``person_id`` is the subject id when every id is an integer, else its rank
  in the sorted ids. Listed subjects without images are skipped.

``csv`` (a generic manifest): columns ``path``, ``subject`` and ``age``
  and/or ``age_group``. ``path`` is relative to ``root`` when ``root`` is set,
  else to the manifest's folder (absolute paths are kept). Given only ``age``,
  the group is its decade (:func:`~unlearning_challenge.data.synthetic.age_to_group`);
  given only ``age_group``, ``age`` is ``-1`` (unknown). ``subject`` maps to
  ``person_id`` as for ``casia``. The manifest itself is ``cfg.manifest``,
  relative to ``root`` when ``root`` is set. Images keep the manifest's
  row order; ``image_id`` is the row index.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from unlearning_challenge.config import DATASET_KINDS, DatasetConfig, DatasetKind, SplitConfig
from unlearning_challenge.data.dataset import NUM_AGE_GROUPS, DataError, FaceDataset, Splits
from unlearning_challenge.data.splits import check_splits, make_splits
from unlearning_challenge.data.synthetic import age_to_group, generate_synthetic

KAGGLE_COLUMNS = ("image_id", "age_group", "age", "person_id")
KAGGLE_FILES = {"retain": "retain.csv", "forget": "forget.csv", "val": "validation.csv", "test": "test.csv"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Label of the progress bar (on stderr) while the image files are read.
READING_IMAGES = "reading images"


# ----------------------------------------------------------------------------
# small helpers


def read_image(path: Path, size: int, source: str = "") -> np.ndarray:
    """uint8 ``[3, size, size]`` RGB image; ``source`` (e.g. ``"file.csv line 3"``) goes into errors."""
    from PIL import Image, UnidentifiedImageError

    where = f" ({source})" if source else ""
    if not path.is_file():
        raise DataError(f"image not found: {path}{where}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}{where}: {exc}") from exc
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _read_csv(
    path: Path, required: tuple[str, ...], one_of: tuple[str, ...] = ()
) -> tuple[list[str], list[tuple[int, dict]]]:
    """Rows of a CSV file as ``(line_number, {column: text})``; header names are stripped."""
    if not path.is_file():
        raise DataError(f"csv file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DataError(f"{path}: empty file (no header line)") from None
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path} line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                    )
                rows.append((reader.line_num, {h: cell.strip() for h, cell in zip(header, row)}))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed csv: {exc}") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path} line 1: missing column(s) {missing}; found {header}")
    if one_of and not any(c in header for c in one_of):
        raise DataError(f"{path} line 1: needs column {' or '.join(repr(c) for c in one_of)}; found {header}")
    return header, rows


def _int(text: str, what: str, where: str, lo: int | None = None, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise DataError(f"{where}: {what} must be an integer, got {text!r}") from None
        if not f.is_integer():
            raise DataError(f"{where}: {what} must be an integer, got {text!r}") from None
        value = int(f)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise DataError(f"{where}: {what} must be {bounds}, got {value}")
    return value


def _natural_key(text: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def subject_ids(subjects: list[str]) -> dict[str, int]:
    """Map subject names to int person ids: the number itself when every name
    is an integer (and distinct as numbers), else the rank in sorted order."""
    unique = sorted(set(subjects))
    if all(re.fullmatch(r"\d+", s) for s in unique) and len({int(s) for s in unique}) == len(unique):
        return {s: int(s) for s in unique}
    return {s: i for i, s in enumerate(unique)}


def _dataset(images: list[np.ndarray], age_group, age, person_id, image_id, size: int) -> FaceDataset:
    stack = np.stack(images).astype(np.uint8) if images else np.zeros((0, 3, size, size), dtype=np.uint8)
    return FaceDataset(
        images=stack,
        age_group=np.asarray(age_group, dtype=np.int64),
        age=np.asarray(age, dtype=np.int64),
        person_id=np.asarray(person_id, dtype=np.int64),
        image_id=np.asarray(image_id, dtype=np.int64),
    )


# ----------------------------------------------------------------------------
# kaggle


def load_kaggle(
    root: str | Path,
    *,
    image_size: int = 32,
    seed: int = 0,
    test_share: float = 2 / 3,
) -> tuple[FaceDataset, Splits]:
    """The 2023 Kaggle layout (see the module doc) and the split it defines.

    train = retain.csv + forget.csv, forget = forget.csv. With a ``test.csv``,
    val = validation.csv and test = test.csv; without one, the persons of
    validation.csv are divided: ``test_share`` of them (rounded, at least one
    each) go to test, the rest to val, stratified by age group and drawn with
    ``seed`` as in :func:`~unlearning_challenge.data.splits.make_splits`.

    A person in both retain.csv and forget.csv is an error (forget holds
    whole persons). A person in both train and validation/test is allowed, as
    the 2023 split was drawn by image, but gives a ``UserWarning``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"kaggle dataset folder not found: {root}")
    if not 0 < test_share < 1:
        raise DataError(f"kaggle: test_share must be in (0, 1), got {test_share}")
    records: list[tuple[str, str, int, int, int, str]] = []  # (split, image_id, group, age, person, where)
    seen: dict[str, str] = {}
    for split, name in KAGGLE_FILES.items():
        path = root / name
        if split == "test" and not path.exists():
            continue
        _, rows = _read_csv(path, KAGGLE_COLUMNS)
        for line, row in rows:
            where = f"{path} line {line}"
            key = row["image_id"]
            parts = key.split("-")
            if len(parts) != 2 or not all(parts) or any(c in key for c in "/\\") or key.startswith("."):
                raise DataError(f"{where}: image_id must look like '<person folder>-<n>', got {key!r}")
            if key in seen:
                raise DataError(f"{where}: image_id {key!r} already listed at {seen[key]}")
            seen[key] = where
            group = _int(row["age_group"], "age_group", where, 0, NUM_AGE_GROUPS - 1)
            age = _int(row["age"], "age", where, 0)
            person = _int(row["person_id"], "person_id", where)
            records.append((split, key, group, age, person, where))
    if not any(r[0] in ("retain", "forget") for r in records):
        raise DataError(f"kaggle: {root / 'retain.csv'} and {root / 'forget.csv'} list no images")
    for split, name in (("forget", "forget.csv"), ("val", "validation.csv")):
        if not any(r[0] == split for r in records):
            raise DataError(f"kaggle: {root / name} lists no images")

    records.sort(key=lambda r: _natural_key(r[1]))
    images = []
    for split, key, _, _, _, where in tqdm(records, desc=READING_IMAGES, unit="image"):
        folder, stem = key.split("-")
        images.append(read_image(root / "images" / folder / f"{stem}.png", image_size, where))
    dataset = _dataset(
        images,
        [r[2] for r in records],
        [r[3] for r in records],
        [r[4] for r in records],
        np.arange(len(records)),
        image_size,
    )
    split_of = np.array([r[0] for r in records])
    idx = {s: np.flatnonzero(split_of == s).astype(np.int64) for s in KAGGLE_FILES}

    retain_p = set(dataset.person_id[idx["retain"]].tolist())
    forget_p = set(dataset.person_id[idx["forget"]].tolist())
    both = sorted(retain_p & forget_p)
    if both:
        raise DataError(
            f"kaggle: person(s) {both[:5]} appear in both {root / 'retain.csv'} and {root / 'forget.csv'}; "
            "the forget set must hold whole persons"
        )
    if not len(idx["test"]):
        idx["val"], idx["test"] = _divide_by_person(dataset, idx["val"], test_share, seed, root / "validation.csv")
    train = np.sort(np.concatenate([idx["retain"], idx["forget"]]))
    splits = Splits(train=train, val=idx["val"], test=idx["test"], retain=idx["retain"], forget=idx["forget"])
    check_splits(dataset, splits, person_disjoint=False)
    train_p = retain_p | forget_p
    for name in ("val", "test"):
        shared = sorted(train_p & set(dataset.person_id[getattr(splits, name)].tolist()))
        if shared:
            warnings.warn(
                f"kaggle: {len(shared)} person(s) of the {name} split also have train images "
                f"(e.g. {shared[:3]}); the layout's split is kept as given",
                UserWarning,
                stacklevel=2,
            )
    return dataset, splits


def _divide_by_person(
    dataset: FaceDataset, indices: np.ndarray, test_share: float, seed: int, source: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Divide ``indices`` by person into (val, test), stratified by age group."""
    persons = dataset.person_id[indices]
    unique = np.unique(persons)
    if len(unique) < 2:
        raise DataError(
            f"kaggle: {source} has {len(unique)} person(s); at least 2 are needed to divide it into "
            "val and test (or provide test.csv)"
        )
    groups = np.array([np.bincount(dataset.age_group[indices][persons == p], minlength=NUM_AGE_GROUPS).argmax()
                       for p in unique])
    n_test = min(len(unique) - 1, max(1, int(round(test_share * len(unique)))))
    rng = np.random.Generator(np.random.PCG64(seed))
    order = np.lexsort((rng.random(len(unique)), groups))
    pos = np.floor((np.arange(n_test) + rng.random()) * (len(unique) / n_test)).astype(np.int64)
    test_persons = unique[order[pos]]
    in_test = np.isin(persons, test_persons)
    return np.sort(indices[~in_test]), np.sort(indices[in_test])


# ----------------------------------------------------------------------------
# casia


def _find_subject_images(root: Path, subjects: set[str]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            if d not in subjects:
                continue
            folder = Path(dirpath) / d
            colour = folder / "real.rssdk" / "color"
            source = colour if colour.is_dir() else folder
            files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found.setdefault(d, []).extend(files)
    return found


def casia_age_groups(ages: np.ndarray) -> np.ndarray:
    """The 2023 reference code's groups: ten equal-width bins over ``[min(ages), max(ages) + 1]``."""
    ages = np.asarray(ages)
    if not len(ages):
        return np.zeros(0, dtype=np.int64)
    edges = np.linspace(ages.min(), ages.max() + 1, NUM_AGE_GROUPS + 1)
    return (np.digitize(ages, edges) - 1).clip(0, NUM_AGE_GROUPS - 1).astype(np.int64)


def load_casia(root: str | Path, *, image_size: int = 32, age_bins: str = "range") -> FaceDataset:
    """A CASIA-SURF-style layout (see the module doc); images ordered by subject, then file."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"casia dataset folder not found: {root}")
    if age_bins not in ("range", "decades"):
        raise DataError(f"casia: age_bins must be 'range' or 'decades', got {age_bins!r}")
    labels_path = root / "Age_Gender.txt"
    if not labels_path.is_file():
        raise DataError(f"casia: label file not found: {labels_path}")
    ages: dict[str, int] = {}
    with labels_path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{labels_path} line {line_no}"
            if len(fields) != 3:
                raise DataError(f"{where}: expected '<subject> <age> <gender>', got {line.strip()!r}")
            subject, age_text, _gender = fields
            if subject in ages:
                raise DataError(f"{where}: subject {subject!r} is listed twice")
            ages[subject] = _int(age_text, "age", where, 0)
    if not ages:
        raise DataError(f"casia: {labels_path} lists no subjects")
    found = _find_subject_images(root, set(ages))
    if not found:
        raise DataError(f"casia: no images found under {root} for any subject listed in {labels_path}")
    ids = subject_ids(list(ages))
    subjects = sorted(found, key=lambda s: ids[s])
    listed_ages = np.array([ages[s] for s in sorted(ages)])
    if age_bins == "range":
        edges_of = dict(zip(sorted(ages), casia_age_groups(listed_ages)))
    else:
        edges_of = dict(zip(sorted(ages), age_to_group(listed_ages)))
    images, group, age, pid = [], [], [], []
    subject_images = [(s, path) for s in subjects for path in found[s]]
    for s, path in tqdm(subject_images, desc=READING_IMAGES, unit="image"):
        images.append(read_image(path, image_size, f"subject {s} of {labels_path}"))
        group.append(edges_of[s])
        age.append(ages[s])
        pid.append(ids[s])
    return _dataset(images, group, age, pid, np.arange(len(images)), image_size)


# ----------------------------------------------------------------------------
# csv manifest


def load_csv_manifest(path: str | Path, *, root: str | Path | None = None, image_size: int = 32) -> FaceDataset:
    """A generic manifest (see the module doc): columns ``path``, ``subject``, ``age`` and/or ``age_group``."""
    path = Path(path)
    header, rows = _read_csv(path, ("path", "subject"), one_of=("age", "age_group"))
    if not rows:
        raise DataError(f"{path}: no rows")
    base = Path(root) if root is not None else path.parent
    ids = subject_ids([row["subject"] for _, row in rows])
    images, group, age, pid = [], [], [], []
    for line, row in tqdm(rows, desc=READING_IMAGES, unit="image"):
        where = f"{path} line {line}"
        if not row["subject"]:
            raise DataError(f"{where}: empty subject")
        if not row["path"]:
            raise DataError(f"{where}: empty path")
        a = _int(row["age"], "age", where, 0) if "age" in header else -1
        if "age_group" in header:
            g = _int(row["age_group"], "age_group", where, 0, NUM_AGE_GROUPS - 1)
        else:
            g = int(age_to_group(a))
        image_path = Path(row["path"])
        if not image_path.is_absolute():
            image_path = base / image_path
        images.append(read_image(image_path, image_size, where))
        group.append(g)
        age.append(a)
        pid.append(ids[row["subject"]])
    return _dataset(images, group, age, pid, np.arange(len(images)), image_size)


# ----------------------------------------------------------------------------
# dispatch


def _root(cfg: DatasetConfig) -> Path:
    if not cfg.root:
        raise DataError(f"dataset kind {cfg.kind!r} needs dataset.root (the folder of the images)")
    return Path(cfg.root)


def _build_kaggle(cfg: DatasetConfig) -> FaceDataset:
    return load_kaggle(_root(cfg), image_size=cfg.image_size)[0]


def _build_casia(cfg: DatasetConfig) -> FaceDataset:
    return load_casia(_root(cfg), image_size=cfg.image_size)


def _build_csv(cfg: DatasetConfig) -> FaceDataset:
    if not cfg.manifest:
        raise DataError(f"dataset kind {DatasetKind.CSV!r} needs dataset.manifest (the csv file)")
    manifest = Path(cfg.manifest)
    if cfg.root and not manifest.is_absolute():
        manifest = Path(cfg.root) / manifest
    return load_csv_manifest(manifest, root=cfg.root, image_size=cfg.image_size)


# One builder per member of config.DatasetKind (a test checks that they match).
DATASET_BUILDERS = {
    DatasetKind.SYNTHETIC: generate_synthetic,
    DatasetKind.KAGGLE: _build_kaggle,
    DatasetKind.CASIA: _build_casia,
    DatasetKind.CSV: _build_csv,
}


def build_dataset(cfg: DatasetConfig) -> FaceDataset:
    """The dataset of ``cfg``, built by the builder of its kind (see ``DATASET_BUILDERS``)."""
    builder = DATASET_BUILDERS.get(cfg.kind)
    if builder is None:
        expected = f"{', '.join(DATASET_KINDS[:-1])} or {DATASET_KINDS[-1]}"
        raise DataError(f"unknown dataset kind {cfg.kind!r}; expected {expected}")
    return builder(cfg)


def build_dataset_and_splits(dataset_cfg: DatasetConfig, split_cfg: SplitConfig) -> tuple[FaceDataset, Splits]:
    """The dataset and its split: the layout's own for ``kaggle``, :func:`make_splits` otherwise.

    For ``kaggle`` without a test.csv, validation persons are shared between
    val and test in the ratio ``val_fraction : test_fraction``, drawn with
    ``split_cfg.seed``; ``forget_fraction`` is not used (forget.csv is).
    """
    if dataset_cfg.kind == DatasetKind.KAGGLE:
        total = split_cfg.val_fraction + split_cfg.test_fraction
        if not (0 < split_cfg.val_fraction and 0 < split_cfg.test_fraction):
            raise DataError("split: val_fraction and test_fraction must be positive")
        return load_kaggle(
            _root(dataset_cfg),
            image_size=dataset_cfg.image_size,
            seed=split_cfg.seed,
            test_share=split_cfg.test_fraction / total,
        )
    dataset = build_dataset(dataset_cfg)
    return dataset, make_splits(dataset, split_cfg)
