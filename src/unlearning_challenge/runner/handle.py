"""The trusted side's handle on one worker process: start it, tell it to go, time it, stop it.

One worker process per run, in its own session (process group), started as a
new Python or forked from the fork server (:mod:`unlearning_challenge.runner.forkserver`). The trusted
side starts the clock when it tells a ready worker to go and stops it when the
worker reports done (or dies, or runs past the hard limit); :meth:`Worker.stop`
kills the worker's whole process group. Output captured from the worker is
bounded: only the last ``OUTPUT_TAIL_BYTES`` are kept, with the total size counted.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from unlearning_challenge.runner.forkserver import ForkServer
from unlearning_challenge.runner.isolation import WorkerCaps, WorkerIdentity, worker_limits
from unlearning_challenge.runner.proccap import ForkSupervisor, descendants_count
from unlearning_challenge.runner.procfs import process_cpu_seconds, session_cpu_seconds
from unlearning_challenge.runner.protocol import parse

OUTPUT_TAIL_BYTES = 32 * 1024
READY_TIMEOUT_SECONDS = 600.0
# How often a running worker's CPU time is checked against its CPU limit.
CPU_POLL_SECONDS = 0.25


class _TailReader(threading.Thread):
    """Drains a pipe, keeping only the last ``limit`` bytes and counting the total."""

    def __init__(self, fd: int, limit: int = OUTPUT_TAIL_BYTES, echo=None):
        super().__init__(daemon=True)
        self.fd, self.limit, self.echo = fd, limit, echo
        self.buffer = bytearray()
        self.total = 0

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            self.buffer += chunk
            if len(self.buffer) > 2 * self.limit:
                del self.buffer[: len(self.buffer) - self.limit]
            if self.echo is not None:
                self.echo(chunk)
        os.close(self.fd)

    def tail(self) -> str:
        return bytes(self.buffer[-self.limit :]).decode("utf-8", errors="replace")


def _read_line(fd: int, deadline: float | None, buffer: bytearray) -> str | None:
    """One line from ``fd`` before ``deadline``; None on timeout, "" on EOF."""
    while b"\n" not in buffer:
        timeout = None if deadline is None else max(0.0, deadline - time.perf_counter())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return ""
        buffer += chunk
        if len(buffer) > 1 << 20:  # nobody sends a megabyte of control messages
            return ""
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: the worker's last message ({} if none), its wall seconds from ``go``,
    the worker's CPU seconds at ``go`` (its setup) and which limit stopped it ("" if none)."""

    message: dict
    seconds: float
    cpu_at_go: float
    timed_out: str = ""


@dataclass
class WorkerSpec:
    """How to start a worker: the job file, its folder, environment, caps and identity."""

    job_path: Path
    cwd: Path
    env: dict[str, str]
    caps: WorkerCaps
    identity: WorkerIdentity = field(default_factory=WorkerIdentity)


def _start_process(spec: WorkerSpec, ctrl_w: int, go_r: int, out_w: int) -> subprocess.Popen:
    kwargs = {}
    if spec.identity.dropped:
        kwargs.update(user=spec.identity.uid, group=spec.identity.gid, extra_groups=[])
    return subprocess.Popen(
        [sys.executable, "-m", "unlearning_challenge.runner.worker", str(spec.job_path), str(ctrl_w), str(go_r),
         str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=out_w,
        stderr=out_w,
        pass_fds=(ctrl_w, go_r),
        cwd=spec.cwd,
        env=spec.env,
        start_new_session=True,
        preexec_fn=worker_limits(spec.caps, spec.identity),
        **kwargs,
    )


class Worker:
    """A started worker process waiting for ``go``.

    Started by ``fork_server`` when one is given (fast: torch is already
    imported there), else as a new ``python -m unlearning_challenge.runner.worker``.
    """

    def __init__(self, spec: WorkerSpec, fork_server: ForkServer | None = None):
        self.spec = spec
        ctrl_r, ctrl_w = (sock.detach() for sock in socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            if fork_server is not None:
                self.process = fork_server.spawn(str(spec.job_path), str(spec.cwd), spec.env,
                                                 spec.caps, spec.identity, (ctrl_w, go_r, out_w))
            else:
                self.process = _start_process(spec, ctrl_w, go_r, out_w)
        except BaseException:
            for fd in (ctrl_r, ctrl_w, go_r, go_w, out_r, out_w):
                os.close(fd)
            raise
        for fd in (ctrl_w, go_r, out_w):
            os.close(fd)
        self.ctrl_fd, self.go_fd = ctrl_r, go_w
        self.output = _TailReader(out_r)
        self.output.start()
        self._buffer = bytearray()
        self.supervisor: ForkSupervisor | None = None

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS, exclude: set[int] = frozenset()) -> dict:
        """The worker's first message: ``{"event": "ready"}`` or an error; {} on timeout/death.

        A listener passed with ``ready`` starts the run's process cap (processes below this
        one, less the subtrees of ``exclude``, e.g. the fork server).
        """
        deadline = time.perf_counter() + timeout
        ready, _, _ = select.select([self.ctrl_fd], [], [], max(0.0, deadline - time.perf_counter()))
        if not ready:
            return {}
        sock = socket.socket(fileno=self.ctrl_fd)
        try:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 1)
        finally:
            sock.detach()
        if fds:
            me = os.getpid()
            self.supervisor = ForkSupervisor(fds[0], lambda: descendants_count(me, set(exclude)),
                                             self.spec.caps.processes)
        self._buffer += data
        if not data:
            return {}
        line = _read_line(self.ctrl_fd, deadline, self._buffer)
        return parse(line) if line else {}

    def go(self, wall_limit: float | None, cpu_limit: float | None = None) -> RunEnd:
        """Start the clock and wait for the worker's last message, or for a limit to pass.

        ``cpu_limit`` bounds the CPU seconds of the worker's session (checked every
        ``CPU_POLL_SECONDS``), counted from ``go``; the setup before it is not counted.
        """
        start = time.perf_counter()
        cpu_at_go = process_cpu_seconds(self.process.pid)
        wall_deadline = None if wall_limit is None else start + wall_limit
        try:
            os.write(self.go_fd, b"go\n")
        except BrokenPipeError:
            pass
        while True:
            deadline = wall_deadline
            if cpu_limit is not None:
                tick = time.perf_counter() + CPU_POLL_SECONDS
                deadline = tick if deadline is None else min(deadline, tick)
            line = _read_line(self.ctrl_fd, deadline, self._buffer)
            seconds = time.perf_counter() - start
            if line is not None:
                break
            if wall_deadline is not None and time.perf_counter() >= wall_deadline:
                return RunEnd({}, seconds, cpu_at_go, timed_out="wall")
            if cpu_limit is not None and session_cpu_seconds(self.process.pid) - cpu_at_go > cpu_limit:
                return RunEnd({}, seconds, cpu_at_go, timed_out="cpu")
        if line == "":  # control pipe closed: the worker exited (or closed it); give it a moment to exit
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        return RunEnd(parse(line), seconds, cpu_at_go)

    def exit_code(self) -> int | None:
        """The worker's own exit code, if it has exited by itself."""
        return self.process.poll()

    def stop(self) -> int | None:
        """Kill the worker's process group, reap it, close pipes. Returns its exit code."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:  # a forked worker may not have made its own group yet
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.output.join(timeout=5)
        for fd in (self.ctrl_fd, self.go_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        return code
