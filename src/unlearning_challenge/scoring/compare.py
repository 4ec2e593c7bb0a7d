"""``unlearning-challenge compare A B`` and ``rank FOLDER...``: is a difference between submissions real?

Each folder is an ingestion output (the folder holding ``ingestion.json``) or
a ``local-score`` run folder holding it under ``res/``. Every folder is read
and checked against the reference data as the scoring program does (a failed
ingestion, other data or another number of models is refused, naming the
folder); the folders must be of the same phase. Outputs of a rehearsal that ran
k < N models (``make local-score NUM_MODELS=k``) are compared on the first k
reference models, as scoring does; every folder must have run the same k, and
the verdict says that such scores are not comparable with the leaderboard's.
When the runs started from K > 1 original models (their records name them), the
resampling draws originals, then runs within each, and the text says that the
intervals are over trained models too.
The statistics are in :mod:`~unlearning_challenge.scoring.ranking`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from unlearning_challenge.artifacts import (
    INGESTION_MANIFEST,
    ArtifactError,
    read_ingestion_manifest,
    read_reference_manifest,
)
from unlearning_challenge.scoring.originals import run_originals
from unlearning_challenge.scoring.program import (
    PARTIAL,
    ScoringError,
    _family_sample,
    participant_output,
    read_inputs,
    scoring_config,
)
from unlearning_challenge.scoring.ranking import (
    COMPARE_CONFIDENCE,
    Comparison,
    Ranking,
    compare,
    models_text,
    rank_submissions,
    rehearsal_note,
    resamples_text,
)
from unlearning_challenge.scoring.result import ScoringInputs
from unlearning_challenge.scoring.statistics import FamilySample

__all__ = ["CompareError", "Submission", "compare_folders", "rank_folders", "rank_table", "read_submissions"]


# ingestion.json's statuses whose arrays can be scored: every run, or the runs that fit in the step time limit
_SCORED_STATUSES = ("ok", PARTIAL)


class CompareError(ValueError):
    """The folders cannot be compared; the message names the folder and says why."""


@dataclass(frozen=True)
class Submission:
    """One folder's name (as given), its checked scoring inputs and its confidences and accuracies."""

    name: str
    inputs: ScoringInputs
    sample: FamilySample

    @property
    def originals(self) -> np.ndarray | None:
        """The original model of each scored run, int ``[N]``; None when they all started from one (K = 1)."""
        return run_originals(self.inputs.ingestion.runs, self.sample.num_models)


def ingestion_folder(folder: Path) -> Path:
    """``folder/res`` when it holds the ingestion output (a local-score run), else ``folder`` itself."""
    if (folder / "res" / INGESTION_MANIFEST).is_file():
        return folder / "res"
    if (folder / INGESTION_MANIFEST).is_file():
        return folder
    raise CompareError(f"{folder}: not an ingestion output ({INGESTION_MANIFEST} found neither in it nor in its res/)")


def _check_phases(folders: Sequence[Path], reference_data: Path) -> int | None:
    """Every successful ingestion's phase is the reference data's, and every one ran the same number
    of models k (before reading any arrays); returns k when it is below the reference data's N (a
    rehearsal, scored on the first k reference models), else None."""
    try:
        reference = read_reference_manifest(reference_data)
    except ArtifactError as exc:
        raise CompareError(f"{reference_data}: {exc}") from None
    expected = reference.phase
    ran: list[tuple[Path, int]] = []
    for folder in folders:
        try:
            ingestion = read_ingestion_manifest(ingestion_folder(folder))
        except ArtifactError as exc:
            raise CompareError(f"{folder}: {exc}") from None
        if ingestion.status in _SCORED_STATUSES and expected and ingestion.phase != expected:
            raise CompareError(
                f"{folder} is of phase {ingestion.phase!r} but the reference data {reference_data} of phase "
                f"{expected!r}: scores of different phases cannot be compared (F depends on the number of models N "
                "through its epsilon buckets); give every folder of one phase and that phase's --reference-data")
        if ingestion.status in _SCORED_STATUSES and isinstance(ingestion.num_models, int):
            ran.append((folder, ingestion.num_models))
    for (first, k_first), (other, k_other) in zip(ran, ran[1:]):
        if k_first != k_other:
            raise CompareError(
                f"the outputs ran different numbers of models: {first} k = {k_first}, {other} k = {k_other}; "
                "compare outputs that ran the same k (rehearse each with the same NUM_MODELS)")
    k = ran[0][1] if ran else None
    return k if k is not None and 2 <= k < reference.num_models else None


