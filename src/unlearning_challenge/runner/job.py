"""One run's job: what the worker loads, runs and where it saves, written as JSON into the run folder.

The trusted side writes ``job.json`` before the worker starts; the worker reads it
back with :meth:`Job.read`, which checks every field (a job is never pickled).
Paths are absolute, inside the run's own folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from unlearning_challenge.atomic import write_text

JOB_FILE = "job.json"


class JobError(ValueError):
    """A job file that is not a valid job."""


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
        if not isinstance(data, dict):
            raise JobError(f"job file {path}: expected a JSON object, got {type(data).__name__}")
        model = _checked(JobModel, data.get("model_config"), f"job file {path}: model_config")
        return _checked(cls, {**data, "model_config": model}, f"job file {path}")


def _checked(cls, data, where: str):
    """``cls(**data)`` once every field is present with the type the dataclass declares."""
    if not isinstance(data, dict):
        raise JobError(f"{where}: expected a JSON object, got {type(data).__name__}")
    types = {"int": int, "str": str, "bool": bool, "JobModel": JobModel}
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise JobError(f"{where}: unknown field(s) {unknown}")
    for f in fields(cls):
        if f.name not in data:
            raise JobError(f"{where}: missing field {f.name!r}")
        expected = types[f.type]
        value = data[f.name]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise JobError(f"{where}: field {f.name!r} must be {f.type}, got {type(value).__name__}")
    return cls(**data)
