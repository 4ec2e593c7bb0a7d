"""/dev/shm between runs: a run may use shared memory, but nothing it leaves there survives it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from unlearning_challenge.runner.landlock import SHARED_MEMORY


def shared_memory_entries() -> set[str]:
    """Names in /dev/shm now (a run may use shared memory, but nothing it leaves there survives it)."""
    try:
        return set(os.listdir(SHARED_MEMORY))
    except OSError:
        return set()


def clear_shared_memory(before: set[str], owner: int | None = None) -> None:
    """Remove what appeared in /dev/shm since ``before`` (no state passes from one run to the next);
    ``owner``: only what that user owns (the runs' own user: another slot's runs on this node keep theirs)."""
    for name in shared_memory_entries() - before:
        path = Path(SHARED_MEMORY) / name
        try:
            if owner is not None and path.lstat().st_uid != owner:
                continue
        except OSError:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
