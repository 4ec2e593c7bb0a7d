"""Phase configuration: the one source of truth read by reference generation,
ingestion and scoring.

A phase is described by one YAML file (see ``phases/default.yaml``). Every
artifact records the config it came from, so two sides can be compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from unlearning_challenge.metric import BOUNDS
from unlearning_challenge.validation import Rules, from_mapping, key


class ConfigError(ValueError):
    """A phase config is missing a key, has an unknown key or a bad value."""


# A phase config's keys are its dataclasses' fields (see validation.py): unknown keys are refused.
_RULES = Rules(ConfigError)


class Choice(str, Enum):
    """A closed choice whose members are the strings written in the YAML and JSON files.

    A member equals, hashes, formats and reprs as its string, so ``kind == "kaggle"`` holds
    and messages that quote a setting (``{kind!r}``) read as the YAML does.
    """

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class DatasetKind(Choice):
    """Where ``dataset`` images come from; data/adapters.py has one builder for each."""

    SYNTHETIC = "synthetic"  # generated from dataset.seed
    KAGGLE = "kaggle"  # the 2023 Kaggle layout under dataset.root
    CASIA = "casia"  # the CASIA-SURF layout under dataset.root
    CSV = "csv"  # a generic CSV manifest


class ModelArch(Choice):
    """The model architecture (the challenge's only one)."""

    RESNET18 = "resnet18"


class CheckpointDtype(Choice):
    """dtype of the stored original-model checkpoint (the model always runs in float32)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


class BudgetScaling(Choice):
    """How the per-run time budget is carried to the machine that runs the submission."""

    MACHINE = "machine"  # scaled by this machine's speed relative to the reference machine
    NONE = "none"  # the reference machine's time as is


# How scoring estimates the attacks' error rates (see ``docs/metric.md``): the metric's own
# vocabulary, metric.BOUNDS: EMPIRICAL ("empirical", the published rule) and CLOPPER_PEARSON
# ("clopper-pearson", one-sided 1 - alpha upper bounds on FPR and FNR).
RateBounds = Choice("RateBounds", {bound.upper().replace("-", "_"): bound for bound in BOUNDS})


class ParticipantOutput(Choice):
    """What of a run participants may read: its printed output, tracebacks and error text."""

    SHOWN = "shown"  # in ingestion.json and the programs' logs (public data: the Check phase)
    HIDDEN = "hidden"  # only fixed sentences written by the trusted side (private data)


class OverBudget(Choice):
    """What becomes of a run that finished within its hard limit but over its time budget."""

    FAIL = "fail"  # the run fails (timeout): the Feedback and Final phases
    WARN = "warn"  # the run is scored and flagged with the share of the budget it used (a check phase)


class PartialOutput(Choice):
    """What scoring makes of an ingestion output whose runs did not all fit in the platform's step time limit."""

    FAIL = "fail"  # a failed submission, with the ingestion's sentence (never ranked beside complete ones)
    SCORE = "score"  # the runs that fit are scored, flagged as not comparable (at least MIN_PARTIAL_RUNS)


class ReferenceBackend(Choice):
    """Where reference models train."""

    LOCAL = "local"  # this machine, one model after another
    RAY = "ray"  # Ray tasks on a cluster


# The closed choice of dataset.kind, as strings.
DATASET_KINDS = DatasetKind.values()


def _as_choices(section: Any) -> None:
    """In ``__post_init__``: turn the strings of a section's closed choices into their members.

    A field is a closed choice when its default is a :class:`Choice`; a string that is no
    member is left as is (a file's values are checked by :func:`config_from_dict`).
    """
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(f.default, Choice) and not isinstance(value, Choice) and value in f.default.values():
            object.__setattr__(section, f.name, type(f.default)(value))


@dataclass(frozen=True)
class DatasetConfig:
    """Where the images come from.

    kind: ``synthetic`` (generated from ``seed``), ``kaggle``, ``casia`` or
    ``csv`` (read from ``root``).
    """

    kind: DatasetKind = DatasetKind.SYNTHETIC
    seed: int = 0
    num_persons: int = key(default=400, minimum=1)
    min_images_per_person: int = key(default=3, minimum=1)
    max_images_per_person: int = key(default=8, minimum=1)
    image_size: int = key(default=32, unit="pixels", minimum=1)
    label_noise: float = key(default=0.08, minimum=0, maximum=1)
    atypical_fraction: float = key(default=0.1, minimum=0, maximum=1)
    root: str | None = None
    manifest: str | None = None

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class SplitConfig:
    """How persons are divided into train/val/test and train into retain/forget."""

    seed: int = 0
    val_fraction: float = key(default=0.1, above=0, below=1)
    test_fraction: float = key(default=0.2, above=0, below=1)
    forget_fraction: float = key(default=0.02, above=0, below=1)


@dataclass(frozen=True)
class ModelConfig:
    arch: ModelArch = ModelArch.RESNET18
    num_classes: int = key(default=10, minimum=2)
    # dtype of the committed original-model checkpoint ("float32" or "float16");
    # the model is always run in float32.
    checkpoint_dtype: CheckpointDtype = CheckpointDtype.FLOAT32

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class TrainingConfig:
    """The challenge's training recipe for the original and retrained models."""

    epochs: int = key(default=30, minimum=1)
    batch_size: int = key(default=64, minimum=1)
    lr: float = key(default=1e-4, above=0)
    weight_decay: float = key(default=5e-3, minimum=0)
    class_weighted_loss: bool = True
    # Threads used by torch on CPU (0: torch's default).
    cpu_threads: int = key(default=0, minimum=0)


class OriginalsError(ConfigError):
    """``reference.num_originals`` does not fit ``reference.num_models`` or the seeds."""


@dataclass(frozen=True)
class ReferenceConfig:
    """How many retrained models (N) and their seeds (seed_start .. seed_start+N-1); how many
    original models (K) and theirs (:meth:`original_seeds`)."""

    num_models: int = key(default=512, minimum=2)
    seed_start: int = 0
    original_seed: int = 12345
    # Retain and validation examples (each) whose logits every retrained and unlearned model
    # keeps, drawn with split.seed (data/splits.evaluation_samples); 0: none.
    sample_size: int = key(default=256, minimum=0)
    # K: original models, each trained on the whole training set from its own seed; run i of a
    # submission starts from original i mod K. N must be a multiple of K. 1: one original (as in 2023).
    num_originals: int = 1

    def __post_init__(self) -> None:
        problem = originals_problem(self)
        if problem:
            raise OriginalsError(problem)

    def original_seeds(self) -> list[int]:
        """Original k's training seed: ``original_seed + k`` (k = 0 is ``original_seed``, as with K = 1)."""
        return [self.original_seed + k for k in range(self.num_originals)]


def originals_problem(reference: ReferenceConfig) -> str:
    """Why K (``reference.num_originals``) does not fit N and the seeds; "" when it does."""
    k, n = reference.num_originals, reference.num_models
    if isinstance(k, bool) or not isinstance(k, int) or isinstance(n, bool) or not isinstance(n, int):
        return ""  # a value of the wrong kind: the file's checks name it
    if k < 1:
        return (f"'reference.num_originals' must be at least 1, got {k}: set it to 1 (every run starts from one "
                "original model) or to the number of original models to train")
    if k > n:
        return (f"'reference.num_originals' (K = {k}) is more than 'reference.num_models' (N = {n}): every "
                f"original needs at least one run; set K to a divisor of N ({_divisors(n)}) or raise N")
    if n % k:
        return (f"'reference.num_models' (N = {n}) is not a multiple of 'reference.num_originals' (K = {k}): "
                f"every original starts N/K runs; with K = {k} set N to a multiple of {k} (e.g. "
                f"{n - n % k or k} or {n - n % k + k}), or with N = {n} set K to one of {_divisors(n)}")
    retrained = range(reference.seed_start, reference.seed_start + n)
    clash = [seed for seed in reference.original_seeds() if seed in retrained] if k > 1 else []
    if clash:
        return (f"the original models' seeds ('reference.original_seed' + k, k < {k}) include {clash[0]}, a "
                f"retrained model's seed ('reference.seed_start' .. + N - 1 = {retrained.start} .. "
                f"{retrained.stop - 1}): move 'reference.original_seed' or 'reference.seed_start' apart")
    return ""


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


@dataclass(frozen=True)
class IngestionConfig:
    """How the submission is run."""

    batch_size: int = key(default=64, minimum=1)
    # Per-run seeds are seed_start + run index: distinct from the reference seeds.
    seed_start: int = 1_000_000
    # A run may take at most this fraction of one retrain's mean time.
    time_fraction: float = key(default=0.2, above=0)
    # Hard limit per run, as a multiple of the budget, before the worker is killed.
    hard_timeout_factor: float = key(default=3.0, above=0)
    # Worker memory cap in GiB (0: no cap).
    memory_limit_gib: float = key(default=0.0, unit="GiB", minimum=0)
    # Processes a run may hold at once, the worker included (threads are not counted): the
    # seccomp supervisor's cap, and RLIMIT_NPROC for a worker dropped to another user.
    max_processes: int = key(default=512, minimum=2)
    # "machine": scale the budget by this machine's speed relative to the reference
    # machine (timed training steps, see timing.py); "none": the reference time as is.
    budget_scaling: BudgetScaling = BudgetScaling.MACHINE
    # Confine each worker with Landlock to its own run folder (see sandbox.py).
    filesystem_sandbox: bool = True
    # Fork workers from a trusted server that has torch imported (see forkserver.py);
    # false: start each worker as a new Python process (seconds slower per run).
    fork_server: bool = True
    # "fail": a run that finishes over its budget (but within its hard limit) fails; "warn": it is
    # scored and flagged with the share of the budget it used (see OverBudget).
    over_budget: OverBudget = OverBudget.FAIL
    # "shown": participants read their runs' output, tracebacks and error text; "hidden":
    # nothing the submission controls reaches them. None: hidden unless dataset.kind is
    # synthetic (see PhaseConfig.participant_output).
    participant_output: ParticipantOutput | None = None

    def __post_init__(self) -> None:
        _as_choices(self)
        if self.participant_output in ParticipantOutput.values():
            object.__setattr__(self, "participant_output", ParticipantOutput(self.participant_output))


@dataclass(frozen=True)
class ScoringConfig:
    """How scoring estimates the attacks' error rates (see ``docs/metric.md``), and what a partial
    ingestion output is worth.

    bounds: ``empirical`` (the published rule) or ``clopper-pearson`` (one-sided
    ``1 - alpha`` upper bounds on FPR and FNR: high-probability lower bounds on
    each epsilon, a forgetting quality never below the empirical one).
    """

    bounds: RateBounds = RateBounds.EMPIRICAL
    alpha: float = key(default=0.05, above=0, below=1)
    # An ingestion output whose runs did not all fit in the platform's step time limit: "fail" the
    # submission, or "score" the runs that fit (flagged as not comparable; see PartialOutput).
    partial_output: PartialOutput = PartialOutput.FAIL

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class PhaseConfig:
    name: str
    description: str = ""
    # A section left empty in the file (null) holds its defaults.
    dataset: DatasetConfig = key(default_factory=DatasetConfig, null_is_default=True)
    split: SplitConfig = key(default_factory=SplitConfig, null_is_default=True)
    model: ModelConfig = key(default_factory=ModelConfig, null_is_default=True)
    training: TrainingConfig = key(default_factory=TrainingConfig, null_is_default=True)
    reference: ReferenceConfig = key(default_factory=ReferenceConfig, null_is_default=True)
    ingestion: IngestionConfig = key(default_factory=IngestionConfig, null_is_default=True)
    scoring: ScoringConfig = key(default_factory=ScoringConfig, null_is_default=True)

    @property
    def participant_output(self) -> ParticipantOutput:
        """``ingestion.participant_output``, or its default: shown for synthetic data, hidden for any other."""
        if self.ingestion.participant_output is not None:
            return self.ingestion.participant_output
        synthetic = self.dataset.kind == DatasetKind.SYNTHETIC
        return ParticipantOutput.SHOWN if synthetic else ParticipantOutput.HIDDEN

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (closed choices as their strings), as in the YAML file.

        ``reference.num_originals`` is left out when it is 1 (its default), so that a phase of one
        original model is written, and fingerprinted, as before the key existed.
        """
        d = dataclasses.asdict(self, dict_factory=lambda items: {
            key: value.value if isinstance(value, Choice) else value for key, value in items})
        if d["reference"]["num_originals"] == 1:
            d["reference"].pop("num_originals")
        return d

    def fingerprint(self) -> str:
        """sha256 of the settings that define the reference models (not N, not the ingestion or scoring ones).

        N is left out so that a finished reference can grow: more seeds, same models; so is the
        evaluated sample size, and K (``reference.num_originals``): original k is fixed by its seed
        whatever K is, and the retrained models do not depend on K (the input manifest records K
        and each original's seed and sha256, checked by the ingestion).
        """
        d = self.to_dict()
        d.pop("description")
        d.pop("ingestion")
        d.pop("scoring")
        d["reference"].pop("num_models")
        d["reference"].pop("sample_size")  # which examples are evaluated does not change the models
        d["reference"].pop("num_originals", None)  # more originals: the same first ones, the same retrained models
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def config_from_dict(raw: dict[str, Any], source: str = "config") -> PhaseConfig:
    """Build and validate a PhaseConfig from a parsed YAML mapping.

    Every key is checked against its field (validation.py): its type (a float is no
    integer, a bool no number), its closed choice and its bounds; messages start
    with ``source`` and name the key, e.g. ``'training.epochs' must be an integer, got 2.5``.
    """
    try:
        return from_mapping(PhaseConfig, raw, _RULES, source)
    except OriginalsError as exc:
        raise OriginalsError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> PhaseConfig:
    """Read a phase config YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"phase config not found: {path}")
    with path.open() as f:
        raw = yaml.safe_load(f)
    return config_from_dict(raw, source=str(path))


def dump_config(config: PhaseConfig) -> str:
    """The config as YAML text (round-trips through :func:`config_from_dict`)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
