"""A trusted fork server: workers start without paying for ``import torch`` each time.

Starting a Python process that imports torch and torchvision takes seconds;
with one worker per run that is most of a short run's cost. The fork server is
a trusted process, started once per ingestion, that imports what a worker
needs and then, on request, forks a worker from that clean state. It never
runs participant code and never initializes CUDA, so every worker still starts
fresh: its own process, session, limits, identity and Landlock domain (applied
by :mod:`unlearning_challenge.runner.worker` itself, as before).

Each worker is forked twice (server -> short-lived middle process -> worker),
so that it is reparented to the ingestion process, which must be a child
subreaper: the ingestion then waits for the worker's exit itself, exactly as
for a worker it started with ``subprocess``. The server and each worker are
SIGKILLed when the ingestion process exits (a parent-death signal, set in the
worker once it is reparented: see :func:`~unlearning_challenge.runner.guardian.die_with`).

Protocol, over a ``SOCK_SEQPACKET`` socket pair: the server says ``ready`` once
its imports are done; each request is one JSON message (job path, working
directory, environment, caps, identity) carrying three file
descriptors (control write end, go read end, output write end); each reply is
``{"pid": ...}`` or ``{"error": ...}``. Nothing is pickled.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

from unlearning_challenge.runner.environment import worker_env
from unlearning_challenge.runner.guardian import die_with
from unlearning_challenge.runner.isolation import WorkerCaps, WorkerIdentity, keep_out_of_proc, worker_limits

READY_TIMEOUT_SECONDS = 300.0
_PR_SET_NAME = 15
PRELOAD = (
    "torch",
    "torchvision",
    "safetensors.torch",
    "unlearning_challenge.data",
    "unlearning_challenge.reference.models",
    "unlearning_challenge.reference.training",
    "unlearning_challenge.runner.landlock",
    "unlearning_challenge.runner.worker",
)
# What submissions commonly import at the top (the ``participant`` extra), imported
# once here rather than in every run's timed import (several seconds on a CPU;
# matplotlib would otherwise rebuild its font cache in every run's fresh $HOME);
# only those whose package the submission names (participant_preload), and
# skipped where not installed.
PARTICIPANT_PRELOAD = (
    "pandas",
    "scipy.stats",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "tqdm.auto",
    "matplotlib.pyplot",
    "seaborn",
)


# A submission's Python files read to choose the preloads: at most this many, each cut at this size,
# in at most this many folders.
_SCANNED_FILES, _SCANNED_BYTES, _SCANNED_FOLDERS = 200, 1 << 20, 1000


def participant_preload(submission: Path) -> tuple[str, ...]:
    """The modules of ``PARTICIPANT_PRELOAD`` whose top-level package the submission's ``.py`` files name
    as a word (an import, or only a comment: preloading one too many costs the server a second, never a
    run). Only regular files are read (no symbolic link is followed), as text, never run or parsed. A
    package imported under a computed name is not seen: its runs then pay for its import themselves, as
    for any module not in the list."""
    words: set[str] = set()
    for path in _python_files(submission)[:_SCANNED_FILES]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f.read(_SCANNED_BYTES).decode(errors="replace")))
    return tuple(module for module in PARTICIPANT_PRELOAD if module.split(".")[0] in words)


def _python_files(folder: Path) -> list[str]:
    """The ``.py`` files below ``folder``, in a stable order, without entering linked folders."""
    found = []
    for visited, (root, dirs, files) in enumerate(os.walk(folder, followlinks=False)):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files) if name.endswith(".py")]
        if len(found) >= _SCANNED_FILES or visited >= _SCANNED_FOLDERS:
            break
    return found


class ForkServerError(RuntimeError):
    """The fork server could not start a worker."""


class ForkedProcess:
    """A worker started by the fork server and reparented to this process (``pid``, ``poll``, ``wait``)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the exit code is lost
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.005)
        return self.returncode


