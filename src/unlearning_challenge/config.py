"""Phase configuration: the one source of truth read by reference generation,
ingestion and scoring.

A phase is described by one YAML file (see ``phases/default.yaml``). Every
artifact records the config it came from, so two sides can be compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from unlearning_challenge.metric import BOUNDS


class ConfigError(ValueError):
    """A phase config is missing a key, has an unknown key or a bad value."""


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


class ReferenceBackend(Choice):
    """Where reference models train."""

    LOCAL = "local"  # this machine, one model after another
    RAY = "ray"  # Ray tasks on a cluster


# The closed choice of dataset.kind, as strings.
DATASET_KINDS = DatasetKind.values()


def _as_choices(section: Any) -> None:
    """In ``__post_init__``: turn the strings of a section's closed choices into their members.

    A field is a closed choice when its default is a :class:`Choice`; a string that is no
    member is left as is for :func:`_check_values` to refuse with the valid values.
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
    num_persons: int = 400
    min_images_per_person: int = 3
    max_images_per_person: int = 8
    image_size: int = 32
    label_noise: float = 0.08
    atypical_fraction: float = 0.1
    root: str | None = None
    manifest: str | None = None

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class SplitConfig:
    """How persons are divided into train/val/test and train into retain/forget."""

    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    forget_fraction: float = 0.02


@dataclass(frozen=True)
class ModelConfig:
    arch: ModelArch = ModelArch.RESNET18
    num_classes: int = 10
    # dtype of the committed original-model checkpoint ("float32" or "float16");
    # the model is always run in float32.
    checkpoint_dtype: CheckpointDtype = CheckpointDtype.FLOAT32

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class TrainingConfig:
    """The challenge's training recipe for the original and retrained models."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 5e-3
    class_weighted_loss: bool = True
    # Threads used by torch on CPU (0: torch's default).
    cpu_threads: int = 0


@dataclass(frozen=True)
class ReferenceConfig:
    """How many retrained models (N) and their seeds (seed_start .. seed_start+N-1)."""

    num_models: int = 512
    seed_start: int = 0
    original_seed: int = 12345


@dataclass(frozen=True)
class IngestionConfig:
    """How the submission is run."""

    batch_size: int = 64
    # Per-run seeds are seed_start + run index: distinct from the reference seeds.
    seed_start: int = 1_000_000
    # A run may take at most this fraction of one retrain's mean time.
    time_fraction: float = 0.2
    # Hard limit per run, as a multiple of the budget, before the worker is killed.
    hard_timeout_factor: float = 3.0
    # Worker memory cap in GiB (0: no cap).
    memory_limit_gib: float = 0.0
    # "machine": scale the budget by this machine's speed relative to the reference
    # machine (timed training steps, see timing.py); "none": the reference time as is.
    budget_scaling: BudgetScaling = BudgetScaling.MACHINE
    # Confine each worker with Landlock to its own run folder (see sandbox.py).
    filesystem_sandbox: bool = True
    # Fork workers from a trusted server that has torch imported (see forkserver.py);
    # false: start each worker as a new Python process (seconds slower per run).
    fork_server: bool = True
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
    """How scoring estimates the attacks' error rates (see ``docs/metric.md``).

    bounds: ``empirical`` (the published rule) or ``clopper-pearson`` (one-sided
    ``1 - alpha`` upper bounds on FPR and FNR: high-probability lower bounds on
    each epsilon, a forgetting quality never below the empirical one).
    """

    bounds: RateBounds = RateBounds.EMPIRICAL
    alpha: float = 0.05

    def __post_init__(self) -> None:
        _as_choices(self)


@dataclass(frozen=True)
class PhaseConfig:
    name: str
    description: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    ingestion: IngestionConfig = field(default_factory=IngestionConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    @property
    def participant_output(self) -> ParticipantOutput:
        """``ingestion.participant_output``, or its default: shown for synthetic data, hidden for any other."""
        if self.ingestion.participant_output is not None:
            return self.ingestion.participant_output
        synthetic = self.dataset.kind == DatasetKind.SYNTHETIC
        return ParticipantOutput.SHOWN if synthetic else ParticipantOutput.HIDDEN

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (closed choices as their strings), as in the YAML file."""
        return dataclasses.asdict(self, dict_factory=lambda items: {
            key: value.value if isinstance(value, Choice) else value for key, value in items})

    def fingerprint(self) -> str:
        """sha256 of the settings that define the reference models (not N, not the ingestion or scoring ones).

        N is left out so that a finished reference can grow: more seeds, same models.
        """
        d = self.to_dict()
        d.pop("description")
        d.pop("ingestion")
        d.pop("scoring")
        d["reference"].pop("num_models")
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


