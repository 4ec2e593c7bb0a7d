"""The preview grid: a PNG with one labelled row per age group."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from unlearning_challenge.config import DatasetConfig
from unlearning_challenge.data import DataError, FaceDataset, generate_synthetic, save_preview_grid


def test_preview_grid_is_a_png(tmp_path):
    cfg = DatasetConfig(seed=0, num_persons=30, min_images_per_person=2, max_images_per_person=3)
    dataset = generate_synthetic(cfg)
    path = save_preview_grid(dataset, tmp_path / "sub" / "preview.png", per_group=4, title="check")
    assert path == tmp_path / "sub" / "preview.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert height > width / 2  # ten rows of four
    # atomic write: no temporary file left behind
    assert [p.name for p in path.parent.iterdir()] == ["preview.png"]


def test_preview_grid_with_empty_groups_and_subset(tmp_path):
    n = 6
    dataset = FaceDataset(
        images=np.full((n, 3, 8, 8), 128, dtype=np.uint8),
        age_group=np.array([0, 0, 3, 3, 3, 9], dtype=np.int64),
        age=np.array([1, 2, 30, 31, 33, 95], dtype=np.int64),
        person_id=np.array([0, 0, 1, 2, 2, 3], dtype=np.int64),
        image_id=np.arange(n, dtype=np.int64),
    )
    save_preview_grid(dataset, tmp_path / "a.png", per_group=2, indices=np.array([2, 3, 4]))
    assert (tmp_path / "a.png").stat().st_size > 0
    with pytest.raises(DataError, match="per_group must be at least 1"):
        save_preview_grid(dataset, tmp_path / "b.png", per_group=0)
