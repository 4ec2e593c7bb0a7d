"""The worker's messages on the control socket: what it reports, and at which stage of a run.

Each message is one JSON line, ``{"event": ..., **fields}``, at most ``MAX_MESSAGE``
characters; nothing is pickled. The worker sends ``ready`` (with ``confinement``,
``process_cap`` and ``network``, and the listener of its process cap as a passed descriptor),
then ``done`` or ``error`` (with ``stage``, ``message`` and ``traceback``). The
trusted side reads them as plain dicts: a run's own code can write on the socket
too, so nothing in a message is trusted beyond its text.
"""

from __future__ import annotations

import json
import os
import socket
from enum import Enum

MAX_MESSAGE = 16_000


class Event(str, Enum):
    """What a worker's message reports."""

    READY = "ready"  # setup done, waiting for ``go``
    DONE = "done"  # the weights are saved
    ERROR = "error"  # something raised; ``stage`` says where


class Stage(str, Enum):
    """Where in a run the worker was when it reported an error."""

    SETUP = "setup"  # loading the data and the original model (trusted code)
    IMPORT = "import"  # importing unlearning.py
    CALL = "call"  # inside unlearning()
    RETURN = "return"  # checking and saving what unlearning() returned

    @property
    def during(self) -> str:
        """The stage in words, as run messages end: ``"... (while importing unlearning.py)"``."""
        return _DURING[self]


_DURING = {
    Stage.SETUP: "while loading the data",
    Stage.IMPORT: "while importing unlearning.py",
    Stage.CALL: "inside unlearning()",
    Stage.RETURN: "with what unlearning() returned",
}


def stage_of(message: dict) -> Stage | None:
    """The stage a message names, or None when it names none (or one that does not exist)."""
    try:
        return Stage(message.get("stage"))
    except (ValueError, TypeError):
        return None


def send(fd: int, event: Event, *, pass_fd: int | None = None, **fields) -> None:
    """One JSON line on the control socket; ``pass_fd`` travels with it (SCM_RIGHTS)."""
    line = (json.dumps({"event": event.value, **fields})[:MAX_MESSAGE] + "\n").encode()
    if pass_fd is None:
        os.write(fd, line)
        return
    sock = socket.socket(fileno=fd)
    try:
        socket.send_fds(sock, [line], [pass_fd])
    finally:
        sock.detach()


def parse(line: str) -> dict:
    """A message as a dict; {} when the line is not a JSON object."""
    try:
        message = json.loads(line)
        return message if isinstance(message, dict) else {}
    except json.JSONDecodeError:
        return {}
