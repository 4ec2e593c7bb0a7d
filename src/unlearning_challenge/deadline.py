"""The platform's time limit on the ingestion step, and how the runs are fitted into it.

Codabench and CodaLab kill a step's container at its phase's ``execution_time_limit``
and keep nothing it was writing. The ingestion therefore knows that limit (the
*step time limit*) and plans against it: before each run it checks that the run,
its trusted evaluation and a reserve for writing the output still fit in the time
left (:meth:`StepDeadline.fits`); a run that is started gets a wall limit that ends
before the deadline (:meth:`StepDeadline.run_wall_limit`). When a run does not fit,
no more runs start and the ingestion writes a *partial* output of the runs done;
the scoring program decides what it is worth (``scoring.partial_output``).

Where the limit comes from: ``make bundle`` writes each phase's limit into that
phase's input-data zip as ``step_time_limit.json`` (:func:`write_step_time_limit`),
so the platforms' ingestion reads it with the data; ``local-score`` resolves the
same figure from ``competition.yaml`` and passes ``--step-time-limit``; the
organizers' ``evaluate`` passes none (it is not a platform step).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from unlearning_challenge.artifacts import ArtifactError
from unlearning_challenge.atomic import write_text

STEP_TIME_LIMIT_FILE = "step_time_limit.json"
STEP_TIME_LIMIT_FORMAT = "unlearning-challenge/step-time-limit"

# Kept free at the end of the step: the container's start before this process (the
# platform's clock starts first), writing the output, stopping the fork server and the
# container's exit.
RESERVE_SECONDS = 20.0

# A partial output is scored (``scoring.partial_output: score``) only with at least this many runs.
MIN_PARTIAL_RUNS = 4


def write_step_time_limit(folder: str | Path, seconds: int, phase: str) -> None:
    """Write ``step_time_limit.json`` (the platform's limit on each step of ``phase``) into ``folder``."""
    if not seconds >= 1:
        raise ValueError(f"a step time limit must be at least 1 s, got {seconds}")
    data = {"format": STEP_TIME_LIMIT_FORMAT, "execution_time_limit_seconds": int(seconds), "phase": phase}
    write_text(Path(folder) / STEP_TIME_LIMIT_FILE, json.dumps(data, indent=2) + "\n")


def read_step_time_limit(folder: str | Path) -> int | None:
    """The step time limit that ``folder`` (input data) holds, or None when it holds none."""
    path = Path(folder) / STEP_TIME_LIMIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"input data: cannot read {STEP_TIME_LIMIT_FILE}: {exc}") from None
    seconds = data.get("execution_time_limit_seconds") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != STEP_TIME_LIMIT_FORMAT or isinstance(seconds, bool)
            or not isinstance(seconds, int) or seconds < 1):
        raise ArtifactError(f"input data: {STEP_TIME_LIMIT_FILE} is not a step time limit (expected format "
                            f"{STEP_TIME_LIMIT_FORMAT!r} and a positive integer execution_time_limit_seconds); "
                            "rebuild the bundle with `make bundle`")
    return seconds


def process_age_seconds() -> float:
    """Wall seconds since this process started (0 where /proc does not say): the platform's clock
    started before the first line of Python ran."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


@dataclass
class StepDeadline:
    """The step's deadline on ``time.monotonic()``, and the longest run and evaluation seen so far
    (wall seconds), from which the next run's time is predicted."""

    limit_seconds: float
    ends_at: float
    reserve_seconds: float = RESERVE_SECONDS
    longest_run: float = 0.0
    longest_evaluation: float = 0.0
    runs_seen: int = 0
    total_seconds: float = 0.0

    @classmethod
    def starting_now(cls, limit_seconds: float, *, reserve_seconds: float = RESERVE_SECONDS) -> "StepDeadline":
        """The deadline of a step limited to ``limit_seconds`` that started when this process did."""
        return cls(limit_seconds, time.monotonic() - process_age_seconds() + limit_seconds, reserve_seconds)

    def elapsed(self) -> float:
        """Seconds since the step started (this process's start)."""
        return self.limit_seconds - (self.ends_at - time.monotonic())

    def time_left(self) -> float:
        """Seconds until the deadline, less the reserve (negative once past it)."""
        return self.ends_at - self.reserve_seconds - time.monotonic()

    def predicted_run(self, first_run_estimate: float) -> float:
        """Wall seconds the next run and its evaluation are expected to take: the longest so far, or
        ``first_run_estimate`` (the run's budget) before the first run."""
        run = self.longest_run if self.runs_seen else first_run_estimate
        return run + self.longest_evaluation

    def fits(self, first_run_estimate: float, *, after: float = 0.0) -> bool:
        """Whether one more run and its evaluation fit in the time left, ``after`` seconds of other work."""
        return after + self.predicted_run(first_run_estimate) <= self.time_left()

    def record_run(self, seconds: float) -> None:
        """A run took ``seconds`` from its go (the rest of its worker's start included) to its end."""
        self.runs_seen += 1
        self.longest_run = max(self.longest_run, seconds)
        self.total_seconds += seconds

    def record_evaluation(self, seconds: float) -> None:
        """The trusted evaluation of a run (and the next worker's start) took ``seconds``."""
        self.longest_evaluation = max(self.longest_evaluation, seconds)
        self.total_seconds += seconds

    @property
    def seconds_per_run(self) -> float:
        """Mean wall seconds of a run with its evaluation so far (0 before the first)."""
        return self.total_seconds / self.runs_seen if self.runs_seen else 0.0

    def run_wall_limit(self, hard_wall_limit: float) -> float:
        """The wall limit of a run started now: the smaller of its hard limit and the time left less its
        evaluation's (the longest so far). The session stops a run at the latter as ``stopped``."""
        return min(hard_wall_limit, max(0.0, self.time_left() - self.longest_evaluation))


def partial_sentence(done: int, asked: int, limit_seconds: float, seconds_per_run: float, *,
                     at_least: bool = False) -> str:
    """The fixed sentence of an ingestion whose runs did not all fit in the step time limit;
    ``seconds_per_run``: a run with its evaluation (``at_least``: a lower bound, no run having ended)."""
    about = "more than" if at_least else "about"
    return (f"{done} of {asked} runs fit in the phase's {limit_seconds:.0f} s: this method takes {about} "
            f"{seconds_per_run:.0f} s a run on this worker")
