"""A finished run's status and message, from the worker's last message and the limit that stopped it.

The one place where stages, events and limits become the words a participant reads
(``ingestion.json``, the scoring page): a limit wins over anything the worker said;
``done`` is ok; an ``error`` is a bad output when it came from checking what
``unlearning()`` returned, else a crash; anything else is a worker that ended
without finishing.
"""

from __future__ import annotations

from dataclasses import replace

from unlearning_challenge.artifacts import RunRecord, RunStatus
from unlearning_challenge.failures import Failure
from unlearning_challenge.runner.hints import run_hint
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.protocol import Event, Stage, stage_of

TRACEBACK_TAIL_CHARS = 4000
# ``timed_out`` of a run stopped at the wall limit that the step's deadline set (see deadline.py)
STEP_LIMIT = "step"
STEP_TIME_RAN_OUT = "the step's time ran out: the platform's time limit would have ended the run"
_STAGE_FAILURES = {
    Stage.SETUP: Failure.SETUP,
    Stage.IMPORT: Failure.RAISED_ON_IMPORT,
    Stage.CALL: Failure.RAISED_IN_CALL,
    Stage.RETURN: Failure.BAD_RETURN,
}


def conclude(record: RunRecord, message: dict, timed_out: str, limits: RunLimits, exit_code: int | None) -> RunRecord:
    """``record`` with its status, failure, message and traceback.

    ``message``: the worker's last message ({} if none); ``timed_out``: which hard limit
    stopped the run ("wall", "cpu", or :data:`STEP_LIMIT` when the step's deadline set the wall limit:
    the run is ``stopped``, not failed; "" if none); ``exit_code``: the worker's own, if it exited.
    """
    event = message.get("event")
    if timed_out == STEP_LIMIT:
        return replace(record, status=RunStatus.STOPPED, failure=None, message=STEP_TIME_RAN_OUT)
    if timed_out:
        return replace(record, status=RunStatus.TIMEOUT, failure=Failure.TIMED_OUT,
                       message=_time_limit_message(record, timed_out, limits))
    if event == Event.DONE.value:
        return replace(record, status=RunStatus.OK)
    if event == Event.ERROR.value:
        stage = stage_of(message)
        text = f"{message.get('message', 'error')} ({'' if stage is None else stage.during})"
        hint = run_hint(str(message.get("message", "")), message.get("stage"))
        return replace(record, status=RunStatus.BAD_OUTPUT if stage is Stage.RETURN else RunStatus.CRASHED,
                       failure=_STAGE_FAILURES.get(stage, Failure.REPORTED_ERROR),
                       message=f"{text}; {hint}" if hint else text,
                       traceback_tail=str(message.get("traceback", ""))[-TRACEBACK_TAIL_CHARS:])
    how = f"exit code {exit_code}" if exit_code is not None and exit_code >= 0 else (
        f"signal {-exit_code}" if exit_code is not None else "no exit code")
    return replace(record, status=RunStatus.CRASHED, failure=Failure.EXITED,
                   message=f"the worker process ended without finishing the run ({how})")


def _time_limit_message(record: RunRecord, timed_out: str, limits: RunLimits) -> str:
    """Why a run was killed at a hard limit: ``timed_out`` is "cpu" or "wall"."""
    if timed_out == "cpu":
        return f"killed after {record.seconds:.1f} s: past the hard limit of {limits.cpu_limit:.1f} CPU seconds per run"
    message = f"killed after {record.seconds:.1f} s: past the hard limit of {limits.wall_limit:.1f} s per run"
    if limits.cpu_limit is not None and record.cpu_seconds is not None:
        message += (f" (the wall-clock backstop, {limits.wall_limit / limits.cpu_limit:g} times the hard limit "
                    f"of {limits.cpu_limit:.1f} CPU seconds; the run had used {record.cpu_seconds:.1f} CPU "
                    "seconds: it slept, or the machine was too busy to give it a fair share of a core)")
    return message
