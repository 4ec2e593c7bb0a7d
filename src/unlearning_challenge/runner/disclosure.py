"""What participants may read of a run: everything (``shown``) or only what the trusted side wrote (``hidden``).

In a private phase the worker has the private images, so everything it controls
can carry them out: what it prints, its exception's type and text, the names in
a traceback, its exit status, how many processes it forked. With ``hidden``,
:func:`for_participants` keeps of a run only its index, seed, status, times,
confinement and process cap, and describes a failure by its :class:`Failure`,
a closed set of kinds decided by the trusted side, each with a fixed sentence
(:mod:`unlearning_challenge.failures`).
"""

from __future__ import annotations

from dataclasses import replace

from unlearning_challenge.artifacts import RunRecord, RunStatus
from unlearning_challenge.config import ParticipantOutput
from unlearning_challenge.failures import Failure

# Messages the trusted side writes from its own measurements only (times and limits): kept under hidden.
_TRUSTED_MESSAGES = (Failure.TIMED_OUT, Failure.OVER_BUDGET)
WITHHELD = ("withheld: this phase runs on private data, so nothing a submission prints or raises reaches "
            "participants")


def for_participants(record: RunRecord, output: ParticipantOutput) -> RunRecord:
    """``record`` as participants may read it: as is when ``shown``; else without anything the
    submission controls (output, traceback, exception text, exit status, process counts)."""
    if output == ParticipantOutput.SHOWN:
        return record
    failure = record.failure or Failure.REPORTED_ERROR
    if record.status == RunStatus.OK:
        message = ""
    elif record.status == RunStatus.STOPPED or failure in _TRUSTED_MESSAGES:
        message = record.message
    else:
        message = f"{failure.sentence} (details {WITHHELD})"
    return replace(record, message=message, traceback_tail="", output_tail="", output_bytes=None, exit_code=None,
                   extra={})