_SECTIONS = {
    "dataset": DatasetConfig,
    "split": SplitConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "reference": ReferenceConfig,
    "ingestion": IngestionConfig,
    "scoring": ScoringConfig,
}


def _build_section(name: str, cls: type, raw: Any, source: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} in section '{name}'; valid keys: {sorted(known)}"
        )
    values = {}
    for key, value in raw.items():
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{source}: '{name}.{key}' must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: '{name}.{key}' must be a number, got {value!r}")
            value = type(default)(value) if isinstance(default, float) else value
        values[key] = value
    return cls(**values)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> PhaseConfig:
    """Build and validate a PhaseConfig from a parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    allowed = {"name", "description", *_SECTIONS}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {unknown}; valid keys: {sorted(allowed)}")
    if "name" not in raw:
        raise ConfigError(f"{source}: missing required key 'name'")
    sections = {name: _build_section(name, cls, raw.get(name), source) for name, cls in _SECTIONS.items()}
    config = PhaseConfig(name=str(raw["name"]), description=str(raw.get("description", "")), **sections)
    _check_values(config, source)
    return config


def _check_values(config: PhaseConfig, source: str) -> None:
    if config.reference.num_models < 2:
        raise ConfigError(f"{source}: 'reference.num_models' must be at least 2, got {config.reference.num_models}")
    if config.dataset.kind not in DatasetKind.values():
        raise ConfigError(
            f"{source}: 'dataset.kind' must be one of {', '.join(DatasetKind.values())}; got {config.dataset.kind!r}"
        )
    if config.model.arch not in ModelArch.values():
        raise ConfigError(f"{source}: 'model.arch' must be {_either(ModelArch)}, got {config.model.arch!r}")
    if config.model.checkpoint_dtype not in CheckpointDtype.values():
        raise ConfigError(f"{source}: 'model.checkpoint_dtype' must be {_either(CheckpointDtype)}")
    for key in ("val_fraction", "test_fraction", "forget_fraction"):
        value = getattr(config.split, key)
        if not 0 < value < 1:
            raise ConfigError(f"{source}: 'split.{key}' must be in (0, 1), got {value}")
    if config.ingestion.budget_scaling not in BudgetScaling.values():
        raise ConfigError(f"{source}: 'ingestion.budget_scaling' must be {_either(BudgetScaling)}, "
                          f"got {config.ingestion.budget_scaling!r}")
    if config.scoring.bounds not in RateBounds.values():
        raise ConfigError(
            f"{source}: 'scoring.bounds' must be {_either(RateBounds)}, got {config.scoring.bounds!r}"
        )
    if not 0 < config.scoring.alpha < 1:
        raise ConfigError(f"{source}: 'scoring.alpha' must be in (0, 1), got {config.scoring.alpha}")
    output = config.ingestion.participant_output
    if output is not None and output not in ParticipantOutput.values():
        raise ConfigError(f"{source}: 'ingestion.participant_output' must be {_either(ParticipantOutput)}, "
                          f"got {output!r}")
    if not 0 < config.ingestion.time_fraction:
        raise ConfigError(f"{source}: 'ingestion.time_fraction' must be positive")


def _either(choice: type[Choice]) -> str:
    """The valid values in words: "a", "a or b", "a, b or c"."""
    values = choice.values()
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


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
