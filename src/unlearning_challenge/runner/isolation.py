"""What keeps the worker away from the trusted files.

When the ingestion program runs as root (as in most platform containers), each
worker runs as an unprivileged user (``nobody`` by default) and the trusted
folders (input data with the test set, reference data, the output) are made
unreachable to it for the duration of the ingestion. When it runs as an
ordinary user, the worker runs as that same user: it then *can* read what that
user can read; the README's security section spells out what is and is not
protected in each case.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from unlearning_challenge.atomic import copy_tree

DEFAULT_WORKER_USER = "nobody"
MAX_FILE_BYTES = 4 * 2**30


@dataclass(frozen=True)
class WorkerIdentity:
    """The user a worker runs as; ``uid is None``: the ingestion's own user."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""

    @property
    def dropped(self) -> bool:
        return self.uid is not None


# Capability bits (linux/capability.h) a drop to another user needs.
CAP_SETGID = 6
CAP_SETUID = 7


_PR_SET_DUMPABLE = 4


def keep_out_of_proc() -> None:
    """Make this trusted process non-dumpable: a run cannot then open its descriptors (its stdout
    and stderr, which the platform shows) through ``/proc/PID/fd``, even as the same user and
    where Landlock is missing; only CAP_SYS_PTRACE could. No-op off Linux."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def missing_capabilities(status_file: Path = Path("/proc/self/status")) -> list[str]:
    """Names of CAP_SETUID / CAP_SETGID absent from this process's effective set ([] if unknown)."""
    try:
        line = next(l for l in status_file.read_text().splitlines() if l.startswith("CapEff:"))
    except (OSError, StopIteration):
        return []
    effective = int(line.split()[1], 16)
    return [name for name, bit in (("CAP_SETUID", CAP_SETUID), ("CAP_SETGID", CAP_SETGID))
            if not effective >> bit & 1]


def worker_identity(env: dict[str, str], user: str = DEFAULT_WORKER_USER) -> tuple[WorkerIdentity, str]:
    """The identity workers run as, and a warning ("" if none).

    As root: ``user``, provided it can start this Python and import the package
    (checked by starting it once); otherwise the current user, with a warning.
    """
    current = WorkerIdentity(name=pwd.getpwuid(os.geteuid()).pw_name)
    if os.geteuid() != 0:
        return current, ""
    missing = missing_capabilities()
    if missing:
        return current, (f"running as root without {' and '.join(missing)} (a container started with its "
                         "capabilities dropped, as Codabench's workers do): workers keep the ingestion's user, "
                         "confined by Landlock and the process cap only")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return current, f"user {user!r} does not exist: workers keep the ingestion's user"
    candidate = WorkerIdentity(entry.pw_uid, entry.pw_gid, user)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import unlearning_challenge"], env=env, cwd="/", capture_output=True,
            user=candidate.uid, group=candidate.gid, extra_groups=[], timeout=120,
        )
        reason = (probe.stderr.decode(errors="replace").strip().splitlines() or ["exit code %d" % probe.returncode])[-1]
        ok = probe.returncode == 0
    except OSError as exc:  # e.g. the interpreter's folder is closed to that user
        reason, ok = str(exc), False
    if not ok:
        return current, (f"user {user!r} cannot start {sys.executable} or import the package ({reason}): "
                         "workers keep the ingestion's user")
    return candidate, ""


# Run slots (``evaluate --backend ray``): slot s's workers run as user ``unlearning-slot<s>``, uid and gid
# SLOT_UID_BASE + s, so that runs side by side on one node cannot signal, trace or read each other.
SLOT_UID_BASE = 40000
MAX_SLOTS = 1000
SLOT_USER_PREFIX = "unlearning-slot"


def slot_identity(slot: int, env: dict[str, str]) -> tuple[WorkerIdentity, str]:
    """The identity slot ``slot``'s workers run as, and a warning ("" if none): its own user, made when
    missing (as root, with ``useradd``); where it cannot be, :func:`worker_identity`'s (then slots share
    a user, which the warning says)."""
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"run slot {slot} outside 0..{MAX_SLOTS - 1}")
    user, uid = f"{SLOT_USER_PREFIX}{slot}", SLOT_UID_BASE + slot
    problem = _ensure_user(user, uid) if os.geteuid() == 0 else ""
    if problem:
        identity, warning = worker_identity(env)
        shared = f"user {user!r} could not be made ({problem}): the slots on this node share user {identity.name!r}"
        return identity, "; ".join(text for text in (shared, warning) if text)
    return worker_identity(env, user)


