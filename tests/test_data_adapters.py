"""Real-data adapters on tiny fake layouts written in tmp_path (no downloads)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unlearning_challenge.config import DATASET_KINDS, DatasetConfig, DatasetKind, SplitConfig
from unlearning_challenge.data import (
    DataError,
    build_dataset,
    build_dataset_and_splits,
    check_splits,
    generate_synthetic,
    load_casia,
    load_csv_manifest,
    load_kaggle,
    make_splits,
)
from unlearning_challenge.data.adapters import DATASET_BUILDERS


def _png(path: Path, colour: tuple[int, int, int], size: int = 40, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), colour)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


# ----------------------------------------------------------------------------
# kaggle


def _kaggle(root: Path, *, with_test: bool = False) -> Path:
    """persons 10, 11 (retain), 12 (forget), 20, 21, 22 (validation)[, 30 (test)]."""
    root.mkdir(parents=True, exist_ok=True)
    header = "image_id,age_group,age,person_id"
    _csv(root / "retain.csv", header, ["10-0,1,15,10", "10-1,1,15,10", "11-0,3,34,11", "11-2,3,34,11"])
    _csv(root / "forget.csv", header, ["12-0,0,7,12", "12-1,0,7,12"])
    _csv(root / "validation.csv", header, ["20-0,2,25,20", "21-0,4,41,21", "21-1,4,41,21", "22-0,2,22,22"])
    ids = ["10-0", "10-1", "11-0", "11-2", "12-0", "12-1", "20-0", "21-0", "21-1", "22-0"]
    if with_test:
        _csv(root / "test.csv", header, ["30-0,5,55,30"])
        ids.append("30-0")
    for k, image_id in enumerate(ids):
        folder, stem = image_id.split("-")
        _png(root / "images" / folder / f"{stem}.png", (10 * k, 100, 200))
    return root


def test_kaggle_layout_and_split(tmp_path):
    root = _kaggle(tmp_path)
    dataset, splits = load_kaggle(root)
    assert len(dataset) == 10
    assert dataset.images.shape == (10, 3, 32, 32) and dataset.images.dtype == np.uint8
    # sorted by image_id with numeric parts compared as numbers: 10-0, 10-1, 11-0, 11-2, 12-0, ...
    np.testing.assert_array_equal(dataset.person_id, [10, 10, 11, 11, 12, 12, 20, 21, 21, 22])
    np.testing.assert_array_equal(dataset.image_id, np.arange(10))
    np.testing.assert_array_equal(dataset.age[:4], [15, 15, 34, 34])
    np.testing.assert_array_equal(dataset.age_group[:4], [1, 1, 3, 3])
    # the image of 11-2 is the fourth written (k=3): red channel 30
    assert dataset.images[3, 0, 0, 0] == 30
    np.testing.assert_array_equal(splits.retain, [0, 1, 2, 3])
    np.testing.assert_array_equal(splits.forget, [4, 5])
    np.testing.assert_array_equal(splits.train, [0, 1, 2, 3, 4, 5])
    # validation persons shared between val and test, by person
    assert sorted(np.concatenate([splits.val, splits.test]).tolist()) == [6, 7, 8, 9]
    val_p, test_p = set(dataset.person_id[splits.val]), set(dataset.person_id[splits.test])
    assert val_p and test_p and not val_p & test_p
    check_splits(dataset, splits)


def test_kaggle_with_test_file(tmp_path):
    dataset, splits = load_kaggle(_kaggle(tmp_path, with_test=True))
    np.testing.assert_array_equal(splits.val, [6, 7, 8, 9])
    np.testing.assert_array_equal(splits.test, [10])


def test_kaggle_through_config(tmp_path):
    root = _kaggle(tmp_path)
    cfg = DatasetConfig(kind="kaggle", root=str(root), image_size=16)
    dataset = build_dataset(cfg)
    assert dataset.images.shape == (10, 3, 16, 16)
    dataset2, splits = build_dataset_and_splits(cfg, SplitConfig(seed=3, val_fraction=0.5, test_fraction=0.5))
    np.testing.assert_array_equal(dataset2.images, dataset.images)
    assert len(np.unique(dataset2.person_id[splits.test])) == 2  # half of 3 persons, rounded


def test_kaggle_person_in_train_and_validation_warns(tmp_path):
    root = _kaggle(tmp_path)
    with (root / "validation.csv").open("a") as f:
        f.write("10-5,1,15,10\n")
    _png(root / "images" / "10" / "5.png", (1, 2, 3))
    with pytest.warns(UserWarning, match="also have train images"):
        load_kaggle(root, test_share=0.1)


def test_kaggle_errors(tmp_path):
    root = _kaggle(tmp_path / "a")
    (root / "images" / "11" / "2.png").unlink()
    with pytest.raises(DataError, match=r"image not found: .*11/2\.png \(.*retain\.csv line 5\)"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "b")
    _csv(root / "forget.csv", "image_id,age,person_id", ["12-0,7,12"])
    with pytest.raises(DataError, match=r"forget\.csv line 1: missing column\(s\) \['age_group'\]"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "c")
    _csv(root / "forget.csv", "image_id,age_group,age,person_id", ["12-0,11,7,12"])
    with pytest.raises(DataError, match=r"forget\.csv line 2: age_group must be in 0\.\.9, got 11"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "d")
    _csv(root / "forget.csv", "image_id,age_group,age,person_id", ["12-0,0,seven,12"])
    with pytest.raises(DataError, match=r"forget\.csv line 2: age must be an integer, got 'seven'"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "e")
    _csv(root / "forget.csv", "image_id,age_group,age,person_id", ["12_0,0,7,12"])
    with pytest.raises(DataError, match=r"image_id must look like '<person folder>-<n>', got '12_0'"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "f")
    _csv(root / "forget.csv", "image_id,age_group,age,person_id", ["10-0,1,15,10"])
    with pytest.raises(DataError, match=r"image_id '10-0' already listed at .*retain\.csv line 2"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "g")
    _csv(root / "forget.csv", "image_id,age_group,age,person_id", ["11-7,3,34,11"])
    _png(root / "images" / "11" / "7.png", (1, 2, 3))
    with pytest.raises(DataError, match=r"person\(s\) \[11\] appear in both .*retain\.csv and .*forget\.csv"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "h")
    (root / "validation.csv").unlink()
    with pytest.raises(DataError, match=r"csv file not found: .*validation\.csv"):
        load_kaggle(root)

    root = _kaggle(tmp_path / "i")
    (root / "images" / "12" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*12/0\.png \(.*forget\.csv line 2\)"):
        load_kaggle(root)

    with pytest.raises(DataError, match="kaggle dataset folder not found"):
        load_kaggle(tmp_path / "missing")


def test_kaggle_single_validation_person(tmp_path):
    root = _kaggle(tmp_path)
    _csv(root / "validation.csv", "image_id,age_group,age,person_id", ["20-0,2,25,20"])
    with pytest.raises(DataError, match=r"validation\.csv has 1 person\(s\); at least 2 are needed"):
        load_kaggle(root)


# ----------------------------------------------------------------------------
# casia


def _casia(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Age_Gender.txt").write_text("000001 20 M\n000002 29 F\n000003 49 M\n000004 30 F\n")
    colour = lambda s, k: root / "WBackground" / "A" / s / "real.rssdk" / "color" / f"{k}.jpg"  # noqa: E731
    _png(colour("000001", 0), (200, 0, 0))
    _png(colour("000001", 1), (190, 0, 0))
    _png(colour("000003", 0), (0, 200, 0))
    # a fake (attack) folder beside the real one is ignored
    _png(root / "WBackground" / "A" / "000003" / "fake.rssdk" / "color" / "0.jpg", (9, 9, 9))
    # a plain per-subject folder elsewhere, grey PNGs
    _png(root / "other" / "000002" / "a.png", (80, 80, 80), mode="L")
    return root


def test_casia_layout(tmp_path):
    dataset = load_casia(_casia(tmp_path))
    np.testing.assert_array_equal(dataset.person_id, [1, 1, 2, 3])
    np.testing.assert_array_equal(dataset.age, [20, 20, 29, 49])
    # equal-width bins over 20..50: width 3 years
    np.testing.assert_array_equal(dataset.age_group, [0, 0, 3, 9])
    assert dataset.images.shape == (4, 3, 32, 32)
    assert tuple(dataset.images[2, :, 5, 5]) == (80, 80, 80)
    assert abs(int(dataset.images[0, 0, 5, 5]) - 200) <= 3  # jpeg
    decades = load_casia(tmp_path, age_bins="decades")
    np.testing.assert_array_equal(decades.age_group, [2, 2, 2, 4])
    via_config = build_dataset(DatasetConfig(kind="casia", root=str(tmp_path)))
    np.testing.assert_array_equal(via_config.images, dataset.images)


def test_casia_errors(tmp_path):
    root = _casia(tmp_path / "a")
    (root / "Age_Gender.txt").write_text("000001 20 M\n000002 old F\n")
    with pytest.raises(DataError, match=r"Age_Gender\.txt line 2: age must be an integer, got 'old'"):
        load_casia(root)
    (root / "Age_Gender.txt").write_text("000001 20 M\n000001 21 M\n")
    with pytest.raises(DataError, match=r"Age_Gender\.txt line 2: subject '000001' is listed twice"):
        load_casia(root)
    (root / "Age_Gender.txt").write_text("000001 20\n")
    with pytest.raises(DataError, match=r"line 1: expected '<subject> <age> <gender>'"):
        load_casia(root)
    (root / "Age_Gender.txt").write_text("999999 20 M\n")
    with pytest.raises(DataError, match="no images found under"):
        load_casia(root)
    (root / "Age_Gender.txt").unlink()
    with pytest.raises(DataError, match=r"label file not found: .*Age_Gender\.txt"):
        load_casia(root)
    with pytest.raises(DataError, match=r"dataset kind 'casia' needs dataset\.root"):
        build_dataset(DatasetConfig(kind="casia"))


# ----------------------------------------------------------------------------
# csv manifest


def _manifest(root: Path, header: str, rows: list[str]) -> Path:
    for k, name in enumerate(["a.png", "b.png", "sub/c.png", "d.png"]):
        _png(root / name, (k * 60, 0, 0), size=20)
    _csv(root / "faces.csv", header, rows)
    return root / "faces.csv"


def test_csv_manifest_with_ages(tmp_path):
    path = _manifest(tmp_path, "path,age,subject", ["a.png,4,p1", "b.png,37,p2", "sub/c.png,37,p2", "d.png,95,p0"])
    dataset = load_csv_manifest(path)
    np.testing.assert_array_equal(dataset.age_group, [0, 3, 3, 9])  # decades
    np.testing.assert_array_equal(dataset.person_id, [1, 2, 2, 0])  # non-numeric subjects: rank
    np.testing.assert_array_equal(dataset.image_id, np.arange(4))
    assert dataset.images[2, 0, 0, 0] == 120
    splits_ds = build_dataset(DatasetConfig(kind="csv", manifest=str(path)))
    np.testing.assert_array_equal(splits_ds.images, dataset.images)


def test_csv_manifest_with_groups_and_root(tmp_path):
    _manifest(tmp_path, "subject,path,age_group", ["7,a.png,2", "9,b.png,5"])
    dataset = build_dataset(DatasetConfig(kind="csv", root=str(tmp_path), manifest="faces.csv", image_size=8))
    np.testing.assert_array_equal(dataset.age_group, [2, 5])
    np.testing.assert_array_equal(dataset.age, [-1, -1])
    np.testing.assert_array_equal(dataset.person_id, [7, 9])  # numeric subjects kept
    assert dataset.images.shape == (2, 3, 8, 8)


def test_csv_manifest_errors(tmp_path):
    path = _manifest(tmp_path, "path,subject", ["a.png,p1"])
    with pytest.raises(DataError, match=r"faces\.csv line 1: needs column 'age' or 'age_group'"):
        load_csv_manifest(path)
    path = _manifest(tmp_path, "path,age", ["a.png,3"])
    with pytest.raises(DataError, match=r"faces\.csv line 1: missing column\(s\) \['subject'\]"):
        load_csv_manifest(path)
    path = _manifest(tmp_path, "path,age,subject", ["a.png,3,p1", "missing.png,3,p1"])
    with pytest.raises(DataError, match=r"image not found: .*missing\.png \(.*faces\.csv line 3\)"):
        load_csv_manifest(path)
    path = _manifest(tmp_path, "path,age,subject", ["a.png,-3,p1"])
    with pytest.raises(DataError, match=r"faces\.csv line 2: age must be >= 0, got -3"):
        load_csv_manifest(path)
    path = _manifest(tmp_path, "path,age,subject", ["a.png,3"])
    with pytest.raises(DataError, match=r"faces\.csv line 2: 2 fields, the header has 3"):
        load_csv_manifest(path)
    with pytest.raises(DataError, match=r"dataset kind 'csv' needs dataset\.manifest"):
        build_dataset(DatasetConfig(kind="csv"))
    with pytest.raises(DataError, match="csv file not found"):
        load_csv_manifest(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------
# dispatch


def test_build_dataset_synthetic_and_splits():
    cfg = DatasetConfig(seed=1, num_persons=20, min_images_per_person=2, max_images_per_person=3, image_size=8)
    dataset = build_dataset(cfg)
    np.testing.assert_array_equal(dataset.images, generate_synthetic(cfg).images)
    dataset2, splits = build_dataset_and_splits(cfg, SplitConfig())
    expected = make_splits(dataset, SplitConfig())
    for name, idx in splits.as_dict().items():
        np.testing.assert_array_equal(idx, expected.as_dict()[name])


def test_unknown_kind():
    with pytest.raises(DataError, match="unknown dataset kind 'imagenet'; expected synthetic, kaggle, casia or csv"):
        build_dataset(dataclasses.replace(DatasetConfig(), kind="imagenet"))


def test_every_config_kind_has_a_builder():
    assert sorted(DATASET_BUILDERS) == sorted(DATASET_KINDS)
    assert all(type(kind) is DatasetKind for kind in DATASET_BUILDERS), "keyed by the members, spelled once"


def test_no_warning_for_clean_kaggle(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_kaggle(_kaggle(tmp_path))
