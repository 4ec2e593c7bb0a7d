"""Build the competition bundles from ``competition.yaml``.

Two zips come out of the same program folders and data:

``competition_bundle.zip``
    CodaLab Competitions' v1.5 format (Codabench reads it too): a
    ``competition.yaml`` at the zip's root derived from ours, the pages, the
    logo, and one nested zip per program and data item with its files at that
    zip's root.
``codabench_bundle.zip``
    Codabench's ``version: 2`` format, which can also name the GPU queue.

A phase goes in only when its phase config and its input and reference data
exist and agree; the others are left out with the reason. Each input-data zip
also holds ``step_time_limit.json``, its phase's execution_time_limit (see
:mod:`unlearning_challenge.deadline`); a phase whose limit is below what its
formula gives is warned about (:func:`phases.time_limit_shortfall`). Zips are
deterministic (sorted entries, fixed timestamps and permissions): rebuilding
from the same files gives the same bytes. Run ``python -m unlearning_challenge
bundle --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unlearning_challenge.atomic import write_bytes
from unlearning_challenge.deadline import STEP_TIME_LIMIT_FILE, write_step_time_limit
from unlearning_challenge.platforms.competition import DEFAULT_COMPETITION, Competition, load_competition
from unlearning_challenge.platforms.dialects import BundleLayout, PhaseFiles, codabench_yaml, codalab_yaml, dump_yaml
from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.platforms.pages import logo_bytes, page_context, render_logo, render_page
from unlearning_challenge.platforms.phases import (
    PhasePlan,
    closed_phases_warning,
    phase_windows,
    plan_phases,
    time_limit_shortfall,
)
from unlearning_challenge.platforms.programs import program_zip
from unlearning_challenge.platforms.zips import deterministic_zip, folder_zip

__all__ = ["BuildResult", "add_bundle_arguments", "build_bundles", "run_bundle"]

PACKAGE_DIR = "src/unlearning_challenge"
CODALAB_BUNDLE = "competition_bundle.zip"
CODABENCH_BUNDLE = "codabench_bundle.zip"
COMPETITION_YAML = "competition.yaml"
LOGO = "logo.png"
# Codabench's default queue: no GPU, every step capped at this many seconds.
DEFAULT_QUEUE_LIMIT_SECONDS = 600


@dataclass
class BuildResult:
    plans: list[PhasePlan]
    codalab_bundle: Path
    codabench_bundle: Path
    warnings: list[str]

    @property
    def included(self) -> list[PhasePlan]:
        return [plan for plan in self.plans if plan.included]


def _disclosure_text(plan: PhasePlan) -> str:
    """Which of a phase's outputs participants read, and why, in words."""
    source = plan.participant_output_source
    if plan.hidden:
        return (f"participant output hidden ({source}): runs' output, tracebacks and error text are withheld, "
                "their arrays sealed for the scoring program, and the Codabench yaml sets hide_prediction_output")
    return f"participant output shown ({source}): participants read their runs' output and tracebacks"


def _log_plans(plans: list[PhasePlan], log: Callable[[str], None]) -> None:
    for plan in plans:
        if plan.included:
            source = ("" if plan.phase.execution_time_limit is None
                      else f", set in competition.yaml; the formula gives {plan.computed_time_limit} s")
            log(f"{plan.phase.name}: included (N={plan.num_models}, {plan.time_budget_seconds:.1f} s per run, "
                f"execution_time_limit {plan.execution_time_limit} s{source}); {_disclosure_text(plan)}")
        else:
            log(f"{plan.phase.name}: left out: {plan.explanation()}")