def _ensure_user(user: str, uid: int) -> str:
    """Make the system user ``user`` (uid and gid ``uid``, no home, no shell) unless it exists; why it
    could not be ("" when it exists)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = None
    if entry is not None:
        return "" if entry.pw_uid == uid else f"it exists with uid {entry.pw_uid}, not {uid}"
    useradd = shutil.which("useradd") or next((p for p in ("/usr/sbin/useradd", "/sbin/useradd")
                                               if os.access(p, os.X_OK)), None)
    if useradd is None:
        return "no useradd on this node"
    groupadd = shutil.which("groupadd") or "/usr/sbin/groupadd"
    try:
        subprocess.run([groupadd, "--system", "--gid", str(uid), user], capture_output=True, timeout=60)
        made = subprocess.run([useradd, "--system", "--no-create-home", "--uid", str(uid), "--gid", str(uid),
                               "--shell", "/usr/sbin/nologin", "--home-dir", "/nonexistent", user],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if made.returncode != 0:
        try:  # another slot of this node made it meanwhile
            return "" if pwd.getpwnam(user).pw_uid == uid else "it exists with another uid"
        except KeyError:
            return (made.stderr.strip().splitlines() or [f"useradd exit code {made.returncode}"])[-1]
    return ""


def close_to_workers(paths: list[Path]) -> list[str]:
    """Make ``paths`` unreachable to every other user (mode 0700), for good: the owner of an evaluation
    restores them (:func:`folder_modes`). Warnings for paths that could not be closed."""
    warnings = []
    for path in paths:
        try:
            if stat.S_IMODE(path.stat().st_mode) != 0o700:
                os.chmod(path, 0o700)
        except OSError as exc:
            warnings.append(f"could not restrict access to {path}: {exc}")
    return warnings


@contextlib.contextmanager
def folder_modes(paths: list[Path]) -> Iterator[None]:
    """Restore ``paths``' modes on the way out, whatever closed them meanwhile."""
    saved = []
    for path in paths:
        with contextlib.suppress(OSError):
            saved.append((path, stat.S_IMODE(path.stat().st_mode)))
    try:
        yield
    finally:
        for path, mode in saved:
            with contextlib.suppress(OSError):
                os.chmod(path, mode)


def give_to_worker(path: Path, identity: WorkerIdentity) -> None:
    """Hand a run folder (recursively) to the worker's user, private to it."""
    if not identity.dropped:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, identity.uid, identity.gid)
        os.chmod(root, 0o700)
        for name in files:
            os.chown(os.path.join(root, name), identity.uid, identity.gid)


@contextlib.contextmanager
def locked(paths: list[Path], identity: WorkerIdentity) -> Iterator[list[str]]:
    """While inside, make ``paths`` unreachable to the worker's user (mode 0700); restore after.

    Yields warnings for paths that could not be locked (e.g. read-only mounts).
    """
    saved, warnings = [], []
    if identity.dropped:
        for path in paths:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
                os.chmod(path, 0o700)
                saved.append((path, mode))
            except OSError as exc:
                warnings.append(f"could not restrict access to {path}: {exc}")
    try:
        yield warnings
    finally:
        for path, mode in saved:
            with contextlib.suppress(OSError):
                os.chmod(path, mode)


@dataclass(frozen=True)
class WorkerCaps:
    """What a run may use: ``processes`` live at once, the worker included (the seccomp supervisor's
    cap; RLIMIT_NPROC as well for a worker dropped to another user), and ``memory_bytes`` of heap and
    private writable mappings (RLIMIT_DATA; 0: no cap); ``cpu_seconds``: RLIMIT_CPU of each process, the last
    backstop should the trusted side fail to stop a run (0: none; :meth:`RunLimits.cpu_backstop_seconds
    <unlearning_challenge.runner.limits.RunLimits.cpu_backstop_seconds>`)."""

    processes: int
    memory_bytes: int = 0
    cpu_seconds: int = 0


def worker_limits(caps: WorkerCaps, identity: WorkerIdentity):
    """A preexec function setting the worker's resource limits (runs in the child before exec)."""

    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        if caps.memory_bytes:
            # RLIMIT_DATA counts heap and private writable mappings but not the address
            # space CUDA reserves, so it caps host memory without breaking the GPU.
            resource.setrlimit(resource.RLIMIT_DATA, (caps.memory_bytes, caps.memory_bytes))
        if caps.cpu_seconds:
            # Per process, and each child starts from 0: RLIMIT_NPROC and the seccomp supervisor cap the
            # forks (none at all once the trusted side is gone). SIGXCPU at the soft limit, SIGKILL at the hard.
            resource.setrlimit(resource.RLIMIT_CPU, (caps.cpu_seconds, caps.cpu_seconds))
        if identity.dropped:
            resource.setrlimit(resource.RLIMIT_NPROC, (caps.processes, caps.processes))

    return apply


def copy_submission(source: Path, target: Path) -> None:
    """Copy the submission folder (no symlinks followed out of it) into the run folder."""
    copy_tree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
