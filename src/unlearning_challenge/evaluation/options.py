"""The ``evaluate`` command's options, checked before anything is imported or run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "ray")
WORK_FOLDER = "work"


class EvaluationError(ValueError):
    """The evaluation cannot start or go on as asked; the message says what to change."""


def submission_name(source: Path) -> str:
    """A folder's name, or a zip's name without ``.zip``: where its results are kept."""
    source = source.resolve()
    return source.stem if source.is_file() else source.name


@dataclass(frozen=True)
class EvaluationOptions:
    """What ``evaluate`` was asked (see ``unlearning-challenge evaluate --help``).

    ``work`` None: ``<output>/work``. ``ray_address`` None: ``RAY_ADDRESS``, else a local
    cluster started (and stopped) here. ``gpus_per_run`` / ``cpus_per_run`` / ``memory_per_run``: what each
    Ray run slot holds (GPUs only on a cluster with GPUs; on CPU the CPUs are its torch threads).
    """

    submissions: tuple[Path, ...]
    output: Path
    input_data: Path = Path("input_data")
    reference_data: Path = Path("reference_data")
    num_models: int | None = None
    work: Path | None = None
    backend: str = "local"
    ray_address: str | None = None
    gpus_per_run: float = 1.0
    cpus_per_run: int = 1
    memory_per_run: float | None = None  # GiB a run slot reserves (None: the phase's cap plus the slot's own)
    no_time_limit: bool = False
    participant_output: str | None = None

    @property
    def work_folder(self) -> Path:
        return self.work if self.work is not None else self.output / WORK_FOLDER

    def check(self) -> None:
        """Raise EvaluationError naming the first option that cannot work."""
        if not self.submissions:
            raise EvaluationError("give at least one submission (a folder holding unlearning.py, or its zip)")
        for path in self.submissions:
            if not path.exists():
                raise EvaluationError(f"submission {path} does not exist: give a folder holding unlearning.py, "
                                      "or its zip")
            if path.is_file() and path.suffix != ".zip":
                raise EvaluationError(f"submission {path} is neither a folder nor a .zip file")
            self.check_apart(path)
        self.check_names()
        if self.backend not in BACKENDS:
            raise EvaluationError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        for flag, folder in (("--input-data", self.input_data), ("--reference-data", self.reference_data)):
            if not folder.is_dir():
                raise EvaluationError(f"{flag} {folder} is not a folder (the phase's {flag[2:].replace('-', ' ')})")
        if self.num_models is not None and self.num_models < 2:
            raise EvaluationError(f"--num-models must be at least 2 to be scored, got {self.num_models}")
        self.check_resources()

    def check_apart(self, submission: Path) -> None:
        """A submission and the trusted folders (input and reference data, output and work folders) lie
        apart, neither inside the other, also through a symbolic link: each submission is copied into the
        work folder (a copy of a folder into itself never ends), and a run's files are never the trusted ones."""
        trusted = (("--input-data", self.input_data), ("--reference-data", self.reference_data),
                   ("--output", self.output), ("--work", self.work_folder))
        source = submission.resolve()
        for flag, folder in trusted:
            resolved = folder.resolve()
            link = f" (a link to {source})" if submission.is_symlink() else ""
            if resolved == source or (submission.is_dir() and resolved.is_relative_to(source)):
                raise EvaluationError(f"{flag} {folder} is inside submission {submission}{link}: choose a folder "
                                      "outside every submission")
            if source.is_relative_to(resolved):
                raise EvaluationError(f"submission {submission}{link} is inside {flag} {folder}: keep submissions "
                                      "out of the trusted folders")

    def check_names(self) -> None:
        """Two submissions of the same name would share one folder of the work and output folders."""
        seen: dict[str, Path] = {}
        for path in self.submissions:
            name = submission_name(path)
            if name in seen:
                raise EvaluationError(f"submissions {seen[name]} and {path} have the same name {name!r}: rename one "
                                      "(each submission's results are kept under its name)")
            seen[name] = path

    def check_resources(self) -> None:
        """Whole GPUs per run under a time limit: runs sharing a GPU slow each other down."""
        gpus = self.gpus_per_run
        if not gpus > 0:
            raise EvaluationError(f"--gpus-per-run must be positive, got {gpus:g}")
        whole = gpus >= 1 and gpus == math.floor(gpus)
        if not self.no_time_limit and not whole:
            raise EvaluationError(
                f"--gpus-per-run {gpus:g}: with a time limit each run holds whole GPUs (runs sharing a GPU slow "
                "each other down, and each is judged by its own time); give a whole number, or --no-time-limit "
                "to let runs share GPUs")
        if gpus > 1 and not whole:
            raise EvaluationError(f"--gpus-per-run must be a fraction in (0, 1] or a whole number, got {gpus:g}")
        if self.cpus_per_run < 1:
            raise EvaluationError(f"--cpus-per-run must be at least 1, got {self.cpus_per_run}")
        if self.memory_per_run is not None and not self.memory_per_run > 0:
            raise EvaluationError(f"--memory-per-run must be a positive number of GiB, got {self.memory_per_run:g}")
