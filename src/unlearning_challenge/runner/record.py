"""What happened in one run: its status and the record written into ingestion.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from unlearning_challenge.artifacts import RunEntry


class RunStatus(str, Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    BAD_OUTPUT = "bad_output"


@dataclass
class RunRecord:
    """What happened in one run (index, seed, status, seconds, message, tails)."""

    index: int
    seed: int
    status: RunStatus = RunStatus.CRASHED
    seconds: float = 0.0
    # CPU seconds of the run's processes (all threads, children included), from go to the end
    cpu_seconds: float | None = None
    message: str = ""
    # why it failed, as the trusted side classified it (a runner.disclosure.Failure value; "" when ok)
    failure: str = ""
    traceback_tail: str = ""
    output_tail: str = ""
    output_bytes: int = 0
    exit_code: int | None = None
    # "landlock" when the worker was confined, else why it was not (see landlock.py); then what cut
    # its network, or why nothing did (see proccap.py)
    confinement: str = ""
    # what capped the number of the run's processes, or why nothing did (see proccap.py)
    process_cap: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    def entry(self) -> RunEntry:
        """The run's entry in ``ingestion.json``."""
        return RunEntry(**self.to_json())
