"""Runs of one submission in one session, exactly as the ingestion runs them; the local backend; progress.

:func:`run_submission` is the unit both backends use: one
:class:`~unlearning_challenge.runner.session.RunSession` (worker process per run,
Landlock, the seccomp supervisor and its network filter, the user drop where
allowed), the budget calibrated on this machine by the ingestion's
:func:`~unlearning_challenge.judged.run_limits`, and each run's weights judged
here, outside the worker, by :func:`~unlearning_challenge.judged.judged_runs`.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from unlearning_challenge.artifacts import ORIGINAL_WEIGHTS, InputManifest
from unlearning_challenge.config import PhaseConfig
from unlearning_challenge.data import EvaluationSamples, FaceDataset, Splits
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, Submission
from unlearning_challenge.judged import judged_runs, load_input, new_session, run_limits, trusted_samples
from unlearning_challenge.reference.models import pick_device
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner.isolation import locked


@dataclass(frozen=True)
class Phase:
    """A phase's input data, read and cross-checked once (:func:`~unlearning_challenge.judged.load_input`)."""

    input_dir: Path
    config: PhaseConfig
    manifest: InputManifest
    dataset: FaceDataset
    splits: Splits

    @classmethod
    def load(cls, input_dir: Path) -> "Phase":
        return cls(Path(input_dir), *load_input(Path(input_dir)))

    @property
    def samples(self) -> EvaluationSamples | None:
        """The retain and validation examples every run's model is also evaluated on, as the ingestion's."""
        return trusted_samples(self.config, self.manifest, self.splits)


def run_submission(phase: Phase, submission: Path, indices: Sequence[int], *, device: torch.device,
                   no_time_limit: bool, trusted: Sequence[Path], log: Callable[[str], None]) -> Iterator[RunResult]:
    """Run ``indices`` of the submission folder in one session, yielding each judged run, until one fails.

    ``trusted``: folders closed to the workers' user while the runs go (as the ingestion
    closes its input and output folders).
    """
    budget, timing, limits = run_limits(phase.config, phase.manifest, phase.dataset, phase.splits, device,
                                        no_time_limit=no_time_limit)
    session = new_session(phase.config, limits, None, submission, log)
    context = {"budget": budget, "timing": timing, "device": str(device), "worker_user": session.identity.name,
               "isolation_warning": session.isolation_warning, "node": platform.node()}
    workspace = Path(tempfile.mkdtemp(prefix="unlearning-runs-"))
    try:
        with session, locked([Path(p).resolve() for p in trusted], session.identity) as warnings:
            session.guard(workspace)  # removed by the session's guardian should this process die
            for text in warnings:
                log(f"warning: {text}")
            folders = RunFolders(workspace, phase.config, submission.resolve(), str(device),
                                 phase.input_dir / ORIGINAL_WEIGHTS, phase.dataset, phase.splits)
            try:
                for record, output in judged_runs(session, folders, indices, budget_explanation=timing["explanation"],
                                                  config=phase.config, device=device, dataset=phase.dataset,
                                                  splits=phase.splits, samples=phase.samples):
                    yield RunResult(record, {**context, "worker_start": session.worker_start}, output)
            finally:
                session.stop_runs()
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


class Progress:
    """A bar of the runs to do: runs done, runs per minute, ETA (on stderr)."""

    def __init__(self, total: int, backend: str):
        self.start = time.monotonic()
        self.bar = tqdm(total=total, desc=f"runs ({backend})", unit="run", file=sys.stderr)

    def done(self, name: str, result: RunResult) -> None:
        self.bar.update(1)
        minutes = (time.monotonic() - self.start) / 60
        self.bar.set_postfix_str(f"{self.bar.n / minutes:.1f} runs/min, last: {name} run {result.record.index} "
                                 f"{result.record.status.value}")

    def skip(self, count: int) -> None:
        """``count`` runs will not be run (their submission failed)."""
        if count:
            self.bar.total -= count
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run_local(phase: Phase, jobs: Sequence[tuple[Submission, list[int]]], work: EvaluationWork, *,
              no_time_limit: bool, trusted: Sequence[Path], log: Callable[[str], None]) -> list[str]:
    """Every job (a submission and the indices it still needs) in this process, one session per submission,
    each finished run saved as it ends. Returns the problems (none: a run either ends or raises)."""
    device = pick_device()
    progress = Progress(sum(len(indices) for _, indices in jobs), "local")
    try:
        for submission, indices in jobs:
            finished = 0
            for result in run_submission(phase, submission.folder, indices, device=device,
                                         no_time_limit=no_time_limit, trusted=trusted, log=log):
                work.save(submission.name, result)
                finished += 1
                progress.done(submission.name, result)
            progress.skip(len(indices) - finished)
    finally:
        progress.close()
    return []
