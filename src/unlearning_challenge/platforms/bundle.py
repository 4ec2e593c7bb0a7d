"""Build the competition bundles from ``competition/settings.yaml``.

Two zips come out of the same program folders and data:

``competition_bundle.zip``
    CodaLab Competitions' v1.5 format (Codabench reads it too): a
    ``competition.yaml`` at the zip's root that uses only keys CodaLab knows
    (CodaLab passes the yaml's keys straight to its database models, so an
    unknown key breaks the upload), the pages, the logo, and one nested zip per
    program and data item with its files at that zip's root.
``codabench_bundle.zip``
    Codabench's ``version: 2`` format, which can also name the GPU queue.

Each program zip holds its folder (``metadata`` and a thin entry script) plus
the package ``unlearning_challenge/`` vendored beside the script, so it runs
on the competition image from the zip alone. A phase goes in only when its
phase config and its input and reference data exist and agree; the others are
left out with the reason. Zips are deterministic (sorted entries, fixed
timestamps and permissions): rebuilding from the same files gives the same
bytes. Run ``python -m unlearning_challenge.platforms.bundle --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from unlearning_challenge.artifacts import (
    INPUT_FILES,
    MANIFEST,
    REFERENCE_FILES,
    ArtifactError,
    InputManifest,
    ReferenceManifest,
    read_input_manifest,
    read_reference_manifest,
)
from unlearning_challenge.atomic import write_bytes
from unlearning_challenge.config import ConfigError, load_config

__all__ = [
    "BundleError",
    "BuildResult",
    "PhasePlan",
    "Settings",
    "build_bundles",
    "check_metadata_command",
    "codabench_yaml",
    "codalab_yaml",
    "deterministic_zip",
    "execution_time_limit",
    "load_settings",
    "main",
    "plan_phases",
]

DEFAULT_SETTINGS = "competition/settings.yaml"
PACKAGE_DIR = "src/unlearning_challenge"
PACKAGE_NAME = "unlearning_challenge"
PROGRAMS = ("ingestion_program", "scoring_program")
CODALAB_BUNDLE = "competition_bundle.zip"
CODABENCH_BUNDLE = "codabench_bundle.zip"
COMPETITION_YAML = "competition.yaml"

# What CodaLab Competitions accepts (codalab/codalab-competitions,
# codalab/apps/web/models.py: ``CompetitionDefBundle.unpack`` passes the yaml's
# top-level keys, minus html/phases/leaderboard/admin_names, to
# ``Competition(**...)`` and each phase's keys to
# ``CompetitionPhase.objects.get_or_create(**...)``; any other key raises).
CODALAB_TOP_KEYS = frozenset({
    # blocks unpack() removes before creating the Competition
    "html", "phases", "leaderboard", "admin_names",
    # Competition model fields settable from a yaml
    "title", "description", "image", "has_registration", "end_date",
    "competition_docker_image", "enable_detailed_results", "force_submission_to_leaderboard",
    "disallow_leaderboard_modifying", "enable_medical_image_viewer", "show_datasets_from_yaml",
    "reward", "allow_teams", "enable_per_submission_metadata", "allow_public_submissions",
    "enable_forum", "anonymous_leaderboard", "enable_teams", "require_team_approval",
})
CODALAB_PHASE_KEYS = frozenset({
    "phasenumber", "label", "start_date", "description", "color", "max_submissions",
    "max_submissions_per_day", "execution_time_limit", "is_scoring_only", "auto_migration",
    "scoring_program", "reference_data", "ingestion_program", "input_data", "starting_kit",
    "public_data", "datasets", "leaderboard_management_mode", "force_best_submission_to_leaderboard",
    "phase_never_ends", "scoring_program_docker_image", "default_docker_image",
    "disable_custom_docker_image", "ingestion_program_docker_image",
})
CODALAB_LEADERBOARD_KEYS = frozenset({"label", "rank"})
CODALAB_COLUMN_KEYS = frozenset({
    "leaderboard", "label", "rank", "numeric_format", "sort", "selection_default",
    "computed", "column_group",
})
# Codabench's leaderboard submission rules (leaderboards/models.py); CodaLab has
# two flags for the automatic ones (see codalab_yaml).
SUBMISSION_RULES = ("Add", "Add_And_Delete", "Add_And_Delete_Multiple", "Force_Last", "Force_Latest_Multiple",
                    "Force_Best")
CODALAB_PAGES = ("overview", "evaluation", "data", "terms")  # all four are read unconditionally
CODALAB_COLORS = ("white", "orange", "yellow", "green", "blue", "purple")
# Field sizes in the same models.
MAX_TITLE = 100
MAX_PHASE_LABEL = 50
MAX_PHASE_DESCRIPTION = 1000
MAX_COLUMN_KEY = 50
MAX_COLUMN_LABEL = 50

# Variables the platforms substitute in a program's `metadata` command
# (CodaLab: competitions-v1-compute-worker worker.py; Codabench:
# compute_worker/compute_worker.py replace_legacy_metadata_command). $hidden
# is left out of ingestion: Codabench never mounts the reference data there.
METADATA_VARIABLES = {
    "ingestion_program": frozenset({"$program", "$ingestion_program", "$submission_program",
                                    "$input", "$output", "$tmp", "$shared"}),
    "scoring_program": frozenset({"$program", "$input", "$output", "$tmp", "$shared"}),
}
# Keys a program `metadata` may hold: CodaLab's worker fetches any other key's
# value as a URL of another bundle.
METADATA_KEYS = frozenset({"command", "description"})
_SHELL_SYNTAX = re.compile(r"""['"`|&;<>()\\*?~{}]|\$\(""")

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o644
EXCLUDED_NAMES = frozenset({"__pycache__", ".DS_Store", ".ipynb_checkpoints", ".git", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".tmp")

_SETTINGS_KEYS = {
    "title", "description", "logo", "docker_image", "codabench_queue", "registration_required",
    "enable_detailed_results", "end_date", "pages", "starting_kit", "time_limit", "leaderboard", "phases",
}
_PHASE_KEYS = {
    "label", "description", "start_date", "config", "input_data", "reference_data", "public",
    "max_submissions", "max_submissions_per_day", "color", "execution_time_limit", "make_hint",
}
_TIME_LIMIT_KEYS = {"safety_factor", "per_run_overhead_seconds", "startup_seconds", "worker_speed_ratio"}
_COLUMN_KEYS = {"key", "label", "sort", "precision"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class BundleError(ValueError):
    """The settings, a program folder or a page is wrong; the message says what to fix."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TimeLimitSettings:
    """Inputs of :func:`execution_time_limit` (see the settings file's comments)."""

    safety_factor: float = 1.5
    per_run_overhead_seconds: float = 15.0
    startup_seconds: float = 300.0
    # How many times slower than the machines that timed the reference models
    # the slowest worker may be (ingestion scales the budget by the measured ratio).
    worker_speed_ratio: float = 1.0


@dataclass(frozen=True)
class ColumnSettings:
    """One leaderboard column: a key of scores.txt, its label, sort order and digits."""

    key: str
    label: str
    sort: str = "desc"
    precision: int = 4


@dataclass(frozen=True)
class PhaseSettings:
    label: str
    start_date: dt.date
    config: str
    input_data: str
    reference_data: str
    description: str = ""
    public: bool = False
    max_submissions: int = 100
    max_submissions_per_day: int = 5
    color: str | None = None
    execution_time_limit: int | None = None
    make_hint: str | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_") or "phase"


@dataclass(frozen=True)
class Settings:
    """The parsed ``competition/settings.yaml`` (see the file's comments)."""

    title: str
    docker_image: str
    pages: dict[str, str]
    starting_kit: str
    phases: tuple[PhaseSettings, ...]
    columns: tuple[ColumnSettings, ...]
    description: str = ""
    logo: str = "competition/logo.png"
    codabench_queue: str | None = None
    registration_required: bool = False
    enable_detailed_results: bool = True
    end_date: dt.date | None = None
    leaderboard_title: str = "Results"
    submission_rule: str = "Force_Last"
    time_limit: TimeLimitSettings = field(default_factory=TimeLimitSettings)


def _require_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BundleError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(raw: dict, allowed: set[str], where: str, required: Iterable[str] = ()) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise BundleError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(allowed)}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise BundleError(f"{where}: missing required key(s) {missing}")


def _as_date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):  # datetime.datetime is a date too
        return value
    raise BundleError(f"{where} must be a date written YYYY-MM-DD (unquoted), got {value!r}")


def _as_int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BundleError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_number(value: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise BundleError(f"{where} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BundleError(f"{where} must be true or false, got {value!r}")
    return value


def _as_text(value: Any, where: str, max_length: int | None = None, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise BundleError(f"{where} must be a non-empty string, got {value!r}")
    value = value.strip()
    if max_length is not None and len(value) > max_length:
        raise BundleError(f"{where} has {len(value)} characters; CodaLab allows at most {max_length}")
    return value


def _parse_phase(raw: Any, index: int) -> PhaseSettings:
    where = f"phases[{index}]"
    raw = _require_mapping(raw, where)
    _check_keys(raw, _PHASE_KEYS, where, required=("label", "start_date", "config", "input_data", "reference_data"))
    label = _as_text(raw["label"], f"{where}.label", MAX_PHASE_LABEL)
    where = f"phase {label!r}"
    color = raw.get("color")
    if color is not None and color not in CODALAB_COLORS:
        raise BundleError(f"{where}: color must be one of {list(CODALAB_COLORS)}, got {color!r}")
    limit = raw.get("execution_time_limit")
    return PhaseSettings(
        label=label,
        description=_as_text(raw.get("description", ""), f"{where}: description", MAX_PHASE_DESCRIPTION, allow_empty=True),
        start_date=_as_date(raw["start_date"], f"{where}: start_date"),
        config=_as_text(raw["config"], f"{where}: config"),
        input_data=_as_text(raw["input_data"], f"{where}: input_data"),
        reference_data=_as_text(raw["reference_data"], f"{where}: reference_data"),
        public=_as_bool(raw.get("public", False), f"{where}: public"),
        max_submissions=_as_int(raw.get("max_submissions", 100), f"{where}: max_submissions"),
        max_submissions_per_day=_as_int(raw.get("max_submissions_per_day", 5), f"{where}: max_submissions_per_day"),
        color=color,
        execution_time_limit=None if limit in (None, "auto") else _as_int(limit, f"{where}: execution_time_limit", 1),
        make_hint=None if raw.get("make_hint") is None else _as_text(raw["make_hint"], f"{where}: make_hint"),
    )


def _parse_column(raw: Any, index: int) -> ColumnSettings:
    where = f"leaderboard.columns[{index}]"
    raw = _require_mapping(raw, where)
    _check_keys(raw, _COLUMN_KEYS, where, required=("key",))
    key = _as_text(raw["key"], f"{where}.key", MAX_COLUMN_KEY)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise BundleError(f"{where}.key must be a scores.txt key (letters, digits, _), got {key!r}")
    sort = raw.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise BundleError(f"{where}.sort must be asc or desc, got {sort!r}")
    return ColumnSettings(
        key=key,
        label=_as_text(raw.get("label", key), f"{where}.label", MAX_COLUMN_LABEL),
        sort=sort,
        precision=_as_int(raw.get("precision", 4), f"{where}.precision", 1),
    )


def settings_from_dict(raw: Any, source: str = "settings") -> Settings:
    """Validate a parsed settings mapping; errors name the key and the fix."""
    try:
        raw = _require_mapping(raw, "the settings file")
        _check_keys(raw, _SETTINGS_KEYS, "settings",
                    required=("title", "docker_image", "pages", "starting_kit", "leaderboard", "phases"))
        pages = _require_mapping(raw["pages"], "pages")
        missing_pages = [name for name in CODALAB_PAGES if name not in pages]
        if missing_pages:
            raise BundleError(f"pages: CodaLab needs all of {list(CODALAB_PAGES)}; missing {missing_pages}")
        for name in pages:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
                raise BundleError(f"pages: page names are lowercase words, got {name!r}")
        leaderboard = _require_mapping(raw["leaderboard"], "leaderboard")
        _check_keys(leaderboard, {"title", "columns", "submission_rule"}, "leaderboard", required=("columns",))
        submission_rule = leaderboard.get("submission_rule", "Force_Last")
        if submission_rule not in SUBMISSION_RULES:
            raise BundleError(f"leaderboard.submission_rule must be one of {list(SUBMISSION_RULES)}, "
                              f"got {submission_rule!r}")
        if not isinstance(leaderboard["columns"], list) or not leaderboard["columns"]:
            raise BundleError("leaderboard.columns must be a non-empty list")
        columns = tuple(_parse_column(c, i) for i, c in enumerate(leaderboard["columns"]))
        keys = [c.key for c in columns]
        if len(set(keys)) != len(keys):
            raise BundleError(f"leaderboard.columns: duplicate keys in {keys}")
        if not isinstance(raw["phases"], list) or not raw["phases"]:
            raise BundleError("phases must be a non-empty list")
        phases = tuple(_parse_phase(p, i) for i, p in enumerate(raw["phases"]))
        labels = [p.label for p in phases]
        if len(set(labels)) != len(labels):
            raise BundleError(f"phases: duplicate labels in {labels}")
        for before, after in zip(phases, phases[1:]):
            if not _date_only(after.start_date) >= _date_only(before.start_date) + dt.timedelta(days=2):
                raise BundleError(
                    f"phase {after.label!r} must start at least two days after phase {before.label!r} "
                    "(Codabench ends a phase the day before the next one starts)"
                )
        time_limit_raw = _require_mapping(raw.get("time_limit", {}), "time_limit")
        _check_keys(time_limit_raw, _TIME_LIMIT_KEYS, "time_limit")
        defaults = TimeLimitSettings()
        time_limit = TimeLimitSettings(
            safety_factor=_as_number(time_limit_raw.get("safety_factor", defaults.safety_factor),
                                     "time_limit.safety_factor", 1.0),
            per_run_overhead_seconds=_as_number(
                time_limit_raw.get("per_run_overhead_seconds", defaults.per_run_overhead_seconds),
                "time_limit.per_run_overhead_seconds"),
            startup_seconds=_as_number(time_limit_raw.get("startup_seconds", defaults.startup_seconds),
                                       "time_limit.startup_seconds"),
            worker_speed_ratio=_as_number(time_limit_raw.get("worker_speed_ratio", defaults.worker_speed_ratio),
                                          "time_limit.worker_speed_ratio", 1e-3),
        )
        queue = raw.get("codabench_queue")
        if queue is not None:
            queue = _as_text(queue, "codabench_queue")
        end_date = raw.get("end_date")
        if end_date is not None:
            end_date = _as_date(end_date, "end_date")
            if _date_only(end_date) <= _date_only(phases[-1].start_date):
                raise BundleError(f"end_date {end_date} must come after the last phase's start_date")
        docker_image = _as_text(raw["docker_image"], "docker_image")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", docker_image):
            raise BundleError(f"docker_image {docker_image!r} is not a valid image name (lowercase, no spaces)")
        return Settings(
            title=_as_text(raw["title"], "title", MAX_TITLE),
            description=_as_text(raw.get("description", ""), "description", allow_empty=True),
            logo=_as_text(raw.get("logo", "competition/logo.png"), "logo"),
            docker_image=docker_image,
            codabench_queue=queue,
            registration_required=_as_bool(raw.get("registration_required", False), "registration_required"),
            enable_detailed_results=_as_bool(raw.get("enable_detailed_results", True), "enable_detailed_results"),
            end_date=end_date,
            pages={str(k): _as_text(v, f"pages.{k}") for k, v in pages.items()},
            starting_kit=_as_text(raw["starting_kit"], "starting_kit"),
            leaderboard_title=_as_text(leaderboard.get("title", "Results"), "leaderboard.title", MAX_COLUMN_LABEL),
            submission_rule=submission_rule,
            columns=columns,
            phases=phases,
            time_limit=time_limit,
        )
    except BundleError as exc:
        raise BundleError(f"{source}: {exc}") from None


def load_settings(path: str | Path) -> Settings:
    """Read and validate the settings file."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"settings file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: not valid YAML: {exc}") from None
    return settings_from_dict(raw, source=str(path))


def _date_only(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


# --------------------------------------------------------------------------- phases


def execution_time_limit(num_runs: int, time_budget_seconds: float, limits: TimeLimitSettings, *,
                         scaled_budget: bool = False) -> int:
    """The platform's per-step time limit in seconds:

    ``ceil(startup + N * (budget * speed * safety_factor + per_run_overhead))``

    where ``speed`` is ``limits.worker_speed_ratio`` when the ingestion scales
    the budget to the worker's speed (``scaled_budget``), else 1.
    """
    if num_runs < 1 or not time_budget_seconds > 0:
        raise BundleError(f"need N >= 1 and a positive per-run budget, got N={num_runs}, budget={time_budget_seconds}")
    speed = limits.worker_speed_ratio if scaled_budget else 1.0
    seconds = limits.startup_seconds + num_runs * (
        time_budget_seconds * speed * limits.safety_factor + limits.per_run_overhead_seconds
    )
    return int(math.ceil(seconds))


@dataclass
class PhasePlan:
    """What the builder decided for one phase of the settings."""

    settings: PhaseSettings
    reasons: list[str] = field(default_factory=list)
    # The command that (re)creates the phase's data, when they are missing or stale.
    hint: str | None = None
    num_models: int | None = None
    time_budget_seconds: float | None = None
    execution_time_limit: int | None = None
    computed_time_limit: int | None = None  # the formula's value, whether or not the phase overrides it
    budget_retain_epochs: float | None = None  # the budget as passes over the retain set (time_fraction x epochs)

    @property
    def included(self) -> bool:
        return not self.reasons

    def explanation(self) -> str:
        """Why the phase is left out, in one line."""
        text = "; ".join(self.reasons)
        return f"{text}; create the data with `{self.hint}`" if self.hint else text


def _read_manifest(folder: Path, read, what: str) -> InputManifest | ReferenceManifest:
    """The folder's manifest, read and checked by ``read`` (:func:`artifacts.read_input_manifest`
    or :func:`artifacts.read_reference_manifest`); its errors become BundleErrors that name the file's path."""
    path = folder / MANIFEST
    try:
        return read(folder)
    except ArtifactError as exc:
        if exc.__cause__ is not None:  # not readable as JSON
            raise BundleError(f"{what}: cannot read {path}: {exc.__cause__}") from None
        reason = str(exc).removeprefix(f"{what}: {MANIFEST} ")  # e.g. "is not a ... manifest"
        raise BundleError(f"{what}: {path} {reason}") from None


def make_hint(phase: PhaseSettings) -> str:
    """The command that creates a phase's input and reference data."""
    if phase.make_hint:
        return phase.make_hint
    if (phase.input_data, phase.reference_data) == ("input_data", "reference_data"):
        return f"make reference PHASE={phase.config}"
    return (f"python -m unlearning_challenge reference --config {phase.config} "
            f"--input-data {phase.input_data} --reference-data {phase.reference_data}")


def plan_phase(phase: PhaseSettings, root: Path, limits: TimeLimitSettings) -> PhasePlan:
    """Check one phase's config and data; fill N, the per-run budget and the time limit."""
    plan = PhasePlan(phase)
    hint = make_hint(phase)
    config_path = root / phase.config
    config = None
    if not config_path.is_file():
        plan.reasons.append(f"phase config {phase.config} does not exist")
    else:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            plan.reasons.append(f"phase config {phase.config} is invalid: {exc}")
    folders = ((phase.input_data, INPUT_FILES, read_input_manifest, "input data"),
               (phase.reference_data, REFERENCE_FILES, read_reference_manifest, "reference data"))
    manifests: dict[str, InputManifest | ReferenceManifest] = {}
    for folder, files, read, what in folders:
        path = root / folder
        if not path.is_dir():
            plan.reasons.append(f"{what} folder {folder} does not exist")
            plan.hint = hint
            continue
        missing = [name for name in files if not (path / name).is_file()]
        if missing:
            plan.reasons.append(f"{what} folder {folder} lacks {', '.join(missing)}")
            plan.hint = hint
            continue
        try:
            manifests[what] = _read_manifest(path, read, what)
        except BundleError as exc:
            plan.reasons.append(str(exc))
    if plan.reasons:
        return plan
    inputs, reference = manifests["input data"], manifests["reference data"]
    fingerprint = config.fingerprint()
    for what, manifest in manifests.items():
        if manifest.config_fingerprint != fingerprint:
            plan.reasons.append(f"{what} in {phase.input_data if what == 'input data' else phase.reference_data} "
                                f"was made from another phase config than {phase.config}")
            plan.hint = hint
    if inputs.split_fingerprint != reference.split_fingerprint:
        plan.reasons.append("input data and reference data come from different splits")
        plan.hint = hint
    num_models = inputs.num_models
    budget = inputs.time_budget_seconds
    if num_models != reference.num_models:
        plan.reasons.append(f"input data says N={num_models}, reference data N={reference.num_models}")
    elif num_models != config.reference.num_models:
        plan.reasons.append(f"{phase.config} asks for N={config.reference.num_models} but the data hold "
                            f"N={num_models} retrained models")
        plan.hint = hint
    if not isinstance(num_models, int) or num_models < 2:
        plan.reasons.append(f"input data manifest has no valid num_models (got {num_models!r})")
    if not isinstance(budget, (int, float)) or not budget > 0:
        plan.reasons.append(f"input data manifest has no valid time_budget_seconds (got {budget!r})")
    if plan.reasons:
        return plan
    plan.num_models = num_models
    plan.time_budget_seconds = float(budget)
    plan.budget_retain_epochs = config.ingestion.time_fraction * config.training.epochs
    scaled = getattr(config.ingestion, "budget_scaling", "none") == "machine"
    plan.computed_time_limit = execution_time_limit(num_models, float(budget), limits, scaled_budget=scaled)
    plan.execution_time_limit = phase.execution_time_limit or plan.computed_time_limit
    return plan


def plan_phases(settings: Settings, root: str | Path) -> list[PhasePlan]:
    root = Path(root)
    return [plan_phase(phase, root, settings.time_limit) for phase in settings.phases]


# --------------------------------------------------------------------------- programs


def check_metadata_command(command: str, program: str) -> list[str]:
    """Problems with a program's `metadata` command (empty list: none).

    CodaLab v1 splits the command on single spaces and runs it without a
    shell; Codabench splits it with shlex, also without a shell; both replace
    ``$variables`` by plain text.
    """
    problems = []
    if not isinstance(command, str) or not command.strip():
        return ["the command is empty"]
    if command != command.strip() or "  " in command or "\t" in command or "\n" in command:
        problems.append("words must be separated by single spaces (CodaLab splits on ' ')")
    if _SHELL_SYNTAX.search(command):
        problems.append("it uses shell syntax (quotes, pipes, redirections, globs, $(...)): no shell runs it")
    words = command.split(" ")
    if "cd" in words or "&&" in command:
        problems.append("it changes directory or chains commands: no shell runs it")
    if "/app" in command:
        problems.append("it hard-codes /app paths: CodaLab runs with host paths; use $program, $input, ...")
    allowed = METADATA_VARIABLES.get(program, frozenset())
    for variable in re.findall(r"\$[A-Za-z_]+", command):
        if variable not in allowed:
            problems.append(f"{variable} is not substituted for the {program} on both platforms "
                            f"(use {sorted(allowed)})")
    return problems


def read_program_metadata(program_dir: Path, program: str) -> dict:
    """Read and check ``<program_dir>/metadata``; raise BundleError on any problem."""
    path = program_dir / "metadata"
    if not path.is_file():
        raise BundleError(f"{program_dir}: no file named `metadata` (the platforms read its `command:` line)")
    try:
        metadata = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(metadata, dict) or "command" not in metadata:
        raise BundleError(f"{path}: needs a `command:` line")
    extra = sorted(set(metadata) - METADATA_KEYS)
    if extra:
        raise BundleError(f"{path}: unexpected key(s) {extra} (CodaLab fetches them as bundle URLs); "
                          f"keep only {sorted(METADATA_KEYS)}")
    problems = check_metadata_command(metadata["command"], program)
    if problems:
        raise BundleError(f"{path}: command {metadata['command']!r}: " + "; ".join(problems))
    return metadata


# --------------------------------------------------------------------------- zips


def _excluded(path: Path) -> bool:
    return any(part in EXCLUDED_NAMES for part in path.parts) or path.name.endswith(EXCLUDED_SUFFIXES)


def folder_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """``(name in zip, file)`` for every file under ``folder`` (skipping caches), sorted."""
    entries = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_dir() or _excluded(rel):
            continue
        entries.append((prefix + rel.as_posix(), path))
    return entries


def deterministic_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """Zip ``(name, data)`` pairs: sorted, fixed timestamps and modes, deflated.

    The same entries always give the same bytes.
    """
    entries = sorted(entries, key=lambda item: item[0])
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise BundleError(f"duplicate names in a zip: {sorted({n for n in names if names.count(n) > 1})}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = 3  # unix, so the mode below is read back
            info.external_attr = (0o100000 | ZIP_FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def folder_zip(folder: Path) -> bytes:
    """The folder's files at the zip's root."""
    return deterministic_zip((name, path.read_bytes()) for name, path in folder_files(folder))


def program_zip(program_dir: Path, package_dir: Path, program: str) -> bytes:
    """A program folder with the package vendored beside its entry script."""
    if not program_dir.is_dir():
        raise BundleError(f"program folder {program_dir} does not exist")
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"package folder {package_dir} not found (it is vendored into the program zips)")
    read_program_metadata(program_dir, program)
    own = folder_files(program_dir)
    if any(name.split("/")[0] == PACKAGE_NAME for name, _ in own):
        raise BundleError(f"{program_dir} already holds {PACKAGE_NAME}/; remove it (the build vendors the package)")
    vendored = folder_files(package_dir, prefix=PACKAGE_NAME + "/")
    return deterministic_zip((name, path.read_bytes()) for name, path in own + vendored)


# --------------------------------------------------------------------------- pages and logo


def render_logo(path: Path) -> None:
    """Draw the competition logo (a PNG) with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig = plt.figure(figsize=(2.56, 2.56), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.patch.set_facecolor("#10263f")
    rng = np.random.default_rng(2023)
    # A grid of "training examples"; the forgotten ones fade out.
    xs, ys = np.meshgrid(np.linspace(0.14, 0.86, 7), np.linspace(0.3, 0.86, 6))
    forgotten = rng.random(xs.shape) < 0.12
    ax.scatter(xs[~forgotten], ys[~forgotten], s=150, color="#7fc8f8", edgecolors="none")
    ax.scatter(xs[forgotten], ys[forgotten], s=150, facecolors="none", edgecolors="#f5a65b", linewidths=1.5,
               linestyles="--")
    ax.text(0.5, 0.12, "UNLEARN", ha="center", va="center", color="white", fontsize=22, fontweight="bold",
            family="DejaVu Sans")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=fig.get_facecolor(), metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def phase_windows(settings: Settings, included: list[PhasePlan]) -> list[tuple[str, dt.date, dt.date | None]]:
    """(label, first day, last day or None) of each included phase, as Codabench schedules them.

    A phase ends the day before the next one starts (Codabench refuses overlaps);
    the last one ends on ``end_date``, or never.
    """
    windows = []
    for index, plan in enumerate(included):
        if index + 1 < len(included):
            end = _date_only(included[index + 1].settings.start_date) - dt.timedelta(days=1)
        else:
            end = None if settings.end_date is None else _date_only(settings.end_date)
        windows.append((plan.settings.label, _date_only(plan.settings.start_date), end))
    return windows


def closed_phases_warning(windows: list[tuple[str, dt.date, dt.date | None]], today: dt.date) -> str:
    """A warning when no phase accepts submissions on ``today`` ("" when one does)."""
    if any(start <= today and (end is None or today <= end) for _, start, end in windows):
        return ""
    label, start, _ = windows[0]
    if today < start:
        when = f"the first phase, {label}, opens on {start.isoformat()}"
    else:
        last_label, _, last_end = windows[-1]
        when = f"the last phase, {last_label}, closed on {last_end.isoformat()}"
    return (f"no phase accepts submissions today ({today.isoformat()}): {when}; change the phases' start_date "
            "or end_date in the settings (or the dates in the platform's editor after uploading)")


def _phases_table(plans: list[PhasePlan], settings: Settings) -> str:
    rows = []
    for plan in plans:
        if not plan.included:
            continue
        p = plan.settings
        rows.append(
            "<tr>"
            f"<td>{_html_escape(p.label)}</td><td>{_date_only(p.start_date).isoformat()}</td>"
            f"<td>{plan.num_models}</td><td>{plan.time_budget_seconds:.1f} s "
            f"(about {plan.budget_retain_epochs:g} retain epochs)</td>"
            f"<td>{plan.execution_time_limit} s</td>"
            f"<td>{p.max_submissions} ({p.max_submissions_per_day} per day)</td>"
            "</tr>"
        )
    end = f" The competition ends on {_date_only(settings.end_date).isoformat()}." if settings.end_date else ""
    return (
        "<table>\n<thead><tr><th>Phase</th><th>Starts</th><th>Runs N</th><th>Time budget per run</th>"
        "<th>Platform time limit per step</th><th>Submissions</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + f"\n</tbody>\n</table>\n<p>Dates are UTC.{end}</p>"
    )


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_page(text: str, context: dict[str, str], source: str) -> str:
    """Fill ``{{ name }}`` placeholders; an unknown name is an error."""
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in context:
            raise BundleError(f"{source}: unknown placeholder {{{{ {name} }}}}; known: {sorted(context)}")
        return context[name]

    rendered = _PLACEHOLDER.sub(replace, text)
    if not rendered.strip():
        raise BundleError(f"{source} is empty (Codabench refuses empty pages)")
    return rendered


def _page_context(settings: Settings, plans: list[PhasePlan]) -> dict[str, str]:
    limits = settings.time_limit
    return {
        "title": _html_escape(settings.title),
        "phases_table": _phases_table(plans, settings),
        "safety_factor": f"{limits.safety_factor:g}",
        "per_run_overhead_seconds": f"{limits.per_run_overhead_seconds:g}",
        "startup_seconds": f"{limits.startup_seconds:g}",
        "worker_speed_ratio": f"{limits.worker_speed_ratio:g}",
    }


# --------------------------------------------------------------------------- yaml


@dataclass(frozen=True)
class PhaseFiles:
    """Names, inside the bundle, of one phase's nested zips."""

    input_data: str
    reference_data: str


@dataclass(frozen=True)
class BundleLayout:
    logo: str
    pages: dict[str, str]
    ingestion_program: str
    scoring_program: str
    starting_kit: str
    phase_files: dict[str, PhaseFiles]  # by phase label


def codalab_yaml(settings: Settings, plans: list[PhasePlan], layout: BundleLayout) -> dict[str, Any]:
    """The v1.5 ``competition.yaml`` (only keys CodaLab Competitions knows)."""
    included = [plan for plan in plans if plan.included]
    doc: dict[str, Any] = {
        "title": settings.title,
        "description": settings.description,
        "image": layout.logo,
        "has_registration": settings.registration_required,
    }
    if settings.end_date is not None:
        doc["end_date"] = settings.end_date
    doc["competition_docker_image"] = settings.docker_image
    if settings.submission_rule in ("Force_Last", "Force_Latest_Multiple"):
        doc["force_submission_to_leaderboard"] = True  # each new submission replaces the participant's entry
    doc["enable_detailed_results"] = settings.enable_detailed_results
    doc["html"] = dict(layout.pages)
    phases = {}
    for number, plan in enumerate(included, start=1):
        p = plan.settings
        files = layout.phase_files[p.label]
        phase: dict[str, Any] = {
            "phasenumber": number,
            "label": p.label,
            "start_date": p.start_date,
            "description": p.description,
        }
        if p.color:
            phase["color"] = p.color
        phase.update({
            "max_submissions": p.max_submissions,
            "max_submissions_per_day": p.max_submissions_per_day,
            "execution_time_limit": plan.execution_time_limit,
            "is_scoring_only": False,
            "scoring_program": layout.scoring_program,
            "ingestion_program": layout.ingestion_program,
            "input_data": files.input_data,
            "reference_data": files.reference_data,
            "starting_kit": layout.starting_kit,
        })
        if settings.submission_rule == "Force_Best":
            phase["force_best_submission_to_leaderboard"] = True
        if p.public:
            phase["public_data"] = files.input_data
        phases[number] = phase
    doc["phases"] = phases
    board = {"label": settings.leaderboard_title, "rank": 1}
    doc["leaderboard"] = {
        "leaderboards": {"RESULTS": board},
        "columns": {
            column.key: {
                "leaderboard": board,  # the same object: PyYAML writes an anchor and aliases
                "label": column.label,
                "rank": rank,
                "numeric_format": column.precision,
                "sort": column.sort,
            }
            for rank, column in enumerate(settings.columns, start=1)
        },
    }
    return doc


def codabench_yaml(settings: Settings, plans: list[PhasePlan], layout: BundleLayout) -> dict[str, Any]:
    """The Codabench ``version: 2`` yaml (docker image and GPU queue included)."""
    included = [plan for plan in plans if plan.included]
    doc: dict[str, Any] = {
        "version": 2,
        "title": settings.title,
        "description": settings.description,
        "image": layout.logo,
        "registration_auto_approve": not settings.registration_required,
        "docker_image": settings.docker_image,
        "queue": settings.codabench_queue,
        "enable_detailed_results": settings.enable_detailed_results,
        "terms": layout.pages["terms"],
        "pages": [{"title": name.replace("_", " ").capitalize(), "file": page}
                  for name, page in layout.pages.items() if name != "terms"],
        "tasks": [],
        "phases": [],
    }
    for index, (plan, (_, start, end)) in enumerate(zip(included, phase_windows(settings, included))):
        p = plan.settings
        files = layout.phase_files[p.label]
        doc["tasks"].append({
            "index": index,
            "name": f"{p.label} task",
            "description": p.description,
            "scoring_program": layout.scoring_program,
            "ingestion_program": layout.ingestion_program,
            "input_data": files.input_data,
            "reference_data": files.reference_data,
        })
        phase: dict[str, Any] = {
            "index": index,
            "name": p.label,
            "description": p.description,
            "start": start,
        }
        if end is not None:
            phase["end"] = end
        phase.update({
            "max_submissions": p.max_submissions,
            "max_submissions_per_day": p.max_submissions_per_day,
            "execution_time_limit": plan.execution_time_limit,
            "tasks": [index],
            "starting_kit": layout.starting_kit,
        })
        if p.public:
            phase["public_data"] = files.input_data
        doc["phases"].append(phase)
    doc["leaderboards"] = [{
        "index": 0,
        "title": settings.leaderboard_title,
        "key": "RESULTS",
        "submission_rule": settings.submission_rule,
        "columns": [
            {"title": column.label, "key": column.key, "index": index, "sorting": column.sort,
             "precision": column.precision}
            for index, column in enumerate(settings.columns)
        ],
    }]
    return doc


def dump_yaml(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100).encode("utf-8")


# --------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    plans: list[PhasePlan]
    codalab_bundle: Path
    codabench_bundle: Path
    warnings: list[str]

    @property
    def included(self) -> list[PhasePlan]:
        return [plan for plan in self.plans if plan.included]


def _logo_bytes(settings: Settings, root: Path, log: Callable[[str], None]) -> bytes:
    path = root / settings.logo
    if not path.is_file():
        log(f"logo {settings.logo} is missing: drawing one")
        render_logo(path)
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BundleError(f"logo {settings.logo} is not a PNG file")
    return data


def build_bundles(
    settings_path: str | Path = DEFAULT_SETTINGS,
    *,
    root: str | Path = ".",
    out_dir: str | Path = "dist",
    log: Callable[[str], None] = print,
    today: dt.date | None = None,
) -> BuildResult:
    """Write ``competition_bundle.zip`` and ``codabench_bundle.zip`` into ``out_dir``.

    ``root`` is the repository root; the settings' paths are relative to it.
    Raises BundleError when no phase can be included or a program, page or
    setting is wrong.
    """
    root = Path(root)
    settings = load_settings(root / settings_path)
    plans = plan_phases(settings, root)
    for plan in plans:
        if plan.included:
            source = ("" if plan.settings.execution_time_limit is None
                      else f", set in the settings; the formula gives {plan.computed_time_limit} s")
            log(f"{plan.settings.label}: included (N={plan.num_models}, {plan.time_budget_seconds:.1f} s per run, "
                f"execution_time_limit {plan.execution_time_limit} s{source})")
        else:
            log(f"{plan.settings.label}: left out: {plan.explanation()}")
    included = [plan for plan in plans if plan.included]
    if not included:
        raise BundleError("no phase can be included (see the reasons above); the Check phase needs "
                          "input_data/ and reference_data/ from `make reference`")
    warnings = []
    closed = closed_phases_warning(phase_windows(settings, included), today or dt.date.today())
    if closed:
        warnings.append(closed)
    if settings.codabench_queue is None:
        warnings.append("codabench_queue is not set: on Codabench, submissions go to the default queue "
                        "(no GPU, 600 s per step); set the vhost of your GPU queue in the settings")
        longest = max(plan.execution_time_limit for plan in included)
        if longest > 600:
            warnings.append(f"an execution_time_limit of {longest} s exceeds the default Codabench queue's cap")

    files: dict[str, bytes] = {}
    package_dir = root / PACKAGE_DIR
    layout_programs = {}
    for program in PROGRAMS:
        name = f"{program}.zip"
        files[name] = program_zip(root / program, package_dir, program)
        layout_programs[program] = name
    kit_dir = root / settings.starting_kit
    if not kit_dir.is_dir():
        raise BundleError(f"starting kit folder {settings.starting_kit} does not exist")
    files["starting_kit.zip"] = folder_zip(kit_dir)

    zip_by_folder: dict[tuple[str, Path], str] = {}
    phase_files = {}
    for plan in included:
        names = []
        for kind, folder in (("input_data", plan.settings.input_data), ("reference_data", plan.settings.reference_data)):
            key = (kind, (root / folder).resolve())
            if key not in zip_by_folder:
                name = f"{plan.settings.slug}_{kind}.zip"
                files[name] = folder_zip(root / folder)
                zip_by_folder[key] = name
            names.append(zip_by_folder[key])
        phase_files[plan.settings.label] = PhaseFiles(*names)

    logo_name = "logo.png"
    files[logo_name] = _logo_bytes(settings, root, log)
    context = _page_context(settings, plans)
    page_names = {}
    for name, page in settings.pages.items():
        path = root / page
        if not path.is_file():
            raise BundleError(f"page {name!r}: {page} does not exist")
        page_name = f"{name}.html"
        files[page_name] = render_page(path.read_text(encoding="utf-8"), context, page).encode("utf-8")
        page_names[name] = page_name

    layout = BundleLayout(
        logo=logo_name,
        pages=page_names,
        ingestion_program=layout_programs["ingestion_program"],
        scoring_program=layout_programs["scoring_program"],
        starting_kit="starting_kit.zip",
        phase_files=phase_files,
    )
    out_dir = Path(out_dir)
    if not out_dir.is_absolute():
        out_dir = root / out_dir
    codalab_path = out_dir / CODALAB_BUNDLE
    codabench_path = out_dir / CODABENCH_BUNDLE
    for path, doc in ((codalab_path, codalab_yaml(settings, plans, layout)),
                      (codabench_path, codabench_yaml(settings, plans, layout))):
        write_bytes(path, deterministic_zip([*files.items(), (COMPETITION_YAML, dump_yaml(doc))]))
        log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    for warning in warnings:
        log(f"warning: {warning}")
    return BuildResult(plans=plans, codalab_bundle=codalab_path, codabench_bundle=codabench_path, warnings=warnings)


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unlearning_challenge.platforms.bundle",
        description="Build dist/competition_bundle.zip (CodaLab v1.5) and dist/codabench_bundle.zip (Codabench v2).",
    )
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="competition settings file, relative to --root (default: %(default)s)")
    parser.add_argument("--root", default=".", help="repository root the settings' paths are relative to")
    parser.add_argument("--out-dir", default="dist", help="where to write the bundles (default: %(default)s)")
    parser.add_argument("--get", metavar="KEY", choices=["docker_image", "codabench_queue", "title"],
                        help="print one setting and exit (for the Makefile)")
    parser.add_argument("--draw-logo", action="store_true", help="(re)draw the logo file named in the settings and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings_path = Path(args.root) / args.settings
        if args.get:
            value = getattr(load_settings(settings_path), args.get)
            print("" if value is None else value)
            return 0
        if args.draw_logo:
            path = Path(args.root) / load_settings(settings_path).logo
            render_logo(path)
            print(f"wrote {path}")
            return 0
        build_bundles(args.settings, root=args.root, out_dir=args.out_dir)
    except BundleError as exc:
        print(f"make bundle: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
