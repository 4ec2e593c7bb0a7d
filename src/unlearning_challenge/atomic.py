"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = True, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``path``.

    ``durable``: flush the file to disk before the rename; False for a file read
    right away and deleted after (a run's output), where the flush only costs time.
    ``mode``: the file's permissions (default: 0666 less the umask), set before anything is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask() if mode is None else mode)  # mkstemp makes 0600
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if durable:
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    with atomic_path(path, durable=durable, mode=mode) as tmp:
        tmp.write_bytes(data)


def copy_file(source: str | Path, path: str | Path, *, durable: bool = True) -> None:
    """Copy the bytes of ``source`` to ``path``."""
    with atomic_path(path, durable=durable) as tmp:
        shutil.copyfile(source, tmp)


def copy_tree(source: str | Path, path: str | Path, *, ignore=None) -> None:
    """Copy the folder ``source`` to ``path`` (which must not exist), symlinks kept as links.

    The copy is made in a temporary folder beside ``path`` and renamed: ``path`` appears
    complete or not at all. ``ignore``: as :func:`shutil.copytree`'s. Not flushed to disk
    (used for folders read at once and deleted after).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        # copytree gives the copy the source folder's mode and times, as a plain copytree would
        shutil.copytree(source, tmp, symlinks=True, ignore=ignore, dirs_exist_ok=True)
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = True) -> bytes:
    """Arrays as the bytes of an npz file (no object arrays: readable without pickle)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object; npz files here never hold pickles")
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write arrays as an npz file (no object arrays: readable without pickle)."""
    write_bytes(path, npz_bytes(arrays, compress))
