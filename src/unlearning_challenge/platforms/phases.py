"""Phase planning: which phases go in the bundles, their N, per-run budget, time limit and dates.

A phase goes in only when its phase config and its input and reference data
exist and agree (same config fingerprint, same split, same N); the others are
left out with the reason and the command that makes the missing data.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

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
from unlearning_challenge.config import ConfigError, ParticipantOutput, PartialOutput, PhaseConfig, load_config
from unlearning_challenge.deadline import MIN_PARTIAL_RUNS
from unlearning_challenge.platforms.competition import (
    Competition,
    Phase,
    TimeLimitSettings,
    date_only,
    load_competition,
)
from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.sealing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE

__all__ = [
    "PhasePlan",
    "PhaseWindow",
    "closed_phases_warning",
    "execution_time_limit",
    "make_hint",
    "phase_windows",
    "per_run_seconds",
    "plan_phase",
    "plan_phases",
    "runs_that_fit",
    "step_time_limit_for",
    "time_limit_shortfall",
]


def execution_time_limit(num_runs: int, time_budget_seconds: float, limits: TimeLimitSettings, *,
                         scaled_budget: bool = False) -> int:
    """The platform's per-step time limit in seconds:

    ``ceil(startup + N * (budget * speed * safety_factor + per_run_overhead))``

    where ``speed`` is ``limits.worker_speed_ratio`` when the ingestion scales
    the budget to the worker's speed (``scaled_budget``), else 1.
    """
    if num_runs < 1 or not time_budget_seconds > 0:
        raise BundleError(f"need N >= 1 and a positive per-run budget, got N={num_runs}, budget={time_budget_seconds}")
    seconds = limits.startup_seconds + num_runs * per_run_seconds(time_budget_seconds, limits,
                                                                  scaled_budget=scaled_budget)
    return int(math.ceil(seconds))


def per_run_seconds(time_budget_seconds: float, limits: TimeLimitSettings, *, scaled_budget: bool = False) -> float:
    """What the formula of :func:`execution_time_limit` allows each run after the startup:
    ``budget * speed * safety_factor + per_run_overhead``."""
    speed = limits.worker_speed_ratio if scaled_budget else 1.0
    return time_budget_seconds * speed * limits.safety_factor + limits.per_run_overhead_seconds


def runs_that_fit(limit_seconds: int, num_runs: int, time_budget_seconds: float, limits: TimeLimitSettings, *,
                  scaled_budget: bool = False) -> int:
    """About how many of ``num_runs`` runs that each use their whole budget fit in ``limit_seconds``,
    at the formula's cost per run after its startup (0 to ``num_runs``)."""
    per_run = per_run_seconds(time_budget_seconds, limits, scaled_budget=scaled_budget)
    if not per_run > 0:
        return num_runs
    fit = math.floor((limit_seconds - limits.startup_seconds) / per_run)
    return max(0, min(num_runs, fit))


def _scaled_budget(config: PhaseConfig) -> bool:
    """Whether the ingestion stretches the phase's budget by the worker's measured speed."""
    return getattr(config.ingestion, "budget_scaling", "none") == "machine"


@dataclass
class PhasePlan:
    """What the builder decided for one phase of competition.yaml."""

    phase: Phase
    reasons: list[str] = field(default_factory=list)  # why the phase is left out; empty: included
    # The command that (re)creates the phase's data, when they are missing or stale.
    hint: str | None = None
    num_models: int | None = None
    time_budget_seconds: float | None = None
    execution_time_limit: int | None = None
    computed_time_limit: int | None = None  # the formula's value, whether or not the phase sets its own
    scaled_budget: bool = False  # the formula counts worker_speed_ratio (ingestion.budget_scaling: machine)
    partial_output: PartialOutput | None = None  # the phase config's scoring.partial_output
    budget_retain_epochs: float | None = None  # the budget as passes over the retain set (time_fraction x epochs)
    participant_output: ParticipantOutput | None = None  # the phase config's ingestion.participant_output
    participant_output_source: str = ""  # why: "set in its phase config" or the dataset kind's default

    @property
    def hidden(self) -> bool:
        """Whether participants read only what the trusted side writes (see runner/disclosure.py)."""
        return self.participant_output == ParticipantOutput.HIDDEN

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


