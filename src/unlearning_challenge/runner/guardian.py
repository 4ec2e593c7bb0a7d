"""Nothing of a run outlives the trusted process that owns it: the guardian, and the parent-death signals.

A trusted process holding a :class:`~unlearning_challenge.runner.session.RunSession` (the ingestion,
``evaluate``, a Ray task) can die without cleaning up: SIGKILL, the OOM killer, Ray's memory monitor, a
lost node. Its workers would then be reparented to init and go on, a looping one holding its CPU or GPU
for good, and its ``unlearning-runs-*`` folder would stay. Three layers stop that:

- **the guardian**, a small trusted process (this module run as a program, ``unlearning-wdog`` in ``ps``,
  in a session of its own, as the trusted user) that each session starts before any worker. It is
  detached (not a descendant of the trusted process: a runtime that kills a dead process's children, as
  Ray does with an actor's, leaves it to finish its work). It reads a
  pipe whose write end only the trusted process holds: the session tells it each worker's pid, the fork
  server's, and the folders to remove; it also notes every process below the trusted one (every
  ``POLL_SECONDS``: orphans a worker left are reparented to the trusted process, a subreaper). When the
  pipe reaches its end, or the trusted process is gone (its pid no longer names the process of its start
  time), without the session having said ``bye``, the trusted process died: the guardian SIGKILLs the workers' sessions, every process it noted
  and every descendant of these, removes the folders and exits. The run's seccomp filter refuses every
  process creation once its listener (held by the trusted process) is closed, so a run cannot outrun
  this. While the trusted process lives, the guardian also kills a worker still running
  ``WALL_GRACE_SECONDS`` past its wall limit (the backstop on the GPU clock, should the trusted side
  hang). Participant code cannot signal it: another user's, or Landlock's signal scoping (the README's
  security section says where neither holds); it is non-dumpable and reads nothing else;
- **parent-death signals** (:func:`die_with`): the fork server and each worker are SIGKILLed when the
  trusted process exits (a forked worker sets it once reparented to the trusted process), and so is the
  ingestion program when the command that started it (``local-score``, ``quick-check``: :func:`call_tied`) dies;
- **RLIMIT_CPU** on each worker (:func:`~unlearning_challenge.runner.isolation.worker_limits`), the last
  backstop.

Linux only (``/proc``); elsewhere no guardian is started.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from unlearning_challenge.runner.procfs import parent_of, processes, session_of, stat_fields
from unlearning_challenge.runner.reaping import not_subreaper

# How often the guardian notes the processes below the trusted one.
POLL_SECONDS = 0.5
# A worker running this long past its wall limit is killed by the guardian (the trusted side kills it at
# the limit itself; this is for a trusted side that hangs).
WALL_GRACE_SECONDS = 60.0
# How long a forked worker waits to be reparented to the trusted process before giving up.
REPARENT_SECONDS = 5.0
PROCESS_NAME = b"unlearning-wdog"  # at most 15 bytes
_PR_SET_PDEATHSIG, _PR_SET_NAME, _PR_SET_DUMPABLE = 1, 15, 4


def _prctl(option: int, value) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` exits (PR_SET_PDEATHSIG; exit at once if it already has).

    The signal comes when the parent *thread* exits, and a forked worker's first parent is a short-lived
    middle process: so it is set only once ``parent`` is this process's parent (the trusted process, a
    subreaper, adopts a forked worker when its middle process exits). It does not pass to children, and
    changing user clears it: call it after any ``setuid``. Participant code could clear it; the guardian
    does not depend on it."""
    deadline = time.monotonic() + REPARENT_SECONDS
    while os.getppid() != parent:
        if time.monotonic() > deadline:
            os._exit(1)
        time.sleep(0.001)
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # it died before the signal was set
        os._exit(1)


def call_tied(command: list[str]) -> int:
    """``subprocess.call(command)``, the child SIGKILLed should this process die first (a command running the
    ingestion program as a child: killed, it takes the program and so, through the guardian, its runs along)."""
    return subprocess.call(command, preexec_fn=functools.partial(die_with, os.getpid()))


