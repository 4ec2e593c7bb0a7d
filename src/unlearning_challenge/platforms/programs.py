"""The ingestion and scoring program zips: a checked ``metadata`` command and the vendored package.

Each program zip holds its folder (``metadata``), the entry script its command
runs (rendered by :mod:`.entry_script`) and the package ``unlearning_challenge/``
vendored beside the script, so it runs on the competition image from the zip alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from unlearning_challenge.platforms.entry_script import ENTRY_SCRIPTS, entry_script
from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.platforms.zips import deterministic_zip, folder_files

__all__ = ["METADATA_KEYS", "check_metadata_command", "program_zip", "read_program_metadata"]

PACKAGE_NAME = "unlearning_challenge"

# Variables the platforms substitute in a program's `metadata` command
# (CodaLab: competitions-v1-compute-worker worker.py; Codabench:
# compute_worker/compute_worker.py replace_legacy_metadata_command). $hidden
# is left out of ingestion: Codabench never mounts the reference data there.
METADATA_VARIABLES = {
    "ingestion_program": frozenset({"$program", "$ingestion_program", "$submission_program",
                                    "$input", "$output", "$tmp", "$shared"}),
    "scoring_program": frozenset({"$program", "$input", "$output", "$tmp", "$shared"}),
}
# Keys a program `metadata` may hold: CodaLab's worker fetches any other key's
# value as a URL of another bundle.
METADATA_KEYS = frozenset({"command", "description"})
_SHELL_SYNTAX = re.compile(r"""['"`|&;<>()\\*?~{}]|\$\(""")


def check_metadata_command(command: str, program: str) -> list[str]:
    """Problems with a program's `metadata` command (empty list: none).

    ``program`` is ``"ingestion_program"`` or ``"scoring_program"``. CodaLab v1
    splits the command on single spaces and runs it without a shell; Codabench
    splits it with shlex, also without a shell; both replace ``$variables`` by
    plain text.
    """
    problems = []
    if not isinstance(command, str) or not command.strip():
        return ["the command is empty"]
    if command != command.strip() or "  " in command or "\t" in command or "\n" in command:
        problems.append("words must be separated by single spaces (CodaLab splits on ' ')")
    if _SHELL_SYNTAX.search(command):
        problems.append("it uses shell syntax (quotes, pipes, redirections, globs, $(...)): no shell runs it")
    words = command.split(" ")
    if "cd" in words or "&&" in command:
        problems.append("it changes directory or chains commands: no shell runs it")
    if "/app" in command:
        problems.append("it hard-codes /app paths: CodaLab runs with host paths; use $program, $input, ...")
    allowed = METADATA_VARIABLES.get(program, frozenset())
    for variable in re.findall(r"\$[A-Za-z_]+", command):
        if variable not in allowed:
            problems.append(f"{variable} is not substituted for the {program} on both platforms "
                            f"(use {sorted(allowed)})")
    return problems


def read_program_metadata(program_dir: Path, program: str) -> dict:
    """Read and check ``<program_dir>/metadata``; raise BundleError on any problem."""
    path = program_dir / "metadata"
    if not path.is_file():
        raise BundleError(f"{program_dir}: no file named `metadata` (the platforms read its `command:` line)")
    try:
        metadata = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(metadata, dict) or "command" not in metadata:
        raise BundleError(f"{path}: needs a `command:` line")
    unexpected = sorted(set(metadata) - METADATA_KEYS)
    if unexpected:
        raise BundleError(f"{path}: unexpected key(s) {unexpected} (CodaLab fetches them as bundle URLs); "
                          f"keep only {sorted(METADATA_KEYS)}")
    problems = check_metadata_command(metadata["command"], program)
    if problems:
        raise BundleError(f"{path}: command {metadata['command']!r}: " + "; ".join(problems))
    return metadata


def program_zip(program_dir: Path, package_dir: Path, program: str) -> bytes:
    """A program folder with its entry script written and the package vendored beside it.

    ``program``: ``"ingestion_program"`` or ``"scoring_program"`` (see ``ENTRY_SCRIPTS``).
    The folder holds ``metadata`` only; one that holds the entry script or the package
    itself is refused (the build writes both).
    """
    if not program_dir.is_dir():
        raise BundleError(f"program folder {program_dir} does not exist")
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"package folder {package_dir} not found (it is vendored into the program zips)")
    metadata = read_program_metadata(program_dir, program)
    script = ENTRY_SCRIPTS[program]
    if f"$program/{script.file_name}" not in metadata["command"].split(" "):
        raise BundleError(f"{program_dir / 'metadata'}: command {metadata['command']!r} does not run "
                          f"$program/{script.file_name}, the entry script the build writes into the zip")
    own = folder_files(program_dir)
    if any(name.split("/")[0] == PACKAGE_NAME for name, _ in own):
        raise BundleError(f"{program_dir} already holds {PACKAGE_NAME}/; remove it (the build vendors the package)")
    if any(name == script.file_name for name, _ in own):
        raise BundleError(f"{program_dir} already holds {script.file_name}; remove it (the build writes the entry "
                          "script from unlearning_challenge/platforms/entry_script.py)")
    vendored = folder_files(package_dir, prefix=PACKAGE_NAME + "/")
    files = [(name, path.read_bytes()) for name, path in own + vendored]
    return deterministic_zip([*files, (script.file_name, entry_script(script.module).encode("utf-8"))])