class ForkServer:
    """The trusted side's handle on a running fork server."""

    def __init__(self, env: dict[str, str], cwd: str = "/", preload: tuple[str, ...] = ()):
        """``preload``: modules of ``PARTICIPANT_PRELOAD`` to import besides ``PRELOAD``."""
        self.started_with = (env, cwd, preload)
        self.socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.matplotlib_dir = tempfile.mkdtemp(prefix="forkserver-matplotlib-")  # its font cache, built once
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unlearning_challenge.runner.forkserver", str(theirs.fileno()), ",".join(preload),
             str(os.getpid())],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            cwd=cwd,
            env={**env, "MPLCONFIGDIR": self.matplotlib_dir},
            start_new_session=True,
        )
        theirs.close()
        self._ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Block until the server's imports are done; raise ForkServerError if it never gets there."""
        if self._ready:
            return
        self.socket.settimeout(timeout)
        try:
            message = self.socket.recv(64)
        except OSError as exc:
            raise ForkServerError(f"the fork server did not start: {exc}") from exc
        if message != b"ready":
            reason = message.decode(errors="replace") or f"exit code {self.process.poll()}"
            raise ForkServerError(f"the fork server did not start ({reason})")
        self._ready = True

    def spawn(self, job_path: str, cwd: str, env: dict[str, str], caps: WorkerCaps,
              identity: WorkerIdentity, fds: tuple[int, int, int]) -> ForkedProcess:
        """Fork a worker for ``job_path``; ``fds`` = (control write, go read, output write)."""
        self.wait_ready()
        request = {"job": job_path, "cwd": cwd, "env": env, "memory_bytes": caps.memory_bytes,
                   "processes": caps.processes, "cpu_seconds": caps.cpu_seconds, "uid": identity.uid,
                   "gid": identity.gid, "parent": os.getpid()}
        try:
            socket.send_fds(self.socket, [json.dumps(request).encode()], list(fds))
            reply = json.loads(self.socket.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            raise ForkServerError(f"the fork server stopped answering: {exc}") from exc
        if "pid" not in reply:
            raise ForkServerError(f"the fork server could not start a worker: {reply.get('error', 'no reply')}")
        return ForkedProcess(int(reply["pid"]))

    def close(self) -> None:
        """Stop the server (it exits when its socket closes; killed if it does not)."""
        self.socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.matplotlib_dir, ignore_errors=True)


# ---------------------------------------------------------------- started early

# The fork server :func:`start_early` started, until a session takes it (:func:`take_early`).
_early: ForkServer | None = None


def start_early(env: dict[str, str], submission: Path) -> None:
    """Start the fork server for ``submission``'s runs now, before this program imports torch: its imports
    (the same, about 2 s on a CPU) then run beside this program's own on another core, and the session that
    takes it (:func:`take_early`) finds it ready. Closed at exit if no session took it."""
    global _early
    if _early is None and sys.platform.startswith("linux"):
        _early = ForkServer(env, preload=participant_preload(submission))
        atexit.register(_close_untaken)


