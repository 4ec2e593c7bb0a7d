"""``unlearning-challenge evaluate``: run submissions on a phase, write their ingestion outputs, scores and a leaderboard.

Output folder (``--output``)::

    <output>/<name>/res/        the submission's ingestion output, as the ingestion program writes it
    <output>/<name>/scores/     scores.json, scores.txt, detailed_results.html, as the scoring program writes them
    <output>/leaderboard.csv, leaderboard.html
    <output>/work/              the work folder (unless --work), see :mod:`.work`
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from unlearning_challenge.artifacts import ArtifactError, read_ingestion_manifest
from unlearning_challenge.config import ParticipantOutput
from unlearning_challenge.evaluation.leaderboard import (
    Entry,
    Outcome,
    leaderboard_note,
    leaderboard_rows,
    write_leaderboard,
)
from unlearning_challenge.evaluation.options import EvaluationError, EvaluationOptions, submission_name
from unlearning_challenge.evaluation.runs import Phase, run_local
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, Submission, runs_end, to_run
from unlearning_challenge.ingestion import (
    IngestionError,
    IngestionOutput,
    check_submission,
    disclosure_and_sealing,
    record_failure,
    runs_asked,
)
from unlearning_challenge.scoring.program import ScoringError, score
from unlearning_challenge.scoring.ranking import Ranking, rank_submissions
from unlearning_challenge.scoring.result import ScoreResult


def evaluate(options: EvaluationOptions, log: Callable[[str], None] = print) -> int:
    """Run what is missing, then write every submission's outputs and the leaderboard.

    Returns 0 when every submission has a verdict (scored or failed), 1 when some runs
    could not be run (run the same command again: it does only what is missing).
    """
    options.check()
    phase = Phase.load(options.input_data)
    num_models = runs_asked(options.num_models, phase.manifest)
    work = EvaluationWork(options.work_folder)
    work.root.mkdir(parents=True, exist_ok=True)
    work.claim(phase.manifest, time_limit=not options.no_time_limit)
    submissions = _add_submissions(options.submissions, work)
    refused = _refused(submissions)
    jobs = [(s, indices) for s in submissions if s.name not in refused
            if (indices := to_run(work.load(s.name), num_models))]
    todo = sum(len(indices) for _, indices in jobs)
    log(f"evaluate: {len(submissions)} submission(s) of phase {phase.config.name!r}, {num_models} run(s) each; "
        f"{todo} run(s) to do ({options.backend} backend), the others already in {work.root}")
    trusted = [options.input_data, work.root, options.output]
    problems = []
    if jobs:
        if options.backend == "ray":
            from unlearning_challenge.evaluation.ray_runs import run_ray

            problems = run_ray(phase, jobs, work, options=options, trusted=trusted, log=log)
        else:
            problems = run_local(phase, jobs, work, no_time_limit=options.no_time_limit, trusted=trusted, log=log)
    disclosure = disclosure_and_sealing(phase.config, phase.input_dir, options.participant_output, log)
    entries, results = [], {}
    for submission in submissions:
        entry, result = _conclude(submission, phase, work, num_models, options, disclosure,
                                  refused.get(submission.name), log)
        entries.append(entry)
        if result is not None:
            results[submission.name] = result
    ranking = _ranking(results)
    csv_path, html_path = write_leaderboard(options.output, leaderboard_rows(entries, ranking),
                                            phase=phase.config.name, note=leaderboard_note(ranking, num_models))
    for problem in problems:
        log(f"not run: {problem}")
    log(f"leaderboard: {csv_path} and {html_path}")
    incomplete = [e.name for e in entries if e.outcome == Outcome.INCOMPLETE]
    if incomplete:
        log(f"{len(incomplete)} submission(s) unfinished ({', '.join(incomplete)}): run the same command again; "
            "it runs only what is missing")
        return 1
    return 0


def _add_submissions(sources: Sequence[Path], work: EvaluationWork) -> list[Submission]:
    """Each source's copy in the work folder; two sources of the same name are refused."""
    names: dict[str, Path] = {}
    for source in sources:
        name = submission_name(source)
        if name in names:
            raise EvaluationError(f"two submissions are named {name!r} ({names[name]} and {source}): each is known "
                                  "by its folder's (or zip's) name; rename one")
        names[name] = source
    return [work.add(source) for source in sources]


