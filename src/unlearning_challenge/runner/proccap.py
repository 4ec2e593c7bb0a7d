"""A cap on the number of processes a run may hold, enforced by the trusted side.

``RLIMIT_NPROC`` holds only for a user other than root, and counts every
process of that user: it caps a worker dropped to ``nobody``, but not one that
keeps root (a Codabench container drops the capability to change user) nor
one that shares a participant's own user with their browser. This cap holds
in every such setting, with no privilege:

- the worker installs a seccomp filter (:func:`install_fork_filter`, before any
  participant code) that hands every process creation (``fork``, ``vfork``,
  ``clone`` without ``CLONE_THREAD``) to a listener; threads are not counted,
  ``clone3`` answers ENOSYS so that the C library falls back to ``clone``;
  the filter is inherited by every descendant and cannot be removed;
- the worker passes the listener's descriptor to the trusted side over its
  control socket and closes its own copy;
- :class:`ForkSupervisor`, a thread of the trusted side, counts the run's live
  processes at each request and lets it through, or fails it with EAGAIN (as
  ``RLIMIT_NPROC`` does) once ``limit`` are alive.

A request is answered only after the count, so a burst of forks proceeds at
the supervisor's pace; requests let through just before a count may not show
in it yet, so a run holds at most twice ``limit`` processes in the worst case.
Needs Linux 5.0+ (seccomp user notification) on x86_64 or aarch64; elsewhere
:func:`install_fork_filter` says why not, and the run records it.
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

from unlearning_challenge.runner.procfs import parent_of, processes

MAX_RUN_PROCESSES = 512

_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_FLAG_TSYNC, _FLAG_NEW_LISTENER, _FLAG_TSYNC_ESRCH = 1 << 0, 1 << 3, 1 << 4
_RET_ALLOW, _RET_USER_NOTIF, _RET_ERRNO = 0x7FFF0000, 0x7FC00000, 0x00050000
_CLONE_THREAD = 0x00010000
_NOT_A_SYSCALL = 0xFFFFFFFF
# struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes): _IOWR('!', 0 / 1, ...)
_NOTIF_SIZE, _NOTIF_RESP = 80, struct.Struct("=QqiI")
_IOCTL_NOTIF_RECV, _IOCTL_NOTIF_SEND = 0xC0502100, 0xC0182101
_NOTIF_FLAG_CONTINUE = 1
# Per machine: (seccomp syscall, audit arch, clone, fork, vfork, clone3)
_ARCHES = {
    "x86_64": (317, 0xC000003E, 56, 57, 58, 435),
    "aarch64": (277, 0xC00000B7, 220, _NOT_A_SYSCALL, _NOT_A_SYSCALL, 435),
}
# How long a count at the limit is reused before the processes are counted again.
_FULL_RECOUNT_SECONDS = 0.05


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _program(arch: int, clone: int, fork: int, vfork: int, clone3: int) -> list[tuple[int, int, int, int]]:
    """The filter, as classic BPF over ``struct seccomp_data`` (nr at 0, arch at 4, args[0] at 16)."""
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    return [
        (load, 0, 0, 4),  # 0: arch
        (jeq, 0, 11, arch),  # 1: another ABI (e.g. i386 through int 0x80) -> 13
        (load, 0, 0, 0),  # 2: syscall number
        (jge, 9, 0, 0x40000000),  # 3: x32 ABI -> 13
        (jeq, 8, 0, clone3),  # 4: clone3 -> 13 (its flags are out of the filter's reach)
        (jeq, 3, 0, clone),  # 5: clone -> 9
        (jeq, 5, 0, fork),  # 6: fork -> 12
        (jeq, 4, 0, vfork),  # 7: vfork -> 12
        (ret, 0, 0, _RET_ALLOW),  # 8
        (load, 0, 0, 16),  # 9: clone's flags (low 32 bits of args[0])
        (jset, 0, 1, _CLONE_THREAD),  # 10: a thread -> 11, a process -> 12
        (ret, 0, 0, _RET_ALLOW),  # 11
        (ret, 0, 0, _RET_USER_NOTIF),  # 12
        (ret, 0, 0, _RET_ERRNO | errno.ENOSYS),  # 13
    ]


def install_fork_filter() -> tuple[int | None, str]:
    """In the worker: hand every later process creation to a listener. Returns (listener fd, "")
    or (None, why not). Sets no_new_privs (Landlock sets it too)."""
    machine = _ARCHES.get(platform.machine())
    if machine is None:
        return None, f"no process cap on {platform.machine()} (x86_64 and aarch64 only)"
    seccomp_nr, *numbers = machine
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        return None, f"no process cap: prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
    instructions = _program(*numbers)
    array = (_SockFilter * len(instructions))(*[_SockFilter(*i) for i in instructions])
    program = _SockFprog(len(instructions), array)
    for flags in (_FLAG_NEW_LISTENER | _FLAG_TSYNC | _FLAG_TSYNC_ESRCH, _FLAG_NEW_LISTENER):
        fd = libc.syscall(seccomp_nr, _SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(program))
        if fd >= 0:
            return fd, ""
    return None, f"no process cap: seccomp user notification refused ({os.strerror(ctypes.get_errno())})"


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

    def __init__(self, listener: int, count: Callable[[], int], limit: int = MAX_RUN_PROCESSES):
        self.listener, self.count, self.limit = listener, count, limit
        self.allowed = self.refused = 0
        self._full_until = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fork-supervisor", daemon=True)
        self._thread.start()

    def _decide(self) -> bool:
        now = time.monotonic()
        if now < self._full_until:
            return False
        if self.count() < self.limit:
            return True
        self._full_until = now + _FULL_RECOUNT_SECONDS
        return False

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