def start_early_for_arguments(argv: list[str]) -> None:
    """:func:`start_early` for the submission a program's command line names (``--submission``), if any."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--submission", type=Path)
    with contextlib.suppress(SystemExit):  # a command line the program itself will refuse
        submission = parser.parse_known_args(argv)[0].submission
        if submission is not None and submission.is_dir():
            start_early(worker_env(Path("/")), submission)


def take_early(env: dict[str, str], preload: tuple[str, ...]) -> ForkServer | None:
    """The server :func:`start_early` started, if it was started for this environment and these preloads
    (otherwise it is closed); None when there is none. Each server is taken once."""
    global _early
    server, _early = _early, None
    if server is not None and server.started_with != (env, "/", preload):
        server.close()
        return None
    return server


def wait_for_early() -> None:
    """Wait until a server started early has done its imports (a calibration timed meanwhile would share
    the CPU with them); at once when there is none, or when it failed (its session then says so)."""
    if _early is not None:
        with contextlib.suppress(ForkServerError):
            _early.wait_ready()


def _close_untaken() -> None:
    if _early is not None:
        _early.close()


# ---------------------------------------------------------------- server side


def _become_worker(request: dict, ctrl_fd: int, go_fd: int, out_fd: int) -> None:
    """In the forked worker: the state a fresh ``python -m unlearning_challenge.runner.worker`` would have. Never returns."""
    code = 1
    try:
        _close_fds_except({0, 1, 2, ctrl_fd, go_fd, out_fd})
        _name_process(b"unlearning-run")  # as `ps -o comm` and `top` show it (the command line is the server's)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        for fd in (devnull, out_fd):
            os.close(fd)
        sys.stdout = sys.__stdout__ = _unbuffered_text(1)
        sys.stderr = sys.__stderr__ = _unbuffered_text(2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.dont_write_bytecode = True
        sys.path[0] = request["cwd"]  # as ``python -m`` started in the run folder would have it
        identity = WorkerIdentity(request["uid"], request["gid"])
        worker_limits(WorkerCaps(request["processes"], request["memory_bytes"], request["cpu_seconds"]), identity)()
        if identity.dropped:
            os.setgroups([])
            os.setgid(identity.gid)
            os.setuid(identity.uid)
        from unlearning_challenge.runner import worker

        # The worker dies with the trusted process it is reparented to (worker.main sets the signal).
        code = worker.main([request["job"], str(ctrl_fd), str(go_fd), str(request["parent"])])
    except BaseException:  # noqa: BLE001 - report anything to the run's output, then exit
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _name_process(name: bytes) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _close_fds_except(still_needed: set[int]) -> None:
    """Close every descriptor the server had open, except those in ``still_needed``."""
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd not in still_needed:
            try:
                os.close(fd)
            except OSError:
                pass


def _unbuffered_text(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                            write_through=True)


def _fork_worker(server: socket.socket, request: dict, fds: list[int]) -> int:
    """Fork twice so that the worker is reparented to the ingestion; return the worker's pid."""
    pid_r, pid_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            server.close()
            os.close(pid_r)
            worker = os.fork()
            if worker == 0:
                os.close(pid_w)
                _become_worker(request, *fds)
            os.write(pid_w, str(worker).encode())
        finally:
            os._exit(0)
    os.close(pid_w)
    os.waitpid(middle, 0)  # once the middle process is gone, the worker belongs to the subreaper
    with os.fdopen(pid_r, "rb") as f:
        text = f.read()
    if not text:
        raise OSError("the worker could not be forked")
    return int(text)


def serve(server: socket.socket, preload: set[str]) -> int:
    """Import what workers need (``PRELOAD``, and the modules of ``PARTICIPANT_PRELOAD`` in ``preload``),
    say ready, then fork one worker per request until the socket closes."""
    keep_out_of_proc()  # its stderr is the ingestion's
    for module in PRELOAD:
        __import__(module)
    for module in PARTICIPANT_PRELOAD:
        if module in preload:
            with contextlib.suppress(ImportError):
                __import__(module)
    import torch

    if torch.cuda.is_initialized():  # a forked worker could not use the GPU then
        server.send(b"cuda initialized in the fork server")
        return 1
    # Importing torch starts a helper thread; forking then is what torch's own
    # DataLoader workers do. Python 3.12+ warns about any fork in a threaded process.
    warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
    server.send(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, 1 << 20, 3)
        except ConnectionResetError:  # closed before it read "ready" (a session never took it)
            return 0
        if not message:
            return 0
        try:
            if len(fds) != 3:
                raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
            reply = {"pid": _fork_worker(server, json.loads(message), fds)}
        except (OSError, ValueError, KeyError) as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        server.send(json.dumps(reply).encode())


if __name__ == "__main__":
    die_with(int(sys.argv[3]))  # SIGKILLed when the trusted process that started it exits, however
    status = serve(socket.socket(fileno=int(sys.argv[1])), set(filter(None, sys.argv[2].split(","))))
    sys.stderr.flush()
    os._exit(status)  # no interpreter teardown (torch's takes most of a second): it holds nothing to save