def _warnings(competition: Competition, included: list[PhasePlan], today: dt.date) -> list[str]:
    warnings = []
    closed = closed_phases_warning(phase_windows(competition, included), today)
    if closed:
        warnings.append(closed)
    if competition.queue is None:
        warnings.append("queue is not set: on Codabench, submissions go to the default queue "
                        f"(no GPU, {DEFAULT_QUEUE_LIMIT_SECONDS} s per step); set the vhost of your GPU queue "
                        "in competition.yaml")
        longest = max(plan.execution_time_limit for plan in included)
        if longest > DEFAULT_QUEUE_LIMIT_SECONDS:
            warnings.append(f"an execution_time_limit of {longest} s exceeds the default Codabench queue's cap")
    warnings.extend(filter(None, (time_limit_shortfall(plan, competition.time_limit) for plan in included)))
    return warnings


def _zip_names(included: list[PhasePlan], kind: str, folder_of: Callable[[PhasePlan], str], root: Path,
               *, shared_name: bool) -> dict[str, tuple[str, str]]:
    """``{phase name: (zip name, folder as competition.yaml names it)}`` for one kind of nested zip.

    Phases naming the same folder share one zip, named after the first of them
    (``check_input_data.zip``); with ``shared_name``, a folder used by every
    phase is named after its kind alone (``ingestion_program.zip``). Input data
    also carry the phase's time limit: phases sharing a folder but not their
    limit get one zip each.
    """
    def key(plan: PhasePlan) -> tuple[Path, int | None]:
        return (root / folder_of(plan)).resolve(), plan.execution_time_limit if kind == "input_data" else None

    distinct = {key(plan) for plan in included}
    names: dict[tuple[Path, int | None], str] = {}
    chosen = {}
    for plan in included:
        if key(plan) not in names:
            names[key(plan)] = f"{kind}.zip" if shared_name and len(distinct) == 1 else f"{plan.phase.slug}_{kind}.zip"
        chosen[plan.phase.name] = (names[key(plan)], folder_of(plan))
    return chosen


def _step_time_limit_bytes(plans: list[PhasePlan]) -> bytes:
    """``step_time_limit.json`` for the phases sharing one input-data zip (hence one limit), as
    :func:`deadline.write_step_time_limit` writes it."""
    with tempfile.TemporaryDirectory() as folder:
        write_step_time_limit(folder, plans[0].execution_time_limit, ", ".join(plan.phase.name for plan in plans))
        return (Path(folder) / STEP_TIME_LIMIT_FILE).read_bytes()


def _nested_zips(included: list[PhasePlan], root: Path) -> tuple[dict[str, bytes], dict[str, PhaseFiles]]:
    """The program, starting-kit and data zips by name, and each included phase's zip names. Each
    input-data zip holds the folder's files and ``step_time_limit.json``, the phase's
    execution_time_limit (written into the zip only, never into the folder)."""
    package_dir = root / PACKAGE_DIR
    files: dict[str, bytes] = {}
    kinds = {
        "ingestion_program": (lambda plan: plan.phase.task.ingestion_program, True),
        "scoring_program": (lambda plan: plan.phase.task.scoring_program, True),
        "starting_kit": (lambda plan: plan.phase.starting_kit, True),
        "input_data": (lambda plan: plan.phase.input_data, False),
        "reference_data": (lambda plan: plan.phase.reference_data, False),
    }
    names_by_kind = {}
    for kind, (folder_of, shared_name) in kinds.items():
        names_by_kind[kind] = _zip_names(included, kind, folder_of, root, shared_name=shared_name)
        for name, folder in names_by_kind[kind].values():
            if name in files:
                continue
            if kind.endswith("_program"):
                files[name] = program_zip(root / folder, package_dir, kind)
            elif kind == "starting_kit" and not (root / folder).is_dir():
                raise BundleError(f"starting kit folder {folder} does not exist")
            elif kind == "input_data":
                sharing = [plan for plan in included if names_by_kind[kind][plan.phase.name][0] == name]
                files[name] = folder_zip(root / folder, {STEP_TIME_LIMIT_FILE: _step_time_limit_bytes(sharing)})
            else:
                files[name] = folder_zip(root / folder)
    phase_files = {plan.phase.name: PhaseFiles(**{kind: names_by_kind[kind][plan.phase.name][0] for kind in kinds})
                   for plan in included}
    return files, phase_files


