"""This process as the runs' reaper: orphans come back here, and are killed and counted here.

A worker may start processes that outlive it. As a child subreaper (Linux), this
process becomes their parent when their own parent dies, so it can find them
among its children, kill them after the run and reap them: the CPU seconds of
what it reaps count towards the run (``reaped_children_cpu_seconds``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

from unlearning_challenge.runner.procfs import children_of

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def not_subreaper():
    """While inside, orphans go past this process (to init or a subreaper above it); its subreaper
    flag is restored on the way out (Linux only; elsewhere nothing changes)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        was = libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value
        if was:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    except (OSError, AttributeError):
        was = False
    try:
        yield
    finally:
        if was:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reaped_children_cpu_seconds() -> float:
    """CPU seconds of every child this process has reaped so far (and of what they reaped)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_children() -> set[int]:
    """Pids of this process's current children."""
    return set(children_of(os.getpid()))


def kill_leftovers(spared: set[int] = frozenset()) -> list[int]:
    """SIGKILL every child of this process except the pids in ``spared`` (orphans of killed workers are
    reparented here, as this process is a subreaper), reap them. Returns the pids killed."""
    killed = []
    for _ in range(50):
        pids = [p for p in children_of(os.getpid()) if p not in spared]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        time.sleep(0.01)
    return killed
