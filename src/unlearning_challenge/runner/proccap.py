"""A cap on the number of processes a run may hold, enforced by the trusted side; and no network.

``RLIMIT_NPROC`` holds only for a user other than root, and counts every
process of that user: it caps a worker dropped to ``nobody``, but not one that
keeps root (a Codabench container drops the capability to change user) nor
one that shares a participant's own user with their browser. This cap holds
in every such setting, with no privilege:

- the worker installs a seccomp filter (:func:`install_run_filter`, before any
  participant code) that hands every process creation (``fork``, ``vfork``,
  ``clone`` without ``CLONE_THREAD``) to a listener; threads are not counted,
  ``clone3`` answers ENOSYS so that the C library falls back to ``clone``;
  the filter is inherited by every descendant and cannot be removed;
- the worker passes the listener's descriptor to the trusted side over its
  control socket and closes its own copy;
- :class:`ForkSupervisor`, a thread of the trusted side, lets each request
  through, or fails it with EAGAIN (as ``RLIMIT_NPROC`` does) once ``limit``
  are alive. Every process the run creates passes through it, so its last count
  plus the processes it let through since is an upper bound on the live ones:
  it counts again (a walk of ``/proc``) only when that bound reaches ``limit``,
  not at every request, so a burst of forks costs a few walks, not one each.

The same filter cuts the network for every run, whatever its user and whether
or not Landlock is there: ``socket()`` fails with EAFNOSUPPORT for every family
but ``AF_UNIX`` (``socketpair`` and Unix sockets stay: data-loader workers use
them), and ``io_uring_setup`` is refused (io_uring can open sockets itself).

Requests are answered one at a time; a process let through just before a
count may not show in it yet, so a run holds at most twice ``limit``
processes in the worst case.
Needs Linux 5.0+ (seccomp user notification) on x86_64 or aarch64; elsewhere
:func:`install_run_filter` says why not, and the run records it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from unlearning_challenge.runner.procfs import parent_of, processes

_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_FLAG_TSYNC, _FLAG_NEW_LISTENER, _FLAG_TSYNC_ESRCH = 1 << 0, 1 << 3, 1 << 4
_RET_ALLOW, _RET_USER_NOTIF, _RET_ERRNO = 0x7FFF0000, 0x7FC00000, 0x00050000
_CLONE_THREAD = 0x00010000
_AF_UNIX = 1
_NOT_A_SYSCALL = 0xFFFFFFFF
# struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes): _IOWR('!', 0 / 1, ...)
_NOTIF_SIZE, _NOTIF_RESP = 80, struct.Struct("=QqiI")
_IOCTL_NOTIF_RECV, _IOCTL_NOTIF_SEND = 0xC0502100, 0xC0182101
_NOTIF_FLAG_CONTINUE = 1


@dataclass(frozen=True)
class Syscalls:
    """One machine's numbers: the seccomp syscall, the audit arch and the syscalls the filter watches."""

    seccomp: int
    arch: int
    clone: int
    fork: int
    vfork: int
    clone3: int
    socket: int
    io_uring_setup: int


_ARCHES = {
    "x86_64": Syscalls(317, 0xC000003E, 56, 57, 58, 435, 41, 425),
    "aarch64": Syscalls(277, 0xC00000B7, 220, _NOT_A_SYSCALL, _NOT_A_SYSCALL, 435, 198, 425),
}
# How long a count at the limit is reused before the processes are counted again.
_FULL_RECOUNT_SECONDS = 0.05
# The errno a refused socket() gets: "[Errno 97] Address family not supported by protocol".
NETWORK_ERRNO = errno.EAFNOSUPPORT
NETWORK_FILTER = "no network (seccomp: socket() refused for every family but AF_UNIX, io_uring refused)"


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _assemble(lines: list[tuple]) -> list[tuple[int, int, int, int]]:
    """Classic BPF from ``(code, k, jump_if_true, jump_if_false)`` lines and ``"label:"`` strings;
    a jump names a label further down (None: the next instruction)."""
    labels, position = {}, 0
    for line in lines:
        if isinstance(line, str):
            labels[line.rstrip(":")] = position
        else:
            position += 1
    program = []
    for line in lines:
        if isinstance(line, str):
            continue
        code, k, *jumps = line
        here = len(program) + 1
        jt, jf = ((labels[j] - here) if j is not None else 0 for j in (jumps + [None, None])[:2])
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError(f"BPF jumps go forward only, by at most 255: {line}")
        program.append((code, jt, jf, k))
    return program


def _program(numbers: Syscalls, *, supervise_forks: bool) -> list[tuple[int, int, int, int]]:
    """The filter over ``struct seccomp_data`` (nr at 0, arch at 4, args[0] at 16).

    Process creations go to the listener (``supervise_forks``; else they are allowed),
    threads are allowed; ``socket()`` of any family but AF_UNIX and ``io_uring_setup``
    are refused; ``clone3``, another ABI (i386 through int 0x80) and x32 answer ENOSYS.
    """
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    process = _RET_USER_NOTIF if supervise_forks else _RET_ALLOW
    return _assemble([
        (load, 4),  # arch
        (jeq, numbers.arch, None, "enosys"),
        (load, 0),  # syscall number
        (jge, 0x40000000, "enosys"),  # x32 ABI
        (jeq, numbers.clone3, "enosys"),  # its flags are out of the filter's reach
        (jeq, numbers.clone, "clone"),
        (jeq, numbers.fork, "process"),
        (jeq, numbers.vfork, "process"),
        (jeq, numbers.socket, "socket"),
        (jeq, numbers.io_uring_setup, "no_network"),  # io_uring can open sockets by itself
        (ret, _RET_ALLOW),
        "clone:",
        (load, 16),  # clone's flags (low 32 bits of args[0])
        (jset, _CLONE_THREAD, "allow", "process"),
        "socket:",
        (load, 16),  # socket's family (args[0])
        (jeq, _AF_UNIX, "allow", "no_network"),
        "allow:",
        (ret, _RET_ALLOW),
        "process:",
        (ret, process),
        "no_network:",
        (ret, _RET_ERRNO | NETWORK_ERRNO),
        "enosys:",
        (ret, _RET_ERRNO | errno.ENOSYS),
    ])