def _rendered_pages(competition: Competition, plans: list[PhasePlan], root: Path) -> dict[str, tuple[str, bytes]]:
    """``{page name: (file name in the bundle, rendered HTML)}``, the terms included."""
    context = page_context(competition, plans)
    pages = {}
    for name, page in [*((page.name, page.file) for page in competition.pages), ("terms", competition.terms)]:
        path = root / page
        if not path.is_file():
            raise BundleError(f"page {name!r}: {page} does not exist")
        pages[name] = (f"{name}.html", render_page(path.read_text(encoding="utf-8"), context, page).encode("utf-8"))
    return pages


def build_bundles(
    competition_path: str | Path = DEFAULT_COMPETITION,
    *,
    root: str | Path = ".",
    out_dir: str | Path = "dist",
    log: Callable[[str], None] = print,
    today: dt.date | None = None,
) -> BuildResult:
    """Write ``competition_bundle.zip`` and ``codabench_bundle.zip`` into ``out_dir``.

    ``root`` is the repository root; ``competition_path`` and the paths in it
    are relative to it. Raises BundleError when no phase can be included or a
    program, page or key is wrong.
    """
    root = Path(root)
    competition = load_competition(root / competition_path)
    plans = plan_phases(competition, root)
    _log_plans(plans, log)
    included = [plan for plan in plans if plan.included]
    if not included:
        raise BundleError("no phase can be included (see the reasons above); the Check phase needs "
                          "input_data/ and reference_data/ from `make reference`")
    warnings = _warnings(competition, included, today or dt.date.today())

    files, phase_files = _nested_zips(included, root)
    files[LOGO] = logo_bytes(competition, root, log)
    pages = _rendered_pages(competition, plans, root)
    files.update(pages.values())
    layout = BundleLayout(logo=LOGO, pages={name: file for name, (file, _) in pages.items()},
                          phase_files=phase_files)

    out_dir = Path(out_dir)
    if not out_dir.is_absolute():
        out_dir = root / out_dir
    codalab_path = out_dir / CODALAB_BUNDLE
    codabench_path = out_dir / CODABENCH_BUNDLE
    for path, doc in ((codalab_path, codalab_yaml(competition, plans, layout)),
                      (codabench_path, codabench_yaml(competition, plans, layout))):
        write_bytes(path, deterministic_zip([*files.items(), (COMPETITION_YAML, dump_yaml(doc))]))
        log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    for warning in warnings:
        log(f"warning: {warning}")
    return BuildResult(plans=plans, codalab_bundle=codalab_path, codabench_bundle=codabench_path, warnings=warnings)


# --------------------------------------------------------------------------- CLI


def add_bundle_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m unlearning_challenge bundle``."""
    parser.add_argument("--competition", default=DEFAULT_COMPETITION,
                        help="the competition file, relative to --root (default: %(default)s)")
    parser.add_argument("--root", default=".", help="repository root the competition file's paths are relative to")
    parser.add_argument("--out-dir", default="dist", help="where to write the bundles (default: %(default)s)")
    parser.add_argument("--get", metavar="KEY", choices=["docker_image", "queue", "title"],
                        help="print one value of the competition file and exit (for the Makefile)")
    parser.add_argument("--draw-logo", action="store_true",
                        help="(re)draw the logo file named by `image` and exit")
    return parser


def run_bundle(args: argparse.Namespace) -> int:
    """Build the bundles, or answer ``--get`` / ``--draw-logo``; errors print without a traceback (exit 1)."""
    try:
        competition_path = Path(args.root) / args.competition
        if args.get:
            value = getattr(load_competition(competition_path), args.get)
            print("" if value is None else value)
            return 0
        if args.draw_logo:
            path = Path(args.root) / load_competition(competition_path).image
            render_logo(path)
            print(f"wrote {path}")
            return 0
        build_bundles(args.competition, root=args.root, out_dir=args.out_dir)
    except BundleError as exc:
        print(f"make bundle: error: {exc}", file=sys.stderr)
        return 1
    return 0
