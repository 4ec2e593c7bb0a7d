"""Reading the process table from /proc (Linux)."""

from __future__ import annotations

import os

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is field 3, the state); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_of(fields: list[str]) -> int:
    return int(fields[1])


def session_of(fields: list[str]) -> int:
    return int(fields[3])


def cpu_seconds_of(fields: list[str]) -> float:
    """utime + stime + cutime + cstime (fields 14-17), in seconds."""
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS


def processes() -> list[tuple[int, list[str]]]:
    """(pid, stat fields) of every process now."""
    result = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields is not None:
                result.append((int(entry), fields))
    return result


def children_of(pid: int) -> list[int]:
    """Pids of the live children of ``pid``."""
    return [child for child, fields in processes() if parent_of(fields) == pid]


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by one process and the children it has reaped (0 if it is gone)."""
    fields = stat_fields(pid)
    return 0.0 if fields is None else cpu_seconds_of(fields)


def session_cpu_seconds(session: int) -> float:
    """CPU seconds used so far by every live process of a session (field 6 of their stat)."""
    return sum(cpu_seconds_of(fields) for _, fields in processes() if session_of(fields) == session)
