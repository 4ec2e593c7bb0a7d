"""One run's job: what the worker loads, runs and where it saves, written as JSON into the run folder.

The trusted side writes ``job.json`` before the worker starts; the worker reads it
back with :meth:`Job.read`, which checks every field (a job is never pickled).
Paths are absolute, inside the run's own folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearning_challenge.atomic import write_text
from unlearning_challenge.validation import Rules, from_mapping

JOB_FILE = "job.json"


class JobError(ValueError):
    """A job file that is not a valid job."""


# Every field is required and no other key is allowed (validation.py checks them by their type hints).
_RULES = Rules(JobError, mapping_name="an object")


@dataclass(frozen=True)
class JobModel:
    """The original model's architecture, as :class:`~unlearning_challenge.config.ModelConfig` names it."""

    arch: str
    num_classes: int
    checkpoint_dtype: str


@dataclass(frozen=True)
class Job:
    """Everything one worker needs; written to and read from ``<run_dir>/job.json``."""

    index: int  # the run's index, 0 .. N-1
    seed: int  # seeds torch, numpy and random before unlearning() is called
    run_dir: str  # the run's private folder (the worker's home, cwd and Landlock domain)
    submission: str  # the copy of the submission folder (holds unlearning.py)
    dataset: str  # npz with the retain, forget and val images (no test images)
    model: str  # safetensors: the original weights
    model_config: JobModel
    output: str  # where the worker saves the returned weights (safetensors)
    batch_size: int  # of the three loaders
    device: str  # torch device, e.g. "cpu" or "cuda"
    sandbox: bool  # confine the worker with Landlock (the phase's filesystem_sandbox)

    @property
    def file(self) -> Path:
        return Path(self.run_dir) / JOB_FILE

    def write(self) -> Path:
        """Write the job into its run folder; return the file's path."""
        write_text(self.file, json.dumps(asdict(self)), durable=False)  # read once by the worker
        return self.file

    @classmethod
    def read(cls, path: str | Path) -> "Job":
        """The job in ``path``; JobError names the field that is missing or of the wrong type."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise JobError(f"cannot read the job file {path}: {exc}") from None
        return from_mapping(cls, data, _RULES, f"job file {path}")

