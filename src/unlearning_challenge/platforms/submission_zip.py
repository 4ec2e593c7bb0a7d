"""Package a submission folder as the zip participants upload.

``make submission SUBMISSION=folder`` (or ``python -m unlearning_challenge
submission folder``) checks the folder and writes a
zip with the folder's files at the zip's root:

- the folder must hold ``unlearning.py`` defining ``unlearning(net,
  retain_loader, forget_loader, val_loader)``;
- a ``metadata`` file with a ``command`` is refused: the platform would run
  that command itself, in parallel with the ingestion program, instead of
  letting ingestion call your function;
- a ``metadata`` file without a command is added when missing: CodaLab
  Competitions treats an upload without ``metadata`` as a results submission
  and never runs the ingestion program on it (competitions-v1-compute-worker,
  worker.py: ``is_code_submission = exists(metadata_path)``);
- caches and hidden files (``__pycache__``, ``*.pyc``, ``.git``, ...) are left
  out; the zip is deterministic (same files, same bytes).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unlearning_challenge.artifacts import SUBMISSION_FILE, SUBMISSION_FUNCTION
from unlearning_challenge.atomic import write_bytes
from unlearning_challenge.platforms.zips import deterministic_zip

__all__ = ["SubmissionError", "PackedSubmission", "add_submission_arguments", "check_submission", "pack_submission",
           "run_submission"]

ENTRY_ARGS = ("net", "retain_loader", "forget_loader", "val_loader")
METADATA_FILE = "metadata"
DEFAULT_METADATA = (
    "description: Code submission for the machine unlearning challenge; the ingestion program "
    f"imports {SUBMISSION_FILE} and calls {SUBMISSION_FUNCTION}({', '.join(ENTRY_ARGS)}).\n"
)
SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store", ".venv"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
LARGE_FILE_BYTES = 50 * 1024 * 1024
LARGE_TOTAL_BYTES = 200 * 1024 * 1024


class SubmissionError(ValueError):
    """The folder cannot be submitted; the message says what to change."""


@dataclass
class PackedSubmission:
    path: Path
    files: list[str]
    size_bytes: int
    added_metadata: bool
    warnings: list[str] = field(default_factory=list)


def _skipped(rel: Path) -> bool:
    return (
        any(part in SKIPPED_NAMES or (part.startswith(".") and part not in (".", "..")) for part in rel.parts)
        or rel.name.endswith(SKIPPED_SUFFIXES)
    )


def _check_entry(path: Path) -> list[str]:
    """Check unlearning.py parses and defines the function; return warnings."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise SubmissionError(f"{path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise SubmissionError(f"{path} is not UTF-8 text") from None
    functions = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assigned = {target.id for node in tree.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    imported = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    if SUBMISSION_FUNCTION not in functions:
        if SUBMISSION_FUNCTION in assigned or SUBMISSION_FUNCTION in imported:
            return []  # defined some other way; ingestion checks it when it imports the file
        raise SubmissionError(
            f"{path} does not define a top-level function `{SUBMISSION_FUNCTION}({', '.join(ENTRY_ARGS)})`"
        )
    args = functions[SUBMISSION_FUNCTION].args
    positional = [a.arg for a in args.posonlyargs + args.args]
    if len(positional) < len(ENTRY_ARGS) and args.vararg is None:
        raise SubmissionError(
            f"{path}: `{SUBMISSION_FUNCTION}` takes {len(positional)} positional argument(s) {positional}; "
            f"it is called as {SUBMISSION_FUNCTION}({', '.join(ENTRY_ARGS)})"
        )
    return []


def _check_metadata(path: Path) -> None:
    try:
        metadata = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SubmissionError(
            f"{path} is not valid YAML ({exc}); delete it (a metadata file without a command is added for you)"
        ) from None
    if isinstance(metadata, dict) and "command" in metadata:
        raise SubmissionError(
            f"{path} has a `command` ({metadata['command']!r}): the platform would run it in parallel with the "
            "ingestion program instead of letting ingestion call your unlearning function; remove the "
            "`command` line (or the whole file: a metadata file without a command is added for you)"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise SubmissionError(f"{path} must be a YAML mapping such as `description: ...`, or absent")
    if isinstance(metadata, dict):
        extra = sorted(set(metadata) - {"description"})
        if extra:
            raise SubmissionError(
                f"{path} has key(s) {extra}: CodaLab fetches every key other than description/command as the "
                "URL of another bundle; keep only `description:` (or delete the file)"
            )


def check_submission(folder: str | Path) -> tuple[list[tuple[str, Path]], bool, list[str]]:
    """Check a submission folder.

    Returns ``(files, needs_metadata, warnings)`` where files are ``(name in
    zip, path)`` pairs. Raises SubmissionError when it cannot be submitted.
    """
    folder = Path(folder)
    if not folder.exists():
        raise SubmissionError(f"submission folder {folder} does not exist")
    if not folder.is_dir():
        raise SubmissionError(f"{folder} is not a folder; give the folder that holds {SUBMISSION_FILE}")
    entry = folder / SUBMISSION_FILE
    if not entry.is_file():
        found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob(SUBMISSION_FILE) if not _skipped(p.relative_to(folder)))
        where = f" (found {', '.join(found)}: give that folder instead)" if found else ""
        raise SubmissionError(
            f"{folder} has no {SUBMISSION_FILE} at its top level{where}; the ingestion program imports "
            f"{SUBMISSION_FILE} from the zip's root and calls {SUBMISSION_FUNCTION}({', '.join(ENTRY_ARGS)})"
        )
    warnings = _check_entry(entry)
    metadata = folder / METADATA_FILE
    if metadata.exists():
        _check_metadata(metadata)
    files = []
    total = 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if _skipped(rel) or path.is_dir():
            continue
        if path.is_symlink():
            warnings.append(f"{rel.as_posix()} is a symbolic link: its target's content is zipped")
        size = path.stat().st_size
        total += size
        if size > LARGE_FILE_BYTES:
            warnings.append(f"{rel.as_posix()} is {size / 2**20:.0f} MiB: large uploads are slow and may hit the "
                            "platform's size limit")
        files.append((rel.as_posix(), path))
    if total > LARGE_TOTAL_BYTES:
        warnings.append(f"the submission holds {total / 2**20:.0f} MiB in total")
    return files, not metadata.exists(), warnings


def default_zip_path(folder: str | Path, out_dir: str | Path = "dist") -> Path:
    name = Path(folder).resolve().name or "submission"
    return Path(out_dir) / f"{name}.zip"


def pack_submission(folder: str | Path, output: str | Path | None = None, *, out_dir: str | Path = "dist") -> PackedSubmission:
    """Check ``folder`` and write its zip (atomically) to ``output`` (default ``dist/<folder name>.zip``)."""
    files, needs_metadata, warnings = check_submission(folder)
    output = Path(output) if output is not None else default_zip_path(folder, out_dir)
    if output.resolve().is_relative_to(Path(folder).resolve()):
        raise SubmissionError(f"write the zip outside the submission folder (got {output})")
    entries = [(name, path.read_bytes()) for name, path in files]
    if needs_metadata:
        entries.append((METADATA_FILE, DEFAULT_METADATA.encode()))
    data = deterministic_zip(entries)
    write_bytes(output, data)
    return PackedSubmission(
        path=output,
        files=sorted(name for name, _ in entries),
        size_bytes=len(data),
        added_metadata=needs_metadata,
        warnings=warnings,
    )


def add_submission_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m unlearning_challenge submission``."""
    parser.add_argument("folder", help="the folder holding unlearning.py")
    parser.add_argument("--output", help="zip file to write (default: <out-dir>/<folder name>.zip)")
    parser.add_argument("--out-dir", default="dist", help="folder for the default zip name (default: %(default)s)")
    return parser


def run_submission(args: argparse.Namespace) -> int:
    """Check and zip the folder; a folder that cannot be submitted prints why and exits 1."""
    try:
        packed = pack_submission(args.folder, args.output, out_dir=args.out_dir)
    except SubmissionError as exc:
        print(f"make submission: error: {exc}", file=sys.stderr)
        return 1
    for warning in packed.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if packed.added_metadata:
        print("added a `metadata` file without a command (CodaLab runs ingestion only on uploads that have one)")
    print(f"wrote {packed.path} ({len(packed.files)} files, {packed.size_bytes / 1024:.0f} KiB): "
          + ", ".join(packed.files))
    print("upload it on the competition's 'Participate > Submit' page")
    return 0
