"""The platforms' substitution of ``$variables`` in a program's ``metadata`` command, and its split into argv."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml


def codabench_argv(command: str, kind: str, is_scoring: bool) -> list[str]:
    """compute_worker.py's replace_legacy_metadata_command, then the SDK's shlex split of a string command."""
    replacements = [
        ("$input", "/app/input_data" if kind == "ingestion" else "/app/input"), ("$output", "/app/output"),
        ("$program", "/app/program"), ("$ingestion_program", "/app/program"), ("$hidden", "/app/input/ref"),
        ("$shared", "/app/shared"), ("$submission_program", "/app/ingested_program"), ("$tmp", "/app/output"),
        ("$predictions", "/app/input/res" if is_scoring else "/app/output"),
    ]
    for variable, value in replacements:
        command = command.replace(variable, value)
    return shlex.split(command)


def codalab_argv(command: str, step: str, run_dir: Path, shared_dir: Path) -> list[str]:
    """worker.py: plain replaces in its order, then ``split(' ')``."""
    run = str(run_dir)
    program = f"{run}/ingestion_program" if step == "ingestion" else f"{run}/program"
    replacements = [("$program", program)]
    if step == "ingestion":
        replacements += [("$ingestion_program", f"{run}/ingestion_program"), ("$submission_program", f"{run}/program")]
    replacements += [("$predictions", f"{run}/input/res"), ("$input", f"{run}/input"), ("$output", f"{run}/output"),
                     ("$tmp", f"{run}/temp"), ("$shared", str(shared_dir))]
    for variable, value in replacements:
        command = command.replace(variable, value)
    return command.split(" ")


def metadata_command(program_dir: Path) -> str:
    return yaml.safe_load((program_dir / "metadata").read_text())["command"]
