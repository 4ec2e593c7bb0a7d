"""Datasets, splits and loaders."""

from unlearning_challenge.data.dataset import (
    NUM_AGE_GROUPS,
    DataError,
    FaceDataset,
    Splits,
    load_dataset,
    make_loader,
    save_dataset,
    split_fingerprint,
)

__all__ = [
    "NUM_AGE_GROUPS",
    "DataError",
    "FaceDataset",
    "Splits",
    "load_dataset",
    "make_loader",
    "save_dataset",
    "split_fingerprint",
]
