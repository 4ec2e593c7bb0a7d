"""The files that pass between reference generation, ingestion and scoring.

Three folders, each a ``manifest.json`` (metadata, versioned) beside npz
arrays (never pickles):

``input_data/`` (what ingestion needs)
    ``phase.yaml``, ``dataset.npz`` (see :mod:`unlearning_challenge.data`),
    ``original.safetensors``, ``manifest.json``.
``reference_data/`` (what scoring compares against)
    ``phase.yaml``, ``reference.npz``, ``manifest.json``.
ingestion output (``res/``)
    ``unlearned.npz``, ``ingestion.json``.

``reference.npz`` and ``unlearned.npz`` hold, for N models and E forget
examples with C classes: ``forget_logits`` float32 ``[N, E, C]``,
``forget_labels`` int64 ``[E]``, ``forget_image_ids`` int64 ``[E]``,
``retain_accuracy``, ``test_accuracy``, ``forget_accuracy`` float64 ``[N]``,
``seconds`` float64 ``[N]`` (training time of a retrained model, wall time of
an unlearning run) and ``seeds`` int64 ``[N]``. ``unlearned.npz`` also holds,
for T test examples, ``forget_losses`` float32 ``[N, E]`` and ``test_losses``
float32 ``[N, T]`` (per-example cross-entropy, for the membership-inference
attack). These two are optional within format version 1: files written before
they existed (and reference files) lack them, readers then get ``None``, and
readers that predate them ignore them. Each manifest records the sha256 of its
npz so that a truncated or altered file is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from unlearning_challenge.atomic import write_json, write_npz

FORMAT_VERSION = 1
INPUT_FORMAT = "unlearning-challenge/input"
REFERENCE_FORMAT = "unlearning-challenge/reference"
INGESTION_FORMAT = "unlearning-challenge/ingestion"

MANIFEST = "manifest.json"
INGESTION_MANIFEST = "ingestion.json"
REFERENCE_ARRAYS = "reference.npz"
UNLEARNED_ARRAYS = "unlearned.npz"
DATASET_FILE = "dataset.npz"
ORIGINAL_WEIGHTS = "original.safetensors"
PHASE_FILE = "phase.yaml"

# What the input data and reference data folders hold.
INPUT_FILES = (PHASE_FILE, DATASET_FILE, ORIGINAL_WEIGHTS, MANIFEST)
REFERENCE_FILES = (PHASE_FILE, REFERENCE_ARRAYS, MANIFEST)

# A submission is a folder (or a zip) with this file at its root, defining this function.
SUBMISSION_FILE = "unlearning.py"
SUBMISSION_FUNCTION = "unlearning"


class ArtifactError(ValueError):
    """An artifact is missing, corrupt, tampered with or inconsistent."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFamily:
    """Outputs of N models (retrained or unlearned) on the forget set.

    forget_logits: float32 ``[N, E, C]``; forget_labels, forget_image_ids:
    int64 ``[E]``; retain/test/forget_accuracy, seconds: float64 ``[N]``;
    seeds: int64 ``[N]``; forget_losses float32 ``[N, E]`` and test_losses
    float32 ``[N, T]``, both or neither (None: not recorded).
    """

    forget_logits: np.ndarray
    forget_labels: np.ndarray
    forget_image_ids: np.ndarray
    retain_accuracy: np.ndarray
    test_accuracy: np.ndarray
    forget_accuracy: np.ndarray
    seconds: np.ndarray
    seeds: np.ndarray
    forget_losses: np.ndarray | None = None
    test_losses: np.ndarray | None = None

    @classmethod
    def stack(cls, records: Sequence[Mapping[str, Any]], *, forget_labels: np.ndarray,
              forget_image_ids: np.ndarray, seconds: Sequence[float], seeds: Sequence[int]) -> "ModelFamily":
        """The family of N models from one record per model, in order.

        Each record maps ``forget_logits`` ``[E, C]``, ``retain_accuracy``,
        ``test_accuracy`` and ``forget_accuracy`` (scalars), and, in every record
        or in none, ``forget_losses`` ``[E]`` and ``test_losses`` ``[T]``.
        forget_labels, forget_image_ids: ``[E]``; seconds, seeds: ``[N]``.
        Arrays are cast to the dtypes of the family's file.
        """
        dtypes = {**_FAMILY_DTYPES, **_OPTIONAL_DTYPES}

        def column(key: str) -> np.ndarray:
            return np.array([record[key] for record in records], dtype=dtypes[key])

        def stacked(key: str) -> np.ndarray:
            return np.stack([record[key] for record in records]).astype(dtypes[key])

        with_losses = all(key in record for record in records for key in _OPTIONAL_DTYPES)
        return cls(
            forget_logits=stacked("forget_logits"),
            forget_labels=np.asarray(forget_labels).astype(np.int64),
            forget_image_ids=np.asarray(forget_image_ids).astype(np.int64),
            retain_accuracy=column("retain_accuracy"),
            test_accuracy=column("test_accuracy"),
            forget_accuracy=column("forget_accuracy"),
            seconds=np.array(seconds, dtype=np.float64),
            seeds=np.array(seeds, dtype=np.int64),
            forget_losses=stacked("forget_losses") if with_losses else None,
            test_losses=stacked("test_losses") if with_losses else None,
        )

    @property
    def num_models(self) -> int:
        return self.forget_logits.shape[0]

    @property
    def has_losses(self) -> bool:
        return self.forget_losses is not None and self.test_losses is not None

    def first(self, k: int) -> "ModelFamily":
        """The first ``k`` models."""
        return ModelFamily(
            self.forget_logits[:k], self.forget_labels, self.forget_image_ids,
            self.retain_accuracy[:k], self.test_accuracy[:k], self.forget_accuracy[:k],
            self.seconds[:k], self.seeds[:k],
            None if self.forget_losses is None else self.forget_losses[:k],
            None if self.test_losses is None else self.test_losses[:k],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to write: the optional ones only when present."""
        names = list(_FAMILY_DTYPES) + [name for name in _OPTIONAL_DTYPES if getattr(self, name) is not None]
        return {name: getattr(self, name) for name in names}


_FAMILY_DTYPES = {
    "forget_logits": np.float32,
    "forget_labels": np.int64,
    "forget_image_ids": np.int64,
    "retain_accuracy": np.float64,
    "test_accuracy": np.float64,
    "forget_accuracy": np.float64,
    "seconds": np.float64,
    "seeds": np.int64,
}

# Arrays a family may lack (added within format version 1; both or neither).
_OPTIONAL_DTYPES = {
    "forget_losses": np.float32,
    "test_losses": np.float32,
}


def write_family(path: str | Path, family: ModelFamily) -> str:
    """Write the arrays atomically; return the file's sha256."""
    dtypes = {**_FAMILY_DTYPES, **_OPTIONAL_DTYPES}
    write_npz(path, {k: np.asarray(v, dtype=dtypes[k]) for k, v in family.arrays().items()})
    return sha256_file(path)


def read_family(path: str | Path, *, expected_sha256: str | None, what: str) -> ModelFamily:
    """Read and check a family's npz (dtypes, shapes, finiteness of accuracies and seconds).

    ``what`` names the artifact in error messages (e.g. "reference data").
    Logits may hold non-finite values (a diverged model): the metric caps those examples.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what}: {path.name} is missing from {path.parent}")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ArtifactError(
            f"{what}: {path.name} does not match the checksum in its manifest "
            "(truncated, corrupt or altered); regenerate it"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except Exception as exc:
        raise ArtifactError(f"{what}: cannot read {path.name}: {exc}") from exc
    missing = sorted(set(_FAMILY_DTYPES) - set(arrays))
    if missing:
        raise ArtifactError(f"{what}: {path.name} lacks array(s) {missing}")
    optional = [key for key in _OPTIONAL_DTYPES if key in arrays]
    if optional and len(optional) != len(_OPTIONAL_DTYPES):
        raise ArtifactError(f"{what}: {path.name} holds {optional} without {sorted(set(_OPTIONAL_DTYPES) - set(optional))}")
    dtypes = {**_FAMILY_DTYPES, **{key: _OPTIONAL_DTYPES[key] for key in optional}}
    for key, dtype in dtypes.items():
        if arrays[key].dtype != dtype:
            raise ArtifactError(f"{what}: {path.name}: '{key}' has dtype {arrays[key].dtype}, expected {np.dtype(dtype)}")
    family = ModelFamily(**{k: arrays[k] for k in dtypes})
    _check_family_shapes(family, f"{what}: {path.name}")
    return family


def _check_family_shapes(family: ModelFamily, where: str) -> None:
    logits = family.forget_logits
    if logits.ndim != 3:
        raise ArtifactError(f"{where}: forget_logits must be [N, E, C], got shape {logits.shape}")
    n, e, c = logits.shape
    if n < 1 or e < 1 or c < 2:
        raise ArtifactError(f"{where}: forget_logits has an empty axis: shape {logits.shape}")
    for key in ("forget_labels", "forget_image_ids"):
        if getattr(family, key).shape != (e,):
            raise ArtifactError(f"{where}: {key} has shape {getattr(family, key).shape}, expected ({e},)")
    for key in ("retain_accuracy", "test_accuracy", "forget_accuracy", "seconds", "seeds"):
        if getattr(family, key).shape != (n,):
            raise ArtifactError(f"{where}: {key} has shape {getattr(family, key).shape}, expected ({n},)")
    labels = family.forget_labels
    if labels.min() < 0 or labels.max() >= c:
        raise ArtifactError(f"{where}: forget_labels outside 0..{c - 1}")
    for key in ("retain_accuracy", "test_accuracy", "forget_accuracy"):
        values = getattr(family, key)
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            raise ArtifactError(f"{where}: {key} must hold finite fractions in [0, 1]")
    if not np.all(np.isfinite(family.seconds)) or family.seconds.min() < 0:
        raise ArtifactError(f"{where}: seconds must be finite and non-negative")
    if family.has_losses:
        if family.forget_losses.shape != (n, e):
            raise ArtifactError(f"{where}: forget_losses has shape {family.forget_losses.shape}, expected ({n}, {e})")
        if family.test_losses.ndim != 2 or family.test_losses.shape[0] != n:
            raise ArtifactError(f"{where}: test_losses has shape {family.test_losses.shape}, expected ({n}, T)")


def read_manifest(folder: str | Path, *, name: str = MANIFEST, expected_format: str, what: str) -> dict[str, Any]:
    """Read a folder's manifest and check its format and version."""
    path = Path(folder) / name
    if not path.is_file():
        raise ArtifactError(f"{what}: {name} is missing from {Path(folder)}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{what}: {name} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise ArtifactError(f"{what}: {name} is not a {expected_format} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{what}: {name} has format version {manifest.get('format_version')}, this program reads {FORMAT_VERSION}"
        )
    return manifest


def write_manifest(folder: str | Path, manifest: dict[str, Any], *, name: str = MANIFEST) -> None:
    write_json(Path(folder) / name, manifest)
