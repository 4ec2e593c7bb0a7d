"""Load and validate ``competition.yaml``, the one file organizers edit.

The file is Codabench's ``version: 2`` competition.yaml with folders where the
platform expects zips, plus ``unlearning:`` mappings (one at the top, one per
phase) for this competition's own settings. :func:`load_competition` checks every key with
the package's one validation layer (:mod:`~unlearning_challenge.validation`):
every message names the key, the expected and the actual value. What depends on the phase data (N, budgets, time limits) is
checked later, by :mod:`~unlearning_challenge.platforms.phases`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.scoring.result import SCORES_TXT_KEYS
from unlearning_challenge.validation import Rules, Spec, check, check_keys, fail, from_mapping
from unlearning_challenge.validation import key as _key

__all__ = [
    "Column",
    "Competition",
    "Leaderboard",
    "Page",
    "Phase",
    "Task",
    "TimeLimitSettings",
    "competition_from_dict",
    "date_only",
    "load_competition",
]

DEFAULT_COMPETITION = "competition.yaml"

# Codabench's leaderboard submission rules (leaderboards/models.py); CodaLab has
# two flags for the automatic ones (see dialects.codalab_yaml).
SUBMISSION_RULES = ("Add", "Add_And_Delete", "Add_And_Delete_Multiple", "Force_Last", "Force_Latest_Multiple",
                    "Force_Best")
CODALAB_PAGES = ("overview", "evaluation", "data", "terms")  # all four are read unconditionally
CODALAB_COLORS = ("white", "orange", "yellow", "green", "blue", "purple")
# Field sizes in CodaLab's models.
MAX_TITLE = 100
MAX_PHASE_LABEL = 50
MAX_PHASE_DESCRIPTION = 1000
MAX_COLUMN_KEY = 50
MAX_COLUMN_LABEL = 50

_TOP_KEYS = {
    "version", "title", "description", "image", "docker_image", "queue", "registration_auto_approve",
    "enable_detailed_results", "end_date", "terms", "pages", "phases", "tasks", "leaderboards", "unlearning",
}
_PHASE_KEYS = {
    "index", "name", "description", "start", "end", "tasks", "max_submissions", "max_submissions_per_day",
    "execution_time_limit", "starting_kit", "public_data", "unlearning",
}
_PHASE_EXTRA_KEYS = {"config", "color", "make_hint"}
_TASK_KEYS = {"index", "name", "description", "input_data", "reference_data", "ingestion_program", "scoring_program"}
_PAGE_KEYS = {"title", "file"}
_LEADERBOARD_KEYS = {"index", "title", "key", "submission_rule", "columns"}
_COLUMN_KEYS = {"title", "key", "index", "sorting", "precision"}
_TOP_EXTRA_KEYS = {"time_limit"}

# Unknown keys are refused; messages name the key by its path (the file's name is added by competition_from_dict).
_RULES = Rules(BundleError)


@dataclass(frozen=True)
class TimeLimitSettings:
    """Inputs of :func:`phases.execution_time_limit` (see competition.yaml's comments)."""

    safety_factor: float = _key(default=1.5, minimum=1.0)
    per_run_overhead_seconds: float = _key(default=15.0, minimum=0.0, unit="seconds")
    startup_seconds: float = _key(default=300.0, minimum=0.0, unit="seconds")
    # How many times slower than the machines that timed the reference models
    # the slowest worker may be (ingestion scales the budget by the measured ratio).
    worker_speed_ratio: float = _key(default=1.0, minimum=1e-3)


@dataclass(frozen=True)
class Page:
    """One web page: its tab title and HTML file; ``name`` (e.g. ``overview``) keys CodaLab's ``html``."""

    title: str
    file: str

    @property
    def name(self) -> str:
        return _slug(self.title)


@dataclass(frozen=True)
class Task:
    """One Codabench task: the folders of its data and programs."""

    index: int
    name: str
    input_data: str
    reference_data: str
    ingestion_program: str
    scoring_program: str
    description: str | None = None  # None: the phase's description


@dataclass(frozen=True)
class Phase:
    """One phase, with its one task and its ``unlearning:`` settings."""

    index: int
    name: str
    start: dt.date
    task: Task
    config: str  # the phase config its data were made from
    starting_kit: str
    description: str = ""
    end: dt.date | None = None  # None: the day before the next phase starts, or the competition's end_date
    max_submissions: int = 100
    max_submissions_per_day: int = 5
    execution_time_limit: int | None = None  # None: computed from the data (phases.execution_time_limit)
    public_data: bool = False  # participants may download the input data
    color: str | None = None  # CodaLab only
    make_hint: str | None = None  # the command that creates missing data

    @property
    def slug(self) -> str:
        return _slug(self.name) or "phase"

    @property
    def input_data(self) -> str:
        return self.task.input_data

    @property
    def reference_data(self) -> str:
        return self.task.reference_data


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a key of scores.txt, its title, sorting and digits."""

    key: str
    title: str
    sorting: str = "desc"
    precision: int = 4


@dataclass(frozen=True)
class Leaderboard:
    title: str
    key: str
    columns: tuple[Column, ...]
    submission_rule: str = "Force_Last"


@dataclass(frozen=True)
class Competition:
    """The parsed ``competition.yaml`` (see the file's comments)."""

    title: str
    docker_image: str
    terms: str
    pages: tuple[Page, ...]  # without the terms
    phases: tuple[Phase, ...]
    leaderboard: Leaderboard
    description: str = ""
    image: str = "competition/logo.png"
    queue: str | None = None  # Codabench only
    registration_auto_approve: bool = True
    enable_detailed_results: bool = True
    end_date: dt.date | None = None
    time_limit: TimeLimitSettings = field(default_factory=TimeLimitSettings)


def date_only(value: dt.date) -> dt.date:
    """The date of a date or datetime (YAML reads ``2023-06-28 12:00`` as a datetime)."""
    return value.date() if isinstance(value, dt.datetime) else value


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# --------------------------------------------------------------------------- value checks


# Each takes the key's path in the file and, where the path alone does not say which phase, a ``where``
# ("phase 'Check'") that starts the message.


def _require_mapping(value: Any, path: str, where: str = "") -> dict:
    return check(value, dict, _RULES, where, path)


def _require_list(value: Any, path: str, where: str = "") -> list:
    return check(value, list, _RULES, where, path, Spec(min_items=1))


def _check_keys(raw: dict, allowed: set[str], path: str, where: str = "", required: Iterable[str] = ()) -> None:
    check_keys(raw, allowed, _RULES, where, path, tuple(required))


def _as_date(value: Any, path: str, where: str = "") -> dt.date:
    return check(value, dt.date, _RULES, where, path)


def _as_int(value: Any, path: str, where: str = "", minimum: int = 0) -> int:
    return check(value, int, _RULES, where, path, Spec(minimum=minimum))


def _as_bool(value: Any, path: str) -> bool:
    return check(value, bool, _RULES, "", path)


def _as_text(value: Any, path: str, where: str = "", max_length: int | None = None, allow_empty: bool = False) -> str:
    value = check(value, str, _RULES, where, path).strip()
    if not allow_empty and not value:
        fail(_RULES, where, path, "must be a non-empty string, got ''")
    if max_length is not None and len(value) > max_length:
        fail(_RULES, where, path, f"has {len(value)} characters; CodaLab allows at most {max_length}")
    return value


def _check_index(raw: dict, position: int, path: str) -> int:
    """Codabench's ``index`` of a listed item; here it must be the item's position in its list."""
    index = _as_int(raw["index"], f"{path}.index")
    if index != position:
        fail(_RULES, "", f"{path}.index", f"must be {position} (listed in index order), got {index}")
    return index


# --------------------------------------------------------------------------- sections


def _parse_task(raw: Any, position: int) -> Task:
    path = f"tasks[{position}]"
    raw = _require_mapping(raw, path)
    _check_keys(raw, _TASK_KEYS, path, required=(
        "index", "name", "input_data", "reference_data", "ingestion_program", "scoring_program"))
    description = raw.get("description")
    return Task(
        index=_check_index(raw, position, path),
        name=_as_text(raw["name"], f"{path}.name"),
        description=None if description is None else _as_text(description, f"{path}.description", allow_empty=True),
        **{key: _as_text(raw[key], f"{path}.{key}")
           for key in ("input_data", "reference_data", "ingestion_program", "scoring_program")},
    )


def _parse_phase(raw: Any, position: int, tasks: tuple[Task, ...]) -> Phase:
    path = f"phases[{position}]"
    raw = _require_mapping(raw, path)
    _check_keys(raw, _PHASE_KEYS, path, required=("index", "name", "start", "tasks", "starting_kit", "unlearning"))
    index = _check_index(raw, position, path)
    name = _as_text(raw["name"], f"{path}.name", max_length=MAX_PHASE_LABEL)
    where = f"phase {name!r}"  # the phase's own keys below: "phase 'Check': 'start' must be ..."
    extra = _require_mapping(raw["unlearning"], "unlearning", where)
    _check_keys(extra, _PHASE_EXTRA_KEYS, "unlearning", where, required=("config",))
    task_indexes = raw["tasks"]
    if not isinstance(task_indexes, list) or len(task_indexes) != 1:
        raise BundleError(f"{where}: tasks must list one task index (each phase's data are checked as one "
                          f"input/reference pair), got {task_indexes!r}")
    task_index = task_indexes[0]
    if isinstance(task_index, bool) or task_index not in range(len(tasks)):
        raise BundleError(f"{where}: tasks names task {task_index!r}; the tasks' indexes are "
                          f"{[task.index for task in tasks]}")
    task = tasks[task_index]
    public_data = raw.get("public_data")
    if public_data is not None and public_data != task.input_data:
        raise BundleError(f"{where}: public_data must be the phase's input_data folder ({task.input_data}) "
                          f"or absent, got {public_data!r}")
    color = extra.get("color")
    if color is not None:
        color = check(color, str, _RULES, where, "unlearning.color", Spec(choices=CODALAB_COLORS))
    start = _as_date(raw["start"], "start", where)
    end = raw.get("end")
    if end is not None:
        end = _as_date(end, "end", where)
        if date_only(end) < date_only(start):
            raise BundleError(f"{where}: end {end} must not come before start {start}")
    limit = raw.get("execution_time_limit")
    make_hint = extra.get("make_hint")
    return Phase(
        index=index,
        name=name,
        description=_as_text(raw.get("description", ""), "description", where, MAX_PHASE_DESCRIPTION,
                             allow_empty=True),
        start=start,
        end=end,
        task=task,
        config=_as_text(extra["config"], "unlearning.config", where),
        starting_kit=_as_text(raw["starting_kit"], "starting_kit", where),
        public_data=public_data is not None,
        max_submissions=_as_int(raw.get("max_submissions", 100), "max_submissions", where),
        max_submissions_per_day=_as_int(raw.get("max_submissions_per_day", 5), "max_submissions_per_day", where),
        color=color,
        execution_time_limit=None if limit in (None, "auto") else _as_int(limit, "execution_time_limit", where, 1),
        make_hint=None if make_hint is None else _as_text(make_hint, "unlearning.make_hint", where),
    )


def _check_phase_dates(phases: tuple[Phase, ...], end_date: dt.date | None) -> None:
    for before, after in zip(phases, phases[1:]):
        if not date_only(after.start) >= date_only(before.start) + dt.timedelta(days=2):
            raise BundleError(
                f"phase {after.name!r} must start at least two days after phase {before.name!r} "
                "(Codabench ends a phase the day before the next one starts)"
            )
        if before.end is not None and not date_only(before.end) < date_only(after.start):
            raise BundleError(f"phase {before.name!r} must end before phase {after.name!r} starts "
                              f"({date_only(after.start)}), got end {before.end}")
    if end_date is not None and date_only(end_date) <= date_only(phases[-1].start):
        raise BundleError(f"end_date {end_date} must come after the last phase's start")


def _parse_pages(raw: dict) -> tuple[str, tuple[Page, ...]]:
    terms = _as_text(raw["terms"], "terms")
    pages = []
    for position, page in enumerate(_require_list(raw["pages"], "pages")):
        path = f"pages[{position}]"
        page = _require_mapping(page, path)
        _check_keys(page, _PAGE_KEYS, path, required=("title", "file"))
        pages.append(Page(title=_as_text(page["title"], f"{path}.title"), file=_as_text(page["file"], f"{path}.file")))
    names = [page.name for page in pages]
    if "terms" in names or len(set(names)) != len(names):
        raise BundleError(f"pages: each title names one page, and the terms come from `terms:`; got {names}")
    missing = [name for name in CODALAB_PAGES if name not in [*names, "terms"]]
    if missing:
        raise BundleError(f"pages: CodaLab needs all of {list(CODALAB_PAGES)}; missing {missing}")
    return terms, tuple(pages)


def _parse_column(raw: Any, position: int, board: str) -> Column:
    path = f"{board}.columns[{position}]"
    raw = _require_mapping(raw, path)
    _check_keys(raw, _COLUMN_KEYS, path, required=("key", "index"))
    _check_index(raw, position, path)
    key = _as_text(raw["key"], f"{path}.key", max_length=MAX_COLUMN_KEY)
    if key not in SCORES_TXT_KEYS:
        raise BundleError(f"{path}.key {key!r} is not a number the scoring program writes to scores.txt; "
                          f"choose one of {', '.join(sorted(SCORES_TXT_KEYS))}")
    return Column(
        key=key,
        title=_as_text(raw.get("title", key), f"{path}.title", max_length=MAX_COLUMN_LABEL),
        sorting=check(raw.get("sorting", "desc"), str, _RULES, "", f"{path}.sorting", Spec(choices=("asc", "desc"))),
        precision=_as_int(raw.get("precision", 4), f"{path}.precision", minimum=1),
    )


def _parse_leaderboard(raw: Any) -> Leaderboard:
    boards = _require_list(raw, "leaderboards")
    if len(boards) != 1:
        raise BundleError(f"leaderboards must hold one leaderboard (the scoring program writes one scores.txt), "
                          f"got {len(boards)}")
    path = "leaderboards[0]"
    board = _require_mapping(boards[0], path)
    _check_keys(board, _LEADERBOARD_KEYS, path, required=("index", "columns"))
    _check_index(board, 0, path)
    submission_rule = check(board.get("submission_rule", "Force_Last"), str, _RULES, "", f"{path}.submission_rule",
                            Spec(choices=SUBMISSION_RULES))
    columns = tuple(_parse_column(c, i, path) for i, c in enumerate(_require_list(board["columns"], f"{path}.columns")))
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise BundleError(f"{path}.columns: duplicate keys in {keys}")
    return Leaderboard(
        title=_as_text(board.get("title", "Results"), f"{path}.title", max_length=MAX_COLUMN_LABEL),
        key=_as_text(board.get("key", "RESULTS"), f"{path}.key"),
        submission_rule=submission_rule,
        columns=columns,
    )


def _parse_time_limit(raw: dict) -> TimeLimitSettings:
    extra = _require_mapping(raw.get("unlearning", {}), "unlearning")
    _check_keys(extra, _TOP_EXTRA_KEYS, "unlearning")
    return from_mapping(TimeLimitSettings, extra.get("time_limit", {}), _RULES, "", "unlearning.time_limit")


# --------------------------------------------------------------------------- the file


def competition_from_dict(raw: Any, source: str = "competition.yaml") -> Competition:
    """Validate a parsed competition.yaml mapping; errors name the key and the fix."""
    try:
        raw = _require_mapping(raw, "")
        _check_keys(raw, _TOP_KEYS, "", required=(
            "version", "title", "image", "docker_image", "terms", "pages", "tasks", "phases", "leaderboards"))
        if raw["version"] != 2:
            raise BundleError(f"version must be 2 (Codabench's competition.yaml format), got {raw['version']!r}")
        terms, pages = _parse_pages(raw)
        tasks = tuple(_parse_task(t, i) for i, t in enumerate(_require_list(raw["tasks"], "tasks")))
        phases = tuple(_parse_phase(p, i, tasks) for i, p in enumerate(_require_list(raw["phases"], "phases")))
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise BundleError(f"phases: duplicate names in {names}")
        end_date = raw.get("end_date")
        if end_date is not None:
            end_date = _as_date(end_date, "end_date")
        _check_phase_dates(phases, end_date)
        queue = raw.get("queue")
        if queue is not None:
            queue = _as_text(queue, "queue")
        docker_image = _as_text(raw["docker_image"], "docker_image")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", docker_image):
            raise BundleError(f"docker_image {docker_image!r} is not a valid image name (lowercase, no spaces)")
        return Competition(
            title=_as_text(raw["title"], "title", max_length=MAX_TITLE),
            description=_as_text(raw.get("description", ""), "description", allow_empty=True),
            image=_as_text(raw["image"], "image"),
            docker_image=docker_image,
            queue=queue,
            registration_auto_approve=_as_bool(raw.get("registration_auto_approve", True), "registration_auto_approve"),
            enable_detailed_results=_as_bool(raw.get("enable_detailed_results", True), "enable_detailed_results"),
            end_date=end_date,
            terms=terms,
            pages=pages,
            phases=phases,
            leaderboard=_parse_leaderboard(raw["leaderboards"]),
            time_limit=_parse_time_limit(raw),
        )
    except BundleError as exc:
        raise BundleError(f"{source}: {exc}") from None


def load_competition(path: str | Path) -> Competition:
    """Read and validate competition.yaml."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"competition file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: not valid YAML: {exc}") from None
    return competition_from_dict(raw, source=str(path))
