"""A run's limits: the budget it is judged against and the hard limits past which its worker is killed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unlearning_challenge.artifacts import RunRecord
from unlearning_challenge.reference.calibration import Clock

# With the CPU clock, a run is also stopped after this many times its CPU hard limit in
# wall seconds (a run that sleeps uses no CPU time).
CPU_CLOCK_WALL_FACTOR = 3.0
# Without a budget, a run is still stopped after this many of the reference's mean
# retrain seconds, and never before MIN_UNBUDGETED_WALL_SECONDS.
UNBUDGETED_RETRAINS = 10
MIN_UNBUDGETED_WALL_SECONDS = 600.0
# RLIMIT_CPU of a run's processes: this many times the CPU the run may use, plus these seconds (its setup).
CPU_BACKSTOP_FACTOR = 1.25
CPU_BACKSTOP_SECONDS = 60.0


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits: the budget (None: no limit) and the hard limits past which a worker is killed.

    ``clock`` says what ``budget`` and ``cpu_limit`` count; ``wall_limit`` is always wall seconds.
    """

    clock: Clock
    budget: float | None
    wall_limit: float
    cpu_limit: float | None

    @classmethod
    def derive(cls, clock: Clock, budget: float | None, *, hard_timeout_factor: float,
               mean_retrain_seconds: float) -> "RunLimits":
        """The hard limits are ``hard_timeout_factor`` budgets (the phase's ``ingestion.hard_timeout_factor``)."""
        if budget is None:
            return cls(clock, None, max(UNBUDGETED_RETRAINS * mean_retrain_seconds, MIN_UNBUDGETED_WALL_SECONDS), None)
        hard = budget * hard_timeout_factor
        if clock is Clock.CPU:
            return cls(clock, budget, hard * CPU_CLOCK_WALL_FACTOR, hard)
        return cls(clock, budget, hard, None)

    def cpu_backstop_seconds(self, cores: int) -> int:
        """RLIMIT_CPU of each of a run's processes on a machine of ``cores``: the last backstop, should
        the trusted side fail to stop the run (it stops it at ``cpu_limit`` or ``wall_limit`` itself). A
        little above the CPU hard limit (the worker's setup before ``go`` counts too); without one (the
        wall clock, or no budget), what ``cores`` can spend in the wall limit. On the GPU the guardian's
        wall timer is the backstop (:mod:`unlearning_challenge.runner.guardian`)."""
        seconds = self.cpu_limit if self.cpu_limit is not None else self.wall_limit * max(1, cores)
        return math.ceil(seconds * CPU_BACKSTOP_FACTOR + CPU_BACKSTOP_SECONDS)

    def used(self, record: RunRecord) -> float:
        """What the run used of the budget: its CPU or its wall seconds."""
        return record.cpu_seconds if self.clock is Clock.CPU else record.seconds

    def over_budget(self, record: RunRecord) -> bool:
        return self.budget is not None and self.used(record) > self.budget

    def over_budget_message(self, record: RunRecord, explanation: str) -> str:
        """Why a finished run is a timeout; ``explanation`` says how the budget was derived."""
        if self.clock is Clock.CPU:
            return (f"used {record.cpu_seconds:.1f} CPU seconds in {record.seconds:.1f} s, more than the budget of "
                    f"{self.budget:.1f} CPU seconds per run ({explanation})")
        return (f"took {record.seconds:.1f} s, more than the budget of {self.budget:.1f} s "
                f"per run ({explanation})")