def make_hint(phase: Phase) -> str:
    """The command that creates a phase's input and reference data."""
    if phase.make_hint:
        return phase.make_hint
    if (phase.input_data, phase.reference_data) == ("input_data", "reference_data"):
        return f"make reference PHASE={phase.config}"
    return (f"python -m unlearning_challenge reference --config {phase.config} "
            f"--input-data {phase.input_data} --reference-data {phase.reference_data}")


def plan_phase(phase: Phase, root: Path, limits: TimeLimitSettings) -> PhasePlan:
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
    plan.participant_output = config.participant_output
    plan.participant_output_source = ("set in its phase config" if config.ingestion.participant_output is not None
                                      else f"the default for {config.dataset.kind} data")
    if plan.hidden:
        plan.reasons.extend(_sealing_key_problems(phase, root))
    if plan.reasons:
        return plan
    plan.num_models = num_models
    plan.time_budget_seconds = float(budget)
    plan.budget_retain_epochs = config.ingestion.time_fraction * config.training.epochs
    plan.scaled_budget = _scaled_budget(config)
    plan.partial_output = config.scoring.partial_output
    plan.computed_time_limit = execution_time_limit(num_models, float(budget), limits, scaled_budget=plan.scaled_budget)
    plan.execution_time_limit = _effective_time_limit(phase, plan.computed_time_limit)
    return plan


def _effective_time_limit(phase: Phase, computed: int) -> int:
    """The phase's execution_time_limit: competition.yaml's when it sets one, else the formula's ``computed``."""
    return phase.execution_time_limit or computed


def time_limit_shortfall(plan: PhasePlan, limits: TimeLimitSettings) -> str:
    """A warning when an included phase's execution_time_limit (set in competition.yaml) is below what
    a submission using its whole budget needs by the formula: the two figures, about how many runs
    fit, what the phase then does with such a submission and what to change ("" when it fits)."""
    if not plan.included or plan.execution_time_limit >= plan.computed_time_limit:
        return ""
    limit, needed, n = plan.execution_time_limit, plan.computed_time_limit, plan.num_models
    per_run = per_run_seconds(plan.time_budget_seconds, limits, scaled_budget=plan.scaled_budget)
    fit = runs_that_fit(limit, n, plan.time_budget_seconds, limits, scaled_budget=plan.scaled_budget)
    if plan.partial_output == PartialOutput.SCORE:
        outcome = f"the runs that fit are scored, flagged as not comparable (at least {MIN_PARTIAL_RUNS})"
        if fit < MIN_PARTIAL_RUNS:
            outcome += "; fewer fit here, so such a submission fails"
    else:
        outcome = "such a submission fails"
    setting = (plan.partial_output or PartialOutput.FAIL).value
    return (f"{plan.phase.name}: execution_time_limit {limit} s (set in competition.yaml) is below the {needed} s "
            f"that a submission using its whole budget needs on the reference worker ({limits.startup_seconds:g} s "
            f"startup + {n} runs x {per_run:.1f} s, the formula's worst case): at that cost, at least about {fit} "
            f"of its {n} runs fit (a faster worker fits more). This phase has scoring.partial_output: {setting}: {outcome}. To fit every run: lower N (reference.num_models), "
            f"a lower budget (ingestion.time_fraction) in {plan.phase.config}, or a queue that allows {needed} s")