def read_submissions(folders: Sequence[Path], reference_data: Path) -> list[Submission]:
    """Every folder's scoring inputs, checked against ``reference_data`` and against each other."""
    if not reference_data.is_dir():
        raise CompareError(f"{reference_data}: no reference data folder (give --reference-data)")
    rehearsal_models = _check_phases(folders, reference_data)
    disclosure = participant_output(reference_data, None)
    submissions = []
    for folder in folders:
        try:
            inputs = read_inputs(ingestion_folder(folder), reference_data, num_models=rehearsal_models,
                                 disclosure=disclosure)
        except (ScoringError, ArtifactError, ValueError) as exc:
            raise CompareError(f"{folder}: {exc}") from None
        submissions.append(Submission(str(folder), inputs, _family_sample(inputs.unlearned)))
    first = submissions[0]
    for other in submissions[1:]:
        sizes = (first.sample.num_models, other.sample.num_models)
        if sizes[0] != sizes[1]:
            raise CompareError(f"{other.name} holds {sizes[1]} models, {first.name} {sizes[0]}: compare outputs "
                               "with the same number of models")
    return submissions


def _options(reference_data: Path, seed: int, num_resamples: int | None, progress: bool,
             submissions: Sequence[Submission]) -> dict:
    config = scoring_config(reference_data)
    options = {"bounds": config.bounds, "alpha": config.alpha, "seed": seed, "num_resamples": num_resamples,
               "progress": progress}
    originals = [s.originals for s in submissions]
    if any(o is not None for o in originals):  # runs from K > 1 originals: resampled on two levels
        options["originals"] = originals
    return options


def _phase_models(submission: Submission) -> int:
    """The phase's N: the number of models its reference data hold."""
    return submission.inputs.reference.num_models


def compare_folders(a: Path, b: Path, reference_data: Path, *, seed: int = 0, num_resamples: int | None = None,
                    progress: bool = False) -> Comparison:
    """The paired comparison of the submissions in folders ``a`` and ``b`` (on the first k reference
    models when both ran k < N models)."""
    if Path(a).resolve() == Path(b).resolve():
        raise CompareError(f"{a}: A and B are the same folder")
    first, second = read_submissions([Path(a), Path(b)], reference_data)
    comparison = compare(first.sample, second.sample, _family_sample(first.inputs.retrained),
                         names=(first.name, second.name),
                         **_options(reference_data, seed, num_resamples, progress, [first, second]))
    return replace(comparison, reference_models=_phase_models(first))


def rank_folders(folders: Sequence[Path], reference_data: Path, *, seed: int = 0, num_resamples: int | None = None,
                 progress: bool = False, names: Sequence[str] | None = None) -> Ranking:
    """Score interval, rank interval and P(first) of each folder's submission, best score first."""
    if len({Path(f).resolve() for f in folders}) != len(folders):
        raise CompareError("a folder is given twice")
    submissions = read_submissions([Path(f) for f in folders], reference_data)
    retrained = _family_sample(submissions[0].inputs.retrained)
    ranking = rank_submissions([s.sample for s in submissions], retrained,
                               names=list(names) if names is not None else [s.name for s in submissions],
                               **_options(reference_data, seed, num_resamples, progress, submissions))
    return replace(ranking, reference_models=_phase_models(submissions[0]))


def rank_table(ranking: Ranking) -> str:
    """The ranking as aligned text, one line per submission, best score first."""
    rows = ranking.rows
    width = max([len("submission")] + [len(row.name) for row in rows])
    conf = f"{COMPARE_CONFIDENCE:.0%}"
    lines = [f"{'submission':<{width}}  {'score':>7}  {conf + ' interval':>18}  {'ranks (' + conf + ')':>11}  P(first)"]
    for row in rows:
        ranks = f"{row.rank_low}" if row.rank_low == row.rank_high else f"{row.rank_low}-{row.rank_high}"
        lines.append(f"{row.name:<{width}}  {row.score:7.4f}  [{row.low:7.4f}, {row.high:7.4f}]  {ranks:>11}  "
                     f"{row.p_first:7.0%}")
    lines.append(f"({ranking.num_resamples} joint resamples of {resamples_text(ranking.num_originals)}, the same for every "
                 f"submission; {models_text(ranking.num_models, ranking.reference_models)}, seed {ranking.seed}. "
                 "Rank 1 is the best; P(first): the share of resamples in which the submission ranks first)")
    note = rehearsal_note(ranking.num_models, ranking.reference_models)
    return "\n".join([*lines, note] if note else lines)


def run_compare(args: argparse.Namespace) -> int:
    comparison = compare_folders(args.a, args.b, args.reference_data, seed=args.seed, num_resamples=args.resamples,
                                 progress=True)
    print("\n".join(comparison.lines()))
    return 0


def run_rank(args: argparse.Namespace) -> int:
    ranking = rank_folders(args.folders, args.reference_data, seed=args.seed, num_resamples=args.resamples,
                           progress=True)
    print(rank_table(ranking))
    return 0
