"""The two platforms' competition.yaml dialects, written from one :class:`Competition`.

``codabench_yaml``
    Codabench's ``version: 2``: competition.yaml itself, with the bundle's
    zip names, the included phases only and the computed time limits.
``codalab_yaml``
    CodaLab Competitions' v1.5, derived from it, with only keys CodaLab knows:
    CodaLab passes the yaml's keys straight to its database models, so an
    unknown key breaks the upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from unlearning_challenge.platforms.competition import Competition
from unlearning_challenge.platforms.phases import PhasePlan, phase_windows

__all__ = [
    "CODALAB_COLUMN_KEYS",
    "CODALAB_LEADERBOARD_KEYS",
    "CODALAB_PHASE_KEYS",
    "CODALAB_TOP_KEYS",
    "BundleLayout",
    "PhaseFiles",
    "codabench_yaml",
    "codalab_yaml",
    "dump_yaml",
]

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


@dataclass(frozen=True)
class PhaseFiles:
    """Names, inside the bundle, of one phase's nested zips."""

    input_data: str
    reference_data: str
    ingestion_program: str
    scoring_program: str
    starting_kit: str


@dataclass(frozen=True)
class BundleLayout:
    """Names of the files inside the bundle: the logo, the pages by name, each phase's zips by phase name."""

    logo: str
    pages: dict[str, str]
    phase_files: dict[str, PhaseFiles]


def codalab_yaml(competition: Competition, plans: list[PhasePlan], layout: BundleLayout) -> dict[str, Any]:
    """The v1.5 ``competition.yaml`` (only keys CodaLab Competitions knows)."""
    included = [plan for plan in plans if plan.included]
    board_settings = competition.leaderboard
    doc: dict[str, Any] = {
        "title": competition.title,
        "description": competition.description,
        "image": layout.logo,
        "has_registration": not competition.registration_auto_approve,
    }
    if competition.end_date is not None:
        doc["end_date"] = competition.end_date
    doc["competition_docker_image"] = competition.docker_image
    if board_settings.submission_rule in ("Force_Last", "Force_Latest_Multiple"):
        doc["force_submission_to_leaderboard"] = True  # each new submission replaces the participant's entry
    doc["enable_detailed_results"] = competition.enable_detailed_results
    doc["html"] = dict(layout.pages)
    phases = {}
    for number, plan in enumerate(included, start=1):
        p = plan.phase
        files = layout.phase_files[p.name]
        phase: dict[str, Any] = {
            "phasenumber": number,
            "label": p.name,
            "start_date": p.start,
            "description": p.description,
        }
        if p.color:
            phase["color"] = p.color
        phase.update({
            "max_submissions": p.max_submissions,
            "max_submissions_per_day": p.max_submissions_per_day,
            "execution_time_limit": plan.execution_time_limit,
            "is_scoring_only": False,
            "scoring_program": files.scoring_program,
            "ingestion_program": files.ingestion_program,
            "input_data": files.input_data,
            "reference_data": files.reference_data,
            "starting_kit": files.starting_kit,
        })
        if board_settings.submission_rule == "Force_Best":
            phase["force_best_submission_to_leaderboard"] = True
        if p.public_data:
            phase["public_data"] = files.input_data
        phases[number] = phase
    doc["phases"] = phases
    board = {"label": board_settings.title, "rank": 1}
    doc["leaderboard"] = {
        "leaderboards": {board_settings.key: board},
        "columns": {
            column.key: {
                "leaderboard": board,  # the same object: PyYAML writes an anchor and aliases
                "label": column.title,
                "rank": rank,
                "numeric_format": column.precision,
                "sort": column.sorting,
            }
            for rank, column in enumerate(board_settings.columns, start=1)
        },
    }
    return doc


def codabench_yaml(competition: Competition, plans: list[PhasePlan], layout: BundleLayout) -> dict[str, Any]:
    """The Codabench ``version: 2`` yaml (docker image and GPU queue included).

    Phases and tasks are renumbered from 0 over the included phases; each
    phase's ``end`` is its window's (see :func:`phases.phase_windows`).
    """
    included = [plan for plan in plans if plan.included]
    doc: dict[str, Any] = {
        "version": 2,
        "title": competition.title,
        "description": competition.description,
        "image": layout.logo,
        "registration_auto_approve": competition.registration_auto_approve,
        "docker_image": competition.docker_image,
        "queue": competition.queue,
        "enable_detailed_results": competition.enable_detailed_results,
        "terms": layout.pages["terms"],
        "pages": [{"title": page.title, "file": layout.pages[page.name]} for page in competition.pages],
        "tasks": [],
        "phases": [],
    }
    for index, (plan, window) in enumerate(zip(included, phase_windows(competition, included))):
        p = plan.phase
        files = layout.phase_files[p.name]
        doc["tasks"].append({
            "index": index,
            "name": p.task.name,
            "description": p.description if p.task.description is None else p.task.description,
            "scoring_program": files.scoring_program,
            "ingestion_program": files.ingestion_program,
            "input_data": files.input_data,
            "reference_data": files.reference_data,
        })
        phase: dict[str, Any] = {
            "index": index,
            "name": p.name,
            "description": p.description,
            "start": window.start,
        }
        if window.end is not None:
            phase["end"] = window.end
        phase.update({
            "max_submissions": p.max_submissions,
            "max_submissions_per_day": p.max_submissions_per_day,
            "execution_time_limit": plan.execution_time_limit,
            "tasks": [index],
            "starting_kit": files.starting_kit,
        })
        if p.public_data:
            phase["public_data"] = files.input_data
        if plan.hidden:  # a second line: the programs already write nothing a run controls
            phase["hide_prediction_output"] = True
        doc["phases"].append(phase)
    board = competition.leaderboard
    doc["leaderboards"] = [{
        "index": 0,
        "title": board.title,
        "key": board.key,
        "submission_rule": board.submission_rule,
        "columns": [
            {"title": column.title, "key": column.key, "index": index, "sorting": column.sorting,
             "precision": column.precision}
            for index, column in enumerate(board.columns)
        ],
    }]
    return doc


def dump_yaml(doc: dict[str, Any]) -> bytes:
    """The yaml text of ``doc``, keys in their given order, as UTF-8."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100).encode("utf-8")
