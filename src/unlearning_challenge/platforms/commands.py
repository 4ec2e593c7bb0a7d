"""The argv a platform's worker runs for a program's ``metadata`` command.

Both workers replace ``$variables`` in the command by plain text, in a fixed
order, and run the result without a shell:

- Codabench (codalab/codabench compute_worker/compute_worker.py,
  ``replace_legacy_metadata_command``) gives the command string to the docker
  SDK, which splits it with ``shlex.split``. Its folders are under ``/app``.
- CodaLab v1 (codalab/competitions-v1-compute-worker worker.py) splits on
  single spaces (``split(' ')``): a doubled space is an empty argument. Its
  folders are under the run folder on the host.

:func:`metadata_argv` does the replacing and the splitting;
:func:`codabench_variables` and :func:`codalab_variables` give each worker's
variables, in its order, for one step.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml

__all__ = ["PLATFORMS", "codabench_variables", "codalab_variables", "metadata_argv", "metadata_command"]

PLATFORMS = ("codabench", "codalab")


def metadata_argv(command: str, variables: Mapping[str, str], platform: str) -> list[str]:
    """The argv ``platform`` runs for ``command``.

    Each key of ``variables`` (``"$input"``, ...) is replaced by its value, in
    the mapping's order, then the command is split as ``platform`` splits it
    (``"codabench"``: ``shlex.split``; ``"codalab"``: on single spaces).
    """
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    for variable, value in variables.items():
        command = command.replace(variable, value)
    return shlex.split(command) if platform == "codabench" else command.split(" ")


def codabench_variables(kind: str, is_scoring: bool) -> dict[str, str]:
    """Codabench's variables for a ``kind`` of container (``"ingestion"`` or ``"program"``).

    ``is_scoring`` is true in a scoring step (where ``$predictions`` is the
    ingestion's output, ``/app/input/res``), false in a prediction step.
    """
    return {
        "$input": "/app/input_data" if kind == "ingestion" else "/app/input",
        "$output": "/app/output",
        "$program": "/app/program",
        "$ingestion_program": "/app/program",
        "$hidden": "/app/input/ref",
        "$shared": "/app/shared",
        "$submission_program": "/app/ingested_program",
        "$tmp": "/app/output",
        "$predictions": "/app/input/res" if is_scoring else "/app/output",
    }


def codalab_variables(step: str, run_dir: str | Path, shared_dir: str | Path) -> dict[str, str]:
    """CodaLab v1's variables for a ``step`` (``"ingestion"`` or ``"scoring"``) run in ``run_dir``.

    ``shared_dir`` is the worker's temporary folder for ``$shared``. The worker
    also replaces ``$hidden`` in the ingestion step, by the reference data's
    hidden folder (or by nothing): it is left out here, as no program may use it.
    """
    run = str(run_dir)
    variables = {"$program": f"{run}/ingestion_program" if step == "ingestion" else f"{run}/program"}
    if step == "ingestion":
        variables |= {"$ingestion_program": f"{run}/ingestion_program", "$submission_program": f"{run}/program"}
    return variables | {
        "$predictions": f"{run}/input/res",
        "$input": f"{run}/input",
        "$output": f"{run}/output",
        "$tmp": f"{run}/temp",
        "$shared": str(shared_dir),
    }


def metadata_command(program_dir: Path) -> str:
    """The ``command`` of ``<program_dir>/metadata``."""
    return yaml.safe_load((program_dir / "metadata").read_text())["command"]