def _refused(submissions: Sequence[Submission]) -> dict[str, str]:
    """The submissions the ingestion would refuse before any run (no unlearning.py at the top), with why."""
    refused = {}
    for submission in submissions:
        try:
            check_submission(submission.folder)
        except IngestionError as exc:
            refused[submission.name] = str(exc)
    return refused


def _conclude(submission: Submission, phase: Phase, work: EvaluationWork, num_models: int,
              options: EvaluationOptions, disclosure: tuple[ParticipantOutput, bool], refusal: str | None,
              log: Callable[[str], None]) -> tuple[Entry, ScoreResult | None]:
    """Write the submission's ingestion output from its finished runs, then score it (``disclosure``:
    what participants may read, and whether the arrays are sealed)."""
    res, scores = options.output / submission.name / "res", options.output / submission.name / "scores"
    res.mkdir(parents=True, exist_ok=True)
    if refusal is not None:
        record_failure(res, refusal)
        return Entry(submission.name, Outcome.FAILED, message=refusal), None
    results = work.load(submission.name)
    needed = range(runs_end(results, num_models))
    missing = [index for index in needed if index not in results]
    if missing:
        return Entry(submission.name, Outcome.INCOMPLETE, message=(
            f"{len(missing)} of {num_models} run(s) not run (e.g. run {missing[0]}): run the same command again")), None
    if _ingestion_output(submission, phase, [results[i] for i in needed], num_models, disclosure, res, log):
        return Entry(submission.name, Outcome.FAILED, message=read_ingestion_manifest(res).message or ""), None
    try:
        result = score(res, options.reference_data, scores, num_models=options.num_models,
                       disclosure_override=options.participant_output, progress=False)
    except (ScoringError, ArtifactError, ValueError) as exc:
        return Entry(submission.name, Outcome.FAILED, message=f"scoring failed: {exc}"), None
    return Entry(submission.name, Outcome.SCORED, score=result.score), result


def _ingestion_output(submission: Submission, phase: Phase, results: list[RunResult], num_models: int,
                      disclosure: tuple[ParticipantOutput, bool], res: Path, log: Callable[[str], None]) -> int:
    """Write ``res`` as the ingestion would have from these runs (budget, timing and workers as run 0 saw
    them); the ingestion's exit status."""
    disclosure, sealed = disclosure
    first = results[0].context
    if first.get("isolation_warning"):
        log(f"warning: {submission.name}: {first['isolation_warning']}")
    details = {key: first.get(key) for key in ("timing", "worker_user", "isolation_warning", "worker_start")}
    if any("ray_node_id" in result.context for result in results):
        details["run_budgets"] = run_budgets(results)
    output = IngestionOutput(res, phase.input_dir, phase.config, phase.manifest, num_models, first.get("budget"),
                             torch.device(first["device"]), disclosure, sealed, details)
    records = [result.record for result in results]
    outputs = [result.output for result in results if result.output is not None]
    return output.conclude(records, outputs, phase.dataset, phase.splits, log=lambda _: None, samples=phase.samples)


def run_budgets(results: Sequence[RunResult]) -> tuple[dict, ...]:
    """Each node's budget and the runs held to it (runs on a cluster: one calibration per node)."""
    nodes: dict[str, dict] = {}
    for result in results:
        context = result.context
        key = str(context.get("ray_node_id") or context.get("node"))
        timing = context.get("timing") or {}
        node = nodes.setdefault(key, {"node": context.get("node"), "ray_node_id": context.get("ray_node_id"),
                                      "budget_seconds": context.get("budget"), "speed_ratio": timing.get("speed_ratio"),
                                      "runs": []})
        node["runs"].append(result.record.index)
    return tuple(nodes.values())


def _ranking(results: dict[str, ScoreResult]) -> Ranking | None:
    """Score and rank intervals and P(first) of the scored submissions (None for fewer than two)."""
    if len(results) < 2:
        return None
    first = next(iter(results.values()))
    return rank_submissions([r.unlearned for r in results.values()], first.retrained, names=list(results),
                            bounds=first.bounds, alpha=first.clopper_pearson_alpha, seed=0,
                            originals=[r.run_originals for r in results.values()])