@dataclass(frozen=True)
class RunFilter:
    """What :func:`install_run_filter` installed: the process cap's listener (None: no cap) and,
    in words, what capped processes (or why nothing did) and what cut the network (or why nothing did)."""

    listener: int | None
    process_cap: str
    network: str


def _install(numbers: Syscalls, libc, *, supervise_forks: bool) -> int:
    """The filter's listener fd (0 without ``supervise_forks``), or -1 with errno set."""
    instructions = _program(numbers, supervise_forks=supervise_forks)
    array = (_SockFilter * len(instructions))(*[_SockFilter(*i) for i in instructions])
    program = _SockFprog(len(instructions), array)
    options = ((_FLAG_NEW_LISTENER | _FLAG_TSYNC | _FLAG_TSYNC_ESRCH, _FLAG_NEW_LISTENER) if supervise_forks
               else (_FLAG_TSYNC, 0))
    for flags in options:
        result = libc.syscall(numbers.seccomp, _SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(program))
        if result >= 0:
            return result
    return -1


def install_run_filter() -> RunFilter:
    """In the worker, before any participant code: hand every later process creation to a
    listener and cut the network, for this process and every one it starts (for good).

    Where seccomp user notification is refused (Linux before 5.0), the network is still
    cut by a filter without a listener. Sets no_new_privs (Landlock sets it too).
    """
    numbers = _ARCHES.get(platform.machine())
    if numbers is None:
        why = f"{platform.machine()} (x86_64 and aarch64 only)"
        return RunFilter(None, f"no process cap on {why}", f"no network filter on {why}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        why = f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
        return RunFilter(None, f"no process cap: {why}", f"no network filter: {why}")
    listener = _install(numbers, libc, supervise_forks=True)
    if listener >= 0:
        return RunFilter(listener, "", NETWORK_FILTER)
    refused = f"seccomp user notification refused ({os.strerror(ctypes.get_errno())})"
    if _install(numbers, libc, supervise_forks=False) >= 0:
        return RunFilter(None, f"no process cap: {refused}", NETWORK_FILTER)
    return RunFilter(None, f"no process cap: {refused}",
                     f"no network filter: seccomp refused ({os.strerror(ctypes.get_errno())})")


def descendants_count(root: int, exclude: set[int]) -> int:
    """Live processes below ``root`` (zombies included), not counting the subtrees of ``exclude``.

    ``root`` may be pid 1, as the ingestion is when a container runs it without an init.
    """
    children: dict[int, list[int]] = {}
    for pid, fields in processes():
        children.setdefault(parent_of(fields), []).append(pid)
    count, pending = 0, [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in exclude and child != root:
                count += 1
                pending.append(child)
    return count


class ForkSupervisor:
    """Answers a run's process creations: through while ``count()`` is under ``limit``, else EAGAIN.

    Owns ``listener`` (closed by :meth:`stop`). ``count`` returns the run's live processes.
    """

    def __init__(self, listener: int, count: Callable[[], int], limit: int):
        self.listener, self.count, self.limit = listener, count, limit
        self.allowed = self.refused = 0
        self.counts = 0  # walks of the process table so far
        # The last count plus the processes let through since: at least the live ones.
        self._bound = limit  # nothing counted yet: count at the first request
        self._full_until = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fork-supervisor", daemon=True)
        self._thread.start()

    def _decide(self) -> bool:
        now = time.monotonic()
        if now < self._full_until:
            return False
        if self._bound >= self.limit:
            self._bound = self.count()
            self.counts += 1
            if self._bound >= self.limit:
                self._full_until = now + _FULL_RECOUNT_SECONDS
                return False
        self._bound += 1
        return True

    def _answer_one(self) -> None:
        request = bytearray(_NOTIF_SIZE)
        try:
            fcntl.ioctl(self.listener, _IOCTL_NOTIF_RECV, request)
        except OSError:  # the requesting process is gone, or the filter's last user exited
            return
        (request_id,) = struct.unpack_from("=Q", request)
        allowed = self._decide()
        if allowed:
            self.allowed += 1
            response = _NOTIF_RESP.pack(request_id, 0, 0, _NOTIF_FLAG_CONTINUE)
        else:
            self.refused += 1
            response = _NOTIF_RESP.pack(request_id, 0, -errno.EAGAIN, 0)
        try:
            fcntl.ioctl(self.listener, _IOCTL_NOTIF_SEND, bytearray(response))
        except OSError:
            pass

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        while not self._stopping.is_set():
            for _, events in poller.poll(200):
                if events & select.POLLIN:
                    self._answer_one()
                elif events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return  # every process holding the filter has exited

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        try:
            os.close(self.listener)
        except OSError:
            pass
