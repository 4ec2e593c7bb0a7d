"""A finished run's status and message, from the worker's last message and the limit that stopped it.

The one place where stages, events and limits become the words a participant reads
(``ingestion.json``, the scoring page): a limit wins over anything the worker said;
``done`` is ok; an ``error`` is a bad output when it came from checking what
``unlearning()`` returned, else a crash; anything else is a worker that ended
without finishing.
"""

from __future__ import annotations

from unlearning_challenge.failures import Failure
from unlearning_challenge.runner.hints import run_hint
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.protocol import Event, Stage, stage_of
from unlearning_challenge.runner.record import RunRecord, RunStatus

TRACEBACK_TAIL_CHARS = 4000
_STAGE_FAILURES = {
    Stage.SETUP: Failure.SETUP,
    Stage.IMPORT: Failure.RAISED_ON_IMPORT,
    Stage.CALL: Failure.RAISED_IN_CALL,
    Stage.RETURN: Failure.BAD_RETURN,
}


def conclude(record: RunRecord, message: dict, timed_out: str, limits: RunLimits, exit_code: int | None) -> None:
    """Set ``record``'s status, message and traceback.

    ``message``: the worker's last message ({} if none); ``timed_out``: which hard limit
    stopped the run ("wall", "cpu"; "" if none); ``exit_code``: the worker's own, if it exited.
    """
    event = message.get("event")
    if timed_out:
        record.failure = Failure.TIMED_OUT.value
    if timed_out == "cpu":
        record.status = RunStatus.TIMEOUT
        record.message = (f"killed after {record.seconds:.1f} s: past the hard limit of {limits.cpu_limit:.1f} "
                          "CPU seconds per run")
    elif timed_out:
        record.status = RunStatus.TIMEOUT
        record.message = f"killed after {record.seconds:.1f} s: past the hard limit of {limits.wall_limit:.1f} s per run"
        if limits.cpu_limit is not None and record.cpu_seconds is not None:
            record.message += (f" (the wall-clock backstop, {limits.wall_limit / limits.cpu_limit:g} times the hard limit "
                               f"of {limits.cpu_limit:.1f} CPU seconds; the run had used {record.cpu_seconds:.1f} CPU "
                               "seconds: it slept, or the machine was too busy to give it a fair share of a core)")
    elif event == Event.DONE.value:
        record.status = RunStatus.OK
    elif event == Event.ERROR.value:
        stage = stage_of(message)
        record.status = RunStatus.BAD_OUTPUT if stage is Stage.RETURN else RunStatus.CRASHED
        record.failure = _STAGE_FAILURES.get(stage, Failure.REPORTED_ERROR).value
        record.message = f"{message.get('message', 'error')} ({'' if stage is None else stage.during})"
        hint = run_hint(str(message.get("message", "")), message.get("stage"))
        if hint:
            record.message += f"; {hint}"
        record.traceback_tail = str(message.get("traceback", ""))[-TRACEBACK_TAIL_CHARS:]
    else:
        how = f"exit code {exit_code}" if exit_code is not None and exit_code >= 0 else (
            f"signal {-exit_code}" if exit_code is not None else "no exit code")
        record.status = RunStatus.CRASHED
        record.failure = Failure.EXITED.value
        record.message = f"the worker process ended without finishing the run ({how})"
