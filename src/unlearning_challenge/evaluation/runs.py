"""Runs of one submission in one session, exactly as the ingestion runs them; the local backend; progress.

:func:`run_submission` is the unit both backends use: one
:class:`~unlearning_challenge.runner.session.RunSession` (worker process per run,
Landlock, the seccomp supervisor and its network filter, the user drop where
allowed), the budget calibrated on this machine by the ingestion's
:func:`~unlearning_challenge.judged.run_limits`, and each run's weights judged
here, outside the worker, by :func:`~unlearning_challenge.judged.judged_runs`.
"""

from __future__ import annotations

import contextlib
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

from unlearning_challenge.artifacts import InputManifest
from unlearning_challenge.config import PhaseConfig
from unlearning_challenge.data import EvaluationSamples, FaceDataset, Splits
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, Submission
from unlearning_challenge.judged import judged_runs, load_input, new_session, original_weights, run_limits, trusted_samples
from unlearning_challenge.reference.models import pick_device
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner.isolation import WorkerIdentity, locked
from unlearning_challenge.runner.limits import RunLimits


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


@dataclass(frozen=True)
class Budget:
    """The per-run budget a machine calibrated (None: no limit), how (``timing``), and the run limits."""

    seconds: float | None
    timing: dict
    limits: RunLimits

    @classmethod
    def calibrate(cls, phase: Phase, device: torch.device, *, no_time_limit: bool) -> "Budget":
        """Calibrated here, as the ingestion does (:func:`~unlearning_challenge.judged.run_limits`)."""
        return cls(*run_limits(phase.config, phase.manifest, phase.dataset, phase.splits, device,
                               no_time_limit=no_time_limit))


class SubmissionRuns:
    """One submission's runs in one session (a context manager): batch after batch of indices
    (:meth:`runs`), the session, its fork server and workspace held open between batches.

    ``trusted``: folders closed to the workers' user while the session is open (as the ingestion
    closes its input and output folders); None: the caller keeps them closed. ``identity``: the
    workers' user (None: the session's default); ``context``: added to each run's context.
    """

    def __init__(self, phase: Phase, submission: Path, budget: Budget, *, device: torch.device,
                 trusted: Sequence[Path] | None, log: Callable[[str], None], identity: tuple[WorkerIdentity, str] | None = None,
                 context: dict | None = None):
        self.phase, self.submission, self.budget, self.device = phase, Path(submission), budget, device
        self.trusted, self.log = trusted, log
        self.session = new_session(phase.config, budget.limits, None, self.submission, log, identity=identity)
        self.context = {"budget": budget.seconds, "timing": budget.timing, "device": str(device),
                        "worker_user": self.session.identity.name, "isolation_warning": self.session.isolation_warning,
                        "node": platform.node(), **(context or {})}
        self._stack = contextlib.ExitStack()
        self.folders: RunFolders | None = None

    def __enter__(self) -> "SubmissionRuns":
        with contextlib.ExitStack() as stack:
            workspace = Path(tempfile.mkdtemp(prefix="unlearning-runs-"))
            stack.callback(shutil.rmtree, workspace, ignore_errors=True)
            stack.enter_context(self.session)
            if self.trusted is not None:
                for text in stack.enter_context(locked([Path(p).resolve() for p in self.trusted],
                                                       self.session.identity)):
                    self.log(f"warning: {text}")
            self.session.guard(workspace)  # removed by the session's guardian should this process die
            phase = self.phase
            self.folders = RunFolders(workspace, phase.config, self.submission.resolve(), str(self.device),
                                      original_weights(phase.input_dir, phase.config), phase.dataset, phase.splits)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def runs(self, indices: Sequence[int]) -> Iterator[RunResult]:
        """Run ``indices`` in order, yielding each judged run, until one fails."""
        phase = self.phase
        try:
            for record, output in judged_runs(self.session, self.folders, indices,
                                              budget_explanation=self.budget.timing["explanation"],
                                              config=phase.config, device=self.device, dataset=phase.dataset,
                                              splits=phase.splits, samples=phase.samples):
                yield RunResult(record, {**self.context, "worker_start": self.session.worker_start}, output)
        finally:
            self.session.stop_runs()


def run_submission(phase: Phase, submission: Path, indices: Sequence[int], *, device: torch.device,
                   no_time_limit: bool, trusted: Sequence[Path], log: Callable[[str], None]) -> Iterator[RunResult]:
    """Run ``indices`` of the submission folder in one session, on a budget calibrated here, yielding
    each judged run, until one fails (``trusted``: as :class:`SubmissionRuns`')."""
    budget = Budget.calibrate(phase, device, no_time_limit=no_time_limit)
    with SubmissionRuns(phase, submission, budget, device=device, trusted=trusted, log=log) as runs:
        yield from runs.runs(indices)


class Progress:
    """A bar of the runs to do: runs done, runs per minute, ETA (on stderr)."""

    def __init__(self, total: int, backend: str):
        self.start = time.monotonic()
        self.backend = backend
        self.bar = tqdm(total=total, desc=f"runs ({backend})", unit="run", file=sys.stderr)

    def done(self, name: str, result: RunResult) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(f"{self.bar.n / self.minutes():.1f} runs/min, last: {name} run "
                                 f"{result.record.index} {result.record.status.value}")

    def minutes(self) -> float:
        return max(time.monotonic() - self.start, 1e-9) / 60

    def skip(self, count: int) -> None:
        """``count`` runs will not be run (their submission failed)."""
        if count:
            self.bar.total -= count
            self.bar.refresh()

    def summary(self) -> str:
        """``runs (local): 8 in 41.2 s, 11.7 runs/min`` (from the start of the bar, the slots' or sessions'
        start-up included)."""
        return (f"runs ({self.backend}): {self.bar.n} in {self.minutes() * 60:.1f} s, "
                f"{self.bar.n / self.minutes():.1f} runs/min")

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
    log(progress.summary())
    return []
