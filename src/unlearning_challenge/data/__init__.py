"""Datasets, splits and loaders."""

from unlearning_challenge.data.dataset import (
    BATCH_KEYS,
    NUM_AGE_GROUPS,
    DataError,
    FaceDataset,
    Splits,
    load_dataset,
    make_loader,
    save_dataset,
    split_fingerprint,
)
from unlearning_challenge.data.synthetic import (
    AGE_GROUP_EDGES,
    ATYPICAL_KINDS,
    SyntheticPersons,
    age_group_label,
    age_to_group,
    generate_synthetic,
    sample_persons,
)
from unlearning_challenge.data.splits import EvaluationSamples, check_splits, evaluation_samples, make_splits, person_groups
from unlearning_challenge.data.adapters import (
    build_dataset,
    build_dataset_and_splits,
    load_casia,
    load_csv_manifest,
    load_kaggle,
)
from unlearning_challenge.data.preview import save_preview_grid

__all__ = [
    "BATCH_KEYS",
    "NUM_AGE_GROUPS",
    "DataError",
    "FaceDataset",
    "Splits",
    "load_dataset",
    "make_loader",
    "save_dataset",
    "split_fingerprint",
    "AGE_GROUP_EDGES",
    "ATYPICAL_KINDS",
    "SyntheticPersons",
    "age_group_label",
    "age_to_group",
    "generate_synthetic",
    "sample_persons",
    "EvaluationSamples",
    "check_splits",
    "evaluation_samples",
    "make_splits",
    "person_groups",
    "build_dataset",
    "build_dataset_and_splits",
    "load_casia",
    "load_csv_manifest",
    "load_kaggle",
    "save_preview_grid",
]
