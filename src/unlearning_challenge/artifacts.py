"""The files that pass between reference generation, ingestion and scoring.

Three folders, each a ``manifest.json`` (metadata, versioned) beside npz
arrays (never pickles):

``input_data/`` (what ingestion needs)
    ``phase.yaml``, ``dataset.npz`` (see :mod:`unlearning_challenge.data`),
    ``original.safetensors``, ``manifest.json``; with K > 1 original models
    (``reference.num_originals``) also ``original_1.safetensors`` ..
    ``original_<K-1>.safetensors`` (:func:`original_weights_name`).
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
attack). Both files may hold the logits of a fixed, seeded sample of R retain
and V validation examples: ``retain_sample_logits`` float32 ``[N, R, C]``,
``validation_sample_logits`` float32 ``[N, V, C]``, with their dataset indices
``retain_sample_indices`` / ``validation_sample_indices`` and labels
``retain_sample_labels`` / ``validation_sample_labels`` int64 ``[R]`` / ``[V]``.
Each of these two groups is optional within format version 1 (all of a group or
none): files written before they existed lack them, readers then get ``None``,
and readers that predate them ignore them. Each manifest records the sha256 of its
npz so that a truncated or altered file is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from unlearning_challenge.atomic import npz_bytes, write_bytes, write_json
from unlearning_challenge.config import Choice
from unlearning_challenge.failures import Failure
from unlearning_challenge.sealing import SEALED_SUFFIX, SealingError, seal, unseal
from unlearning_challenge.validation import IGNORE, Rules, from_mapping, to_mapping
from unlearning_challenge.validation import key as _key

if TYPE_CHECKING:  # for annotations only: the data package imports torch
    from unlearning_challenge.data import EvaluationSamples

FORMAT_VERSION = 1
INPUT_FORMAT = "unlearning-challenge/input"
REFERENCE_FORMAT = "unlearning-challenge/reference"
INGESTION_FORMAT = "unlearning-challenge/ingestion"

MANIFEST = "manifest.json"
INGESTION_MANIFEST = "ingestion.json"
REFERENCE_ARRAYS = "reference.npz"
UNLEARNED_ARRAYS = "unlearned.npz"
SEALED_UNLEARNED_ARRAYS = UNLEARNED_ARRAYS + SEALED_SUFFIX
DATASET_FILE = "dataset.npz"
ORIGINAL_WEIGHTS = "original.safetensors"  # original 0 (the only one when K = 1)
PHASE_FILE = "phase.yaml"

# What the input data and reference data folders hold.
INPUT_FILES = (PHASE_FILE, DATASET_FILE, ORIGINAL_WEIGHTS, MANIFEST)
REFERENCE_FILES = (PHASE_FILE, REFERENCE_ARRAYS, MANIFEST)

# A submission is a folder (or a zip) with this file at its root, defining this function.
SUBMISSION_FILE = "unlearning.py"
SUBMISSION_FUNCTION = "unlearning"


class ArtifactError(ValueError):
    """An artifact is missing, corrupt, tampered with or inconsistent."""


def original_weights_name(k: int) -> str:
    """The file of original model ``k`` in the input data: ``original.safetensors`` for 0 (the only one
    when K = 1), ``original_<k>.safetensors`` for the others."""
    return ORIGINAL_WEIGHTS if k == 0 else f"original_{k}.safetensors"


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
    float32 ``[N, T]``, both or neither (None: not recorded). On the evaluation
    samples, all six or none (None: not recorded): retain_sample_logits float32
    ``[N, R, C]``, validation_sample_logits float32 ``[N, V, C]``,
    retain_sample_indices and retain_sample_labels int64 ``[R]`` (dataset indices
    and labels), validation_sample_indices and validation_sample_labels int64 ``[V]``.
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
    retain_sample_logits: np.ndarray | None = None
    validation_sample_logits: np.ndarray | None = None
    retain_sample_indices: np.ndarray | None = None
    validation_sample_indices: np.ndarray | None = None
    retain_sample_labels: np.ndarray | None = None
    validation_sample_labels: np.ndarray | None = None

    @classmethod
    def stack(cls, records: Sequence[Mapping[str, Any]], *, forget_labels: np.ndarray,
              forget_image_ids: np.ndarray, seconds: Sequence[float], seeds: Sequence[int],
              samples: "EvaluationSamples | None" = None, dataset_labels: np.ndarray | None = None) -> "ModelFamily":
        """The family of N models from one record per model, in order.

        Each record maps ``forget_logits`` ``[E, C]``, ``retain_accuracy``,
        ``test_accuracy`` and ``forget_accuracy`` (scalars), and, in every record
        or in none, ``forget_losses`` ``[E]`` and ``test_losses`` ``[T]``.
        forget_labels, forget_image_ids: ``[E]``; seconds, seeds: ``[N]``.
        With ``samples`` (the evaluated retain and validation examples), every record
        also maps ``retain_sample_logits`` ``[R, C]`` and ``validation_sample_logits``
        ``[V, C]``, and ``dataset_labels`` (the whole dataset's labels) gives their labels.
        Arrays are cast to the dtypes of the family's file.
        """
        dtypes = _ALL_DTYPES

        def column(key: str) -> np.ndarray:
            return np.array([record[key] for record in records], dtype=dtypes[key])

        def stacked(key: str) -> np.ndarray:
            return np.stack([record[key] for record in records]).astype(dtypes[key])

        with_losses = all(key in record for record in records for key in _OPTIONAL_DTYPES)
        sampled = {}
        if samples is not None:
            sampled = {
                "retain_sample_logits": stacked("retain_sample_logits"),
                "validation_sample_logits": stacked("validation_sample_logits"),
                **_sample_index(samples.retain, samples.validation, dataset_labels),
            }
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
            **sampled,
        )

    @property
    def num_models(self) -> int:
        return self.forget_logits.shape[0]

    @property
    def has_losses(self) -> bool:
        return self.forget_losses is not None and self.test_losses is not None

    @property
    def has_samples(self) -> bool:
        """Whether the family holds the logits on the evaluation samples (and their indices and labels)."""
        return all(getattr(self, name) is not None for name in _SAMPLE_DTYPES)

    def first(self, k: int) -> "ModelFamily":
        """The first ``k`` models."""
        return replace(self, **{name: getattr(self, name)[:k] for name in _PER_MODEL if getattr(self, name) is not None})

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to write: the optional ones only when present."""
        names = [name for name in _ALL_DTYPES if name in _FAMILY_DTYPES or getattr(self, name) is not None]
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

# Arrays a family may lack (added within format version 1), in groups: all of a group or none.
_OPTIONAL_DTYPES = {
    "forget_losses": np.float32,
    "test_losses": np.float32,
}
_SAMPLE_DTYPES = {
    "retain_sample_logits": np.float32,
    "validation_sample_logits": np.float32,
    "retain_sample_indices": np.int64,
    "validation_sample_indices": np.int64,
    "retain_sample_labels": np.int64,
    "validation_sample_labels": np.int64,
}
_OPTIONAL_GROUPS = (_OPTIONAL_DTYPES, _SAMPLE_DTYPES)
# The arrays with one row per model (the others describe the examples).
_PER_MODEL = ("forget_logits", "retain_accuracy", "test_accuracy", "forget_accuracy", "seconds", "seeds",
              "forget_losses", "test_losses", "retain_sample_logits", "validation_sample_logits")
_ALL_DTYPES = {**_FAMILY_DTYPES, **_OPTIONAL_DTYPES, **_SAMPLE_DTYPES}


def _sample_index(retain: np.ndarray, validation: np.ndarray, dataset_labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """The sample's dataset indices and their labels, int64 ``[R]`` and ``[V]``, keyed as in a family."""
    if dataset_labels is None:
        raise ValueError("the labels of the evaluation samples are needed: pass dataset_labels with samples")
    retain, validation = (np.asarray(a, dtype=np.int64) for a in (retain, validation))
    labels = np.asarray(dataset_labels)
    return {"retain_sample_indices": retain, "validation_sample_indices": validation,
            "retain_sample_labels": labels[retain].astype(np.int64),
            "validation_sample_labels": labels[validation].astype(np.int64)}


def write_family(path: str | Path, family: ModelFamily, *, sealed_for: Path | None = None) -> str:
    """Write the arrays atomically, sealed with the public key of the input data folder ``sealed_for``
    if given (see :mod:`unlearning_challenge.sealing`); return the file's sha256."""
    arrays = {k: np.asarray(v, dtype=_ALL_DTYPES[k]) for k, v in family.arrays().items()}
    # Sealed: not compressed, so that the file's size depends on the shapes alone, not on the values.
    data = npz_bytes(arrays, compress=sealed_for is None)
    if sealed_for is not None:
        data = seal(data, sealed_for)
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_family(path: str | Path, *, expected_sha256: str | None, what: str,
                unsealed_with: Path | None = None) -> ModelFamily:
    """Read and check a family's npz (dtypes, shapes, finiteness of accuracies and seconds).

    ``what`` names the artifact in error messages (e.g. "reference data"); ``unsealed_with``:
    the reference data folder whose private key opens a sealed file.
    Logits may hold non-finite values (a diverged model): the metric caps those examples.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what}: {path.name} is missing from {path.parent}")
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ArtifactError(
            f"{what}: {path.name} does not match the checksum in its manifest "
            "(truncated, corrupt or altered); regenerate it"
        )
    if unsealed_with is not None:
        try:
            data = unseal(data, unsealed_with, what=f"{what}: {path.name}")
        except SealingError as exc:
            raise ArtifactError(str(exc)) from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except Exception as exc:
        raise ArtifactError(f"{what}: cannot read {path.name}: {exc}") from exc
    missing = sorted(set(_FAMILY_DTYPES) - set(arrays))
    if missing:
        raise ArtifactError(f"{what}: {path.name} lacks array(s) {missing}")
    dtypes = dict(_FAMILY_DTYPES)
    for group in _OPTIONAL_GROUPS:
        optional = [key for key in group if key in arrays]
        if optional and len(optional) != len(group):
            raise ArtifactError(f"{what}: {path.name} holds {optional} without {sorted(set(group) - set(optional))}")
        dtypes.update({key: group[key] for key in optional})
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
    if family.has_samples:
        for split, size in (("retain", "R"), ("validation", "V")):
            _check_sample_shapes(family, split, size, where)


def _check_sample_shapes(family: ModelFamily, split: str, size: str, where: str) -> None:
    """``<split>_sample_logits`` ``[N, size, C]`` and its indices and labels ``[size]``, labels in 0..C-1."""
    n, _, c = family.forget_logits.shape
    logits = getattr(family, f"{split}_sample_logits")
    if logits.ndim != 3 or logits.shape[0] != n or logits.shape[2] != c:
        raise ArtifactError(f"{where}: {split}_sample_logits has shape {logits.shape}, expected ({n}, {size}, {c}) "
                            "(models, sampled examples, classes)")
    count = logits.shape[1]
    for key in (f"{split}_sample_indices", f"{split}_sample_labels"):
        if getattr(family, key).shape != (count,):
            raise ArtifactError(f"{where}: {key} has shape {getattr(family, key).shape}, expected ({count},) "
                                f"(one per example of {split}_sample_logits)")
    labels = getattr(family, f"{split}_sample_labels")
    if count and (labels.min() < 0 or labels.max() >= c):
        raise ArtifactError(f"{where}: {split}_sample_labels outside 0..{c - 1}")
    if count and getattr(family, f"{split}_sample_indices").min() < 0:
        raise ArtifactError(f"{where}: {split}_sample_indices holds negative dataset indices")


def read_manifest(folder: str | Path, *, name: str = MANIFEST, expected_format: str, what: str) -> dict[str, Any]:
    """Read a folder's manifest as raw JSON and check its format and version.

    The typed readers below (:func:`read_input_manifest`, ...) build on it.
    """
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


def write_manifest(folder: str | Path, manifest: "Manifest | dict[str, Any]", *, name: str | None = None) -> None:
    """Write a typed manifest (to its own file name) or a raw JSON dict (to ``name``, default manifest.json)."""
    if isinstance(manifest, _Record):
        name = name or manifest.FILE_NAME
        manifest = manifest.to_json()
    write_json(Path(folder) / (name or MANIFEST), manifest)


# --- Typed manifests -------------------------------------------------------------------------------
# Each manifest is a frozen dataclass whose fields are the JSON keys (written with sorted keys, so the
# file is the same bytes for the same values), checked by validation.py against their type hints. A
# field with a default may be absent from a file (None: not recorded, e.g. a manifest written before the
# key existed or made by hand), unless it is ``required``; None is left out when written, or written as
# null with ``none_as_null``. Unknown keys are ignored (a file written by a newer program), and null
# stands for an absent key.

_RULES = Rules(ArtifactError, unknown=IGNORE, null_is_absent=True, mapping_name="an object")


class _Record:
    """JSON (de)serialisation of a frozen dataclass whose fields are declared with :func:`validation.key` (here ``_key``)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str):
        """The record from a JSON object; ``where`` starts the error messages (e.g. "input data: manifest.json")."""
        return from_mapping(cls, data, _RULES, where)

    def to_json(self) -> dict[str, Any]:
        """The JSON object: absent optional fields left out, unless written as null."""
        return to_mapping(self)


@dataclass(frozen=True, kw_only=True)
class ModelSummary(_Record):
    """Mean accuracies of one model or of a family (fractions in [0, 1])."""

    retain_accuracy: float  # on the retain set
    test_accuracy: float  # on the test set
    forget_accuracy: float  # on the forget set
    seconds: float | None = _key(default=None, unit="seconds")  # training wall seconds (the original model only)


@dataclass(frozen=True, kw_only=True)
class OriginalRecord(ModelSummary):
    """One of K > 1 original models in the input data: its file, training seed, sha256 and accuracies."""

    file: str  # its name in the input data folder (original_weights_name(k))
    seed: int  # its training seed (ReferenceConfig.original_seeds()[k])
    sha256: str  # sha256 of the file: the ingestion refuses a file that differs


@dataclass(frozen=True, kw_only=True)
class SampleRecord(_Record):
    """Which retain and validation examples every retrained and unlearned model is evaluated on
    (see :func:`unlearning_challenge.data.evaluation_samples`)."""

    size: int = _key(minimum=0)  # reference.sample_size: examples drawn from each split (all of a smaller one)
    seed: int  # the seed they were drawn with (split.seed)
    retain_indices: tuple[int, ...]  # dataset indices of the retain examples, sorted
    validation_indices: tuple[int, ...]  # dataset indices of the validation examples, sorted

    @classmethod
    def of(cls, samples: "EvaluationSamples", *, size: int, seed: int) -> "SampleRecord":
        return cls(size=size, seed=seed, retain_indices=tuple(int(i) for i in samples.retain),
                   validation_indices=tuple(int(i) for i in samples.validation))


@dataclass(frozen=True, kw_only=True)
class PhaseDataManifest(_Record):
    """What the input data and reference data manifests share: the phase, its split, N and timing."""

    FORMAT: ClassVar[str]
    FILE_NAME: ClassVar[str] = MANIFEST
    WHAT: ClassVar[str]

    phase: str  # the phase config's name
    config_fingerprint: str  # sha256 of the phase config (PhaseConfig.fingerprint())
    split_fingerprint: str  # sha256 of the dataset and its split (data.split_fingerprint)
    num_models: int  # N: retrained models in the reference, runs of a submission
    num_forget: int | None = _key(default=None)  # E: forget-set examples
    num_classes: int | None = _key(default=None)  # C: classes of the model
    mean_retrain_seconds: float | None = _key(default=None, unit="seconds")  # wall seconds of one retrain where timed
    calibration_step_seconds: float | None = _key(default=None, unit="seconds")  # wall seconds of one training step there
    timing_source: str | None = _key(default=None)  # how mean_retrain_seconds was measured
    provenance: Mapping[str, str] | None = _key(default=None)  # package, torch, Python versions; device
    # the retain and validation examples whose logits the models keep (None: none, or an older manifest)
    evaluation_samples: SampleRecord | None = _key(default=None)
    num_originals: int | None = _key(default=None, minimum=2)  # K > 1 original models (None: one, K = 1)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "format": self.FORMAT, "format_version": FORMAT_VERSION}


@dataclass(frozen=True, kw_only=True)
class InputManifest(PhaseDataManifest):
    """``input_data/manifest.json``: what the ingestion needs besides the phase config, dataset and weights."""

    FORMAT: ClassVar[str] = INPUT_FORMAT
    WHAT: ClassVar[str] = "input data"

    time_budget_seconds: float = _key(unit="seconds")  # per-run budget: time_fraction x mean_retrain_seconds (wall)
    time_fraction: float | None = _key(default=None)  # the budget as a fraction of one retrain
    time_budget_retain_epochs: float | None = _key(default=None, unit="epochs")  # the budget as passes over the retain set
    original: ModelSummary | None = _key(default=None)  # the original model's (original 0's) accuracies and seconds
    # with K > 1: each original model in order (original k: run i with i mod K = k); None: one (K = 1)
    originals: tuple[OriginalRecord, ...] | None = _key(default=None)
    # wall seconds of one step of each kind of the calibration there ({kind: seconds}, see
    # reference/calibration.py); None: an older manifest, the budget scaled by calibration_step_seconds alone
    calibration_profile: Mapping[str, float] | None = _key(default=None, unit="seconds")


@dataclass(frozen=True, kw_only=True)
class ReferenceManifest(PhaseDataManifest):
    """``reference_data/manifest.json``: what scoring compares against, beside ``reference.npz``."""

    FORMAT: ClassVar[str] = REFERENCE_FORMAT
    WHAT: ClassVar[str] = "reference data"

    arrays_sha256: str | None = _key(default=None)  # sha256 of reference.npz (None: not checked)
    retrained: ModelSummary | None = _key(default=None)  # mean accuracies of the N retrained models


class RunStatus(Choice):
    """How a run ended."""

    OK = "ok"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    BAD_OUTPUT = "bad_output"
    # Cut at the platform's step time limit (see deadline.py): not the submission's failure.
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class RunRecord(_Record):
    """One run: how it ended, its times and what it printed. The runner builds it (a new record
    at each step, with :func:`dataclasses.replace`) and ``ingestion.json`` stores it as is."""

    index: int  # 0 .. N-1
    status: RunStatus = _key(default=RunStatus.CRASHED, required=True)
    seed: int | None = _key(default=None)  # the seed the run was given
    seconds: float = _key(default=0.0, unit="seconds")  # wall seconds, from go to the end
    # CPU seconds of the run's processes (all threads, children included), from go to the end (None: unknown)
    cpu_seconds: float | None = _key(default=None, none_as_null=True, unit="seconds")
    message: str = _key(default="")  # one line for people ("" when ok)
    failure: Failure | None = _key(default=None)  # why it failed, as the trusted side classified it
    traceback_tail: str = _key(default="")  # the end of the submission's traceback
    output_tail: str = _key(default="")  # the end of what it printed
    output_bytes: int | None = _key(default=0, unit="bytes")  # how much it printed (None: withheld)
    exit_code: int | None = _key(default=None, none_as_null=True)  # the worker's exit status
    # "landlock" when the worker was confined, else why it was not (see runner/landlock.py); then what cut
    # its network, or why nothing did (see runner/proccap.py)
    confinement: str = _key(default="")
    process_cap: str = _key(default="")  # what capped its processes, or why nothing did
    # What it used of its budget when over it (ingestion.over_budget: warn scores such a run); None: within it
    over_budget_ratio: float | None = _key(default=None)
    # Which original model (0 .. K-1, reference.num_originals) the run started from; None: the only one (K = 1)
    original: int | None = _key(default=None)
    extra: Mapping[str, Any] = _key(default_factory=dict)  # anything else recorded

    def __post_init__(self) -> None:  # a status or failure given as its string becomes its member (or fails)
        object.__setattr__(self, "status", RunStatus(self.status))
        if self.failure is not None:
            object.__setattr__(self, "failure", Failure(self.failure))

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.OK


@dataclass(frozen=True, kw_only=True)
class IngestionManifest(_Record):
    """``ingestion.json``: the ingestion's status, its runs and what they ran against.

    Written in one of two forms: the short one (``phase`` None: the ingestion failed before
    it read its input) holds only status, message and runs; the full one holds every key,
    None written as null (``worker_start`` left out when unknown).
    """

    FORMAT: ClassVar[str] = INGESTION_FORMAT
    FILE_NAME: ClassVar[str] = INGESTION_MANIFEST
    WHAT: ClassVar[str] = "ingestion output"

    # "ok" (every run ok, arrays written), "partial" (the runs that fit in the step time limit were all ok,
    # their arrays written; see deadline.py) or "failed"
    status: str
    message: str | None = _key(default=None)  # one line for people: what happened
    runs: tuple[RunRecord, ...] = _key(default=())  # one record per run started
    phase: str | None = _key(default=None, none_as_null=True)  # the phase config's name
    config_fingerprint: str | None = _key(default=None, none_as_null=True)  # as in the input data
    split_fingerprint: str | None = _key(default=None, none_as_null=True)  # as in the input data
    num_models: int | None = _key(default=None, none_as_null=True)  # runs in the arrays: those asked for (k <= N), or those that fit
    num_models_asked: int | None = _key(default=None)  # runs asked for, when a partial output holds fewer
    step_time_limit_seconds: float | None = _key(default=None)  # the platform's limit on the step (None: none)
    step_seconds: float | None = _key(default=None)  # under that limit: the step's seconds when this was written
    num_models_reference: int | None = _key(default=None, none_as_null=True)  # N of the input data
    time_budget_seconds: float | None = _key(default=None, none_as_null=True, unit="seconds")  # per run (None: no limit)
    budget_clock: str | None = _key(default=None, none_as_null=True)  # what the budget counts: "wall" or "cpu"
    time_limit_enforced: bool | None = _key(default=None, none_as_null=True)  # a budget was enforced
    device: str | None = _key(default=None, none_as_null=True)  # torch device of the runs
    package_version: str | None = _key(default=None, none_as_null=True)  # this package's version
    arrays_sha256: str | None = _key(default=None, none_as_null=True)  # sha256 of the arrays' file (ok only)
    # True: the arrays are unlearned.npz.sealed, readable only with the reference data's key (sealing.py)
    arrays_sealed: bool | None = _key(default=None)
    timing: Mapping[str, Any] | None = _key(default=None, none_as_null=True)  # how the budget was derived
    worker_user: str | None = _key(default=None, none_as_null=True)  # the user the runs ran as
    isolation_warning: str | None = _key(default=None, none_as_null=True)  # why isolation is weaker, if so
    worker_start: str | None = _key(default=None)  # how workers were started (None: unknown)
    # evaluate on a cluster: each node's budget and the runs held to it ({node, ray_node_id, budget_seconds,
    # speed_ratio, runs}); None: one budget, that of ``time_budget_seconds``
    run_budgets: tuple[Mapping[str, Any], ...] | None = _key(default=None)
    # "shown" or "hidden": whether runs' output, tracebacks and error text were kept (None: unknown)
    participant_output: str | None = _key(default=None)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.phase is None:
            data = {key: data[key] for key in ("status", "message", "runs") if key in data}
        return {**data, "format": self.FORMAT, "format_version": FORMAT_VERSION}


Manifest = InputManifest | ReferenceManifest | IngestionManifest


def _read_typed(cls, folder: str | Path):
    raw = read_manifest(folder, name=cls.FILE_NAME, expected_format=cls.FORMAT, what=cls.WHAT)
    return cls.from_json(raw, where=f"{cls.WHAT}: {cls.FILE_NAME}")


def read_input_manifest(folder: str | Path) -> InputManifest:
    """``<folder>/manifest.json`` of an input data folder, checked (format, version, keys and their kinds)."""
    return _read_typed(InputManifest, folder)


def read_reference_manifest(folder: str | Path) -> ReferenceManifest:
    """``<folder>/manifest.json`` of a reference data folder, checked."""
    return _read_typed(ReferenceManifest, folder)


def read_ingestion_manifest(folder: str | Path) -> IngestionManifest:
    """``<folder>/ingestion.json`` of an ingestion output, checked."""
    return _read_typed(IngestionManifest, folder)
