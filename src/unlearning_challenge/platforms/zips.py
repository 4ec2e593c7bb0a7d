"""Deterministic zips: the same files always give the same bytes.

Shared by the organizer's build (program, data and starting-kit zips, the
bundles) and the participant's submission zip.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Iterable

from unlearning_challenge.platforms.errors import BundleError

__all__ = ["deterministic_zip", "folder_files", "folder_zip"]

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o644
EXCLUDED_NAMES = frozenset({"__pycache__", ".DS_Store", ".ipynb_checkpoints", ".git", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".tmp")


def _excluded(path: Path) -> bool:
    return any(part in EXCLUDED_NAMES for part in path.parts) or path.name.endswith(EXCLUDED_SUFFIXES)


def folder_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """``(name in zip, file)`` for every file under ``folder`` (skipping caches), sorted."""
    entries = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_dir() or _excluded(rel):
            continue
        entries.append((prefix + rel.as_posix(), path))
    return entries


def deterministic_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """Zip ``(name, data)`` pairs: sorted, fixed timestamps and modes, deflated.

    The same entries always give the same bytes; a name given twice is a BundleError.
    """
    entries = sorted(entries, key=lambda item: item[0])
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise BundleError(f"duplicate names in a zip: {sorted({n for n in names if names.count(n) > 1})}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = 3  # unix, so the mode below is read back
            info.external_attr = (0o100000 | ZIP_FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def folder_zip(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The folder's files at the zip's root; ``extra`` adds files (``{name: bytes}``), each replacing
    the folder's file of that name if it has one (the folder itself is left as it is)."""
    extra = extra or {}
    entries = [(name, path.read_bytes()) for name, path in folder_files(folder) if name not in extra]
    return deterministic_zip([*entries, *extra.items()])