def step_time_limit_for(input_data: str | Path, competition_yaml: str | Path = Path("competition.yaml"), *,
                        root: str | Path | None = None) -> tuple[int | None, str]:
    """The execution_time_limit of the phase of ``competition_yaml`` whose task's input_data folder is
    ``input_data`` (paths compared resolved), as ``make bundle`` computes it and writes it into that
    phase's input-data zip, and where it comes from in a few words; ``(None, why)`` when the file is
    missing or invalid, no phase uses that folder, or its limit cannot be computed. ``root``: the
    folder the file's paths are relative to (default: the file's folder). The first such phase
    answers when several use the folder. Reads only competition.yaml, the phase config and the input
    data's manifest."""
    competition_yaml = Path(competition_yaml)
    if not competition_yaml.is_file():
        return None, f"no {competition_yaml}"
    root = competition_yaml.parent if root is None else Path(root)
    try:
        competition = load_competition(competition_yaml)
    except BundleError as exc:
        return None, str(exc)
    wanted = Path(input_data).resolve()
    phase = next((p for p in competition.phases if (root / p.input_data).resolve() == wanted), None)
    if phase is None:
        return None, f"no phase of {competition_yaml} has {input_data} as its input_data"
    if phase.execution_time_limit is not None:
        return phase.execution_time_limit, f"the {phase.name} phase's execution_time_limit in {competition_yaml}"
    try:
        config = load_config(root / phase.config)
        inputs = read_input_manifest(root / phase.input_data)
        computed = execution_time_limit(inputs.num_models, float(inputs.time_budget_seconds),
                                        competition.time_limit, scaled_budget=_scaled_budget(config))
    except (ConfigError, ArtifactError, BundleError, OSError, TypeError, ValueError) as exc:
        return None, f"the {phase.name} phase's time limit cannot be computed: {exc}"
    return (_effective_time_limit(phase, computed),
            f"the {phase.name} phase's time-limit formula in {competition_yaml} (N={inputs.num_models}, "
            f"{float(inputs.time_budget_seconds):.1f} s budget per run)")


def _sealing_key_problems(phase: Phase, root: Path) -> list[str]:
    """Why a hidden phase's data cannot seal the runs' arrays for the scoring program ([] when they can)."""
    missing = [f"{folder}/{name}" for folder, name in ((phase.input_data, PUBLIC_KEY_FILE),
                                                      (phase.reference_data, PRIVATE_KEY_FILE))
               if not (root / folder / name).is_file()]
    if not missing:
        return []
    return [f"the phase hides what runs control (participant_output: hidden) but {' and '.join(missing)} "
            "is missing, so the runs' arrays would reach participants unsealed; make the key pair with "
            f"`python -m unlearning_challenge seal-keys --input-data {phase.input_data} "
            f"--reference-data {phase.reference_data}`"]


def plan_phases(competition: Competition, root: str | Path) -> list[PhasePlan]:
    """One plan per phase of ``competition``, in order; ``root`` is the folder its paths are relative to."""
    root = Path(root)
    return [plan_phase(phase, root, competition.time_limit) for phase in competition.phases]


@dataclass(frozen=True)
class PhaseWindow:
    """The days an included phase accepts submissions, as Codabench schedules them."""

    name: str
    start: dt.date
    end: dt.date | None  # None: never ends


def phase_windows(competition: Competition, included: list[PhasePlan]) -> list[PhaseWindow]:
    """The window of each included phase.

    A phase ends on its own ``end`` when competition.yaml sets one, else the day
    before the next included phase starts (Codabench refuses overlaps); the last
    one ends on ``end_date``, or never.
    """
    windows = []
    for index, plan in enumerate(included):
        if plan.phase.end is not None:
            end = date_only(plan.phase.end)
        elif index + 1 < len(included):
            end = date_only(included[index + 1].phase.start) - dt.timedelta(days=1)
        else:
            end = None if competition.end_date is None else date_only(competition.end_date)
        windows.append(PhaseWindow(plan.phase.name, date_only(plan.phase.start), end))
    return windows


def closed_phases_warning(windows: list[PhaseWindow], today: dt.date) -> str:
    """A warning when no phase accepts submissions on ``today`` ("" when one does)."""
    if any(w.start <= today and (w.end is None or today <= w.end) for w in windows):
        return ""
    first, last = windows[0], windows[-1]
    if today < first.start:
        when = f"the first phase, {first.name}, opens on {first.start.isoformat()}"
    else:
        when = f"the last phase, {last.name}, closed on {last.end.isoformat()}"
    return (f"no phase accepts submissions today ({today.isoformat()}): {when}; change the phases' start "
            "or end_date in competition.yaml (or the dates in the platform's editor after uploading)")