class Guardian:
    """The trusted side's handle on its guardian; what it is told is lost quietly if it is gone."""

    def __init__(self, spared: set[int]):
        """Start it, detached; ``spared``: the trusted process's children that are no run's (never killed)."""
        read_fd, self._write_fd = os.pipe()  # neither end passes to a child unless named
        package_parent = str(Path(__file__).resolve().parents[2])  # however this process found the package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent,
                                                                         os.environ.get("PYTHONPATH")]))}
        try:
            with not_subreaper():  # the launcher's child, the guardian, goes to init when the launcher exits
                launcher = subprocess.Popen(
                    [sys.executable, "-m", "unlearning_challenge.runner.guardian", str(read_fd), str(os.getpid()),
                     str(_start_time(os.getpid())), ",".join(str(pid) for pid in sorted(spared))],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, pass_fds=(read_fd,), cwd="/", env=env,
                    start_new_session=True,
                )
                answer = launcher.stdout.readline()
                launcher.stdout.close()
                launcher.wait()
            self.pid = int(answer)
            self.start = _start_time(self.pid)
        except BaseException:
            os.close(self._write_fd)
            raise
        finally:
            os.close(read_fd)
        # Never block the runs on a guardian that stopped reading (a message that does not fit is lost).
        os.set_blocking(self._write_fd, False)

    def _send(self, **message) -> None:
        if self._write_fd is None:
            return
        try:
            os.write(self._write_fd, (json.dumps(message) + "\n").encode())
        except OSError:  # gone, or not reading: the runs go on without it
            pass

    def worker(self, pid: int) -> None:
        """A worker started: its session is the run's."""
        self._send(worker=pid, start=_start_time(pid))

    def go(self, pid: int, wall_seconds: float) -> None:
        """The worker was told to go, with this wall limit."""
        self._send(go=pid, wall=wall_seconds)

    def ended(self, pid: int) -> None:
        """The worker and its session were killed and reaped."""
        self._send(ended=pid)

    def server(self, pid: int) -> None:
        """The fork server (killed with the runs should the trusted process die)."""
        self._send(server=pid, start=_start_time(pid))

    def folder(self, path) -> None:
        """A folder to remove should the trusted process die."""
        self._send(folder=str(path))

    def close(self) -> None:
        """The session ended cleanly: the guardian exits without killing or removing anything."""
        self._send(bye=True)
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        deadline = time.monotonic() + 5
        while self.start is not None and _running(self.pid, self.start):
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
                break
            time.sleep(0.01)


# ---------------------------------------------------------------- the guardian process


def _running(pid: int, start: int) -> bool:
    """Whether process ``pid`` started at ``start`` still runs (an exited one that its new parent, being
    detached, has not reaped yet is a zombie: it runs no more)."""
    fields = stat_fields(pid)
    return fields is not None and _start_of(fields) == start and fields[0] != "Z"


def _start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    return None if fields is None else _start_of(fields)


def _start_of(fields: list[str]) -> int:
    return int(fields[19])  # field 22, starttime


def _children_map(table: dict[int, list[str]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(parent_of(fields), []).append(pid)
    return children


def _below(roots, table: dict[int, list[str]], spared: set[int]) -> set[int]:
    """Every descendant of ``roots`` in ``table``, less the subtrees of ``spared``."""
    children, found, stack = _children_map(table), set(), list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in spared and child not in found:
                found.add(child)
                stack.append(child)
    return found


def _kill(known: dict[int, int | None], sessions: set[int], spared: set[int]) -> int:
    """SIGKILL the processes of ``known`` (pid: start time) still alive, every process of ``sessions`` and
    every descendant of these, until none is left; how many were killed."""
    killed: set[int] = set()
    for _ in range(50):
        table = dict(processes())
        targets = {pid for pid, start in known.items() if pid in table and _start_of(table[pid]) == start}
        targets |= {pid for pid, fields in table.items() if session_of(fields) in sessions}
        targets |= _below(targets, table, spared)
        targets = {pid for pid in targets - spared - {os.getpid()} if table[pid][0] != "Z"}
        if not targets:
            break
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        killed |= targets
        time.sleep(0.02)
    return len(killed)


def guard(fd: int, trusted: int, trusted_start: int, spared: set[int]) -> int:
    """Follow the trusted process ``trusted`` (started at ``trusted_start``, in clock ticks since boot) through
    the pipe ``fd``; clean up after it if it dies."""
    _prctl(_PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME))
    _prctl(_PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trusted process's to handle
    spared = spared | {os.getpid()}
    workers: dict[int, int | None] = {}  # pid: start time
    deadlines: dict[int, float] = {}  # worker pid: monotonic time past which it is killed
    known: dict[int, int | None] = {}  # processes below the trusted one, as last noted
    folders: list[str] = []
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if message.get("bye"):
                    return 0
                if "worker" in message:
                    workers[message["worker"]] = message["start"]
                elif "go" in message:
                    deadlines[message["go"]] = time.monotonic() + message["wall"] + WALL_GRACE_SECONDS
                elif "ended" in message:
                    workers.pop(message["ended"], None)
                    deadlines.pop(message["ended"], None)
                elif "server" in message:
                    known[message["server"]] = message["start"]
                elif "folder" in message:
                    folders.append(message["folder"])
        if _start_time(trusted) != trusted_start:  # it died, though something it forked may still hold the pipe
            break
        table = dict(processes())
        below = _below([trusted], table, spared)
        known = {pid: start for pid, start in known.items() if pid in table and _start_of(table[pid]) == start}
        known.update((pid, _start_of(table[pid])) for pid in below)
        now = time.monotonic()
        for pid in [pid for pid, deadline in deadlines.items() if now > deadline]:
            _kill({pid: workers.get(pid)}, {pid}, spared)
            del deadlines[pid]
    _kill({**known, **workers}, set(workers), spared)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    try:  # a fixed sentence: how many processes a run held is the submission's to choose (a private phase hides it)
        print(f"unlearning-wdog: the trusted process {trusted} died; the processes of its runs were killed and "
              "their folders removed", file=sys.stderr, flush=True)
    except OSError:
        pass
    return 0


def detach() -> None:
    """Fork: the parent (the launcher) prints the child's pid and exits, and the child, orphaned, carries on."""
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        os._exit(0)
    sys.stdout = open(os.devnull, "w")
    os.dup2(sys.stdout.fileno(), 1)


if __name__ == "__main__":
    detach()
    sys.exit(guard(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                   {int(pid) for pid in sys.argv[4].split(",") if pid}))
