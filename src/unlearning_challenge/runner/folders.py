"""Each run's private folder, filled afresh, and the job that points into it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from unlearning_challenge.atomic import write_bytes
from unlearning_challenge.config import PhaseConfig
from unlearning_challenge.data import FaceDataset, Splits, save_dataset
from unlearning_challenge.runner.isolation import copy_submission
from unlearning_challenge.runner.job import Job, JobModel

WORKER_DATA = "data.npz"
WORKER_MODEL = "model.safetensors"
WORKER_SUBMISSION = "submission"
WORKER_OUTPUT = "out/unlearned.safetensors"


class RunFolders:
    """Each run's private folder under ``workspace``, and how its worker is told what to do.

    The original weights and the worker's data (retain, forget and val images;
    the test images are left out) are held in this process's memory and written
    afresh into every run's folder, with a copy of the submission: nothing a run
    does to its files reaches a later run.

    ``original``: the original model's file, or the K original models' files in order: run i
    starts from original i mod K, or from original ``start_from`` for every run when it is given.
    """

    def __init__(self, workspace: Path, config: PhaseConfig, submission: Path, device: str,
                 original: Path | Sequence[Path], dataset: FaceDataset, splits: Splits, *,
                 start_from: int | None = None):
        self.workspace, self.config, self.submission, self.device = workspace, config, submission, device
        originals = [original] if isinstance(original, (str, os.PathLike)) else list(original)
        if start_from is not None and not 0 <= start_from < len(originals):
            raise ValueError(f"original {start_from} does not exist: there are {len(originals)} (0 .. "
                             f"{len(originals) - 1})")
        self.num_originals, self.start_from = len(originals), start_from
        wanted = range(len(originals)) if start_from is None else [start_from]
        self.original_bytes = {k: Path(originals[k]).read_bytes() for k in wanted}
        data_path = workspace / "worker_data.npz"
        save_dataset(data_path, dataset, splits, only=("retain", "forget", "val"))
        self.data_bytes = data_path.read_bytes()
        data_path.unlink()
        os.chmod(workspace, 0o711)  # workers may enter their own run folder, not list the others

    def seed(self, index: int) -> int:
        return self.config.ingestion.seed_start + index

    def original_of(self, index: int) -> int | None:
        """The original run ``index`` starts from (0 .. K-1); None when there is one (K = 1)."""
        if self.num_originals == 1:
            return None
        return self.start_from if self.start_from is not None else index % self.num_originals

    def run_dir(self, index: int) -> Path:
        return self.workspace / f"run_{index:05d}"

    def prepare(self, index: int) -> Job:
        """Fill run ``index``'s folder (submission copy, original weights, data, job.json); return its job.

        The folder still belongs to this process: the session hands it to the worker's user.
        """
        run_dir = self.run_dir(index)
        for sub in ("out", "tmp"):
            (run_dir / sub).mkdir(parents=True)
        copy_submission(self.submission, run_dir / WORKER_SUBMISSION)
        # Not flushed to disk: the files are read by the run and deleted after it.
        write_bytes(run_dir / WORKER_MODEL, self.original_bytes[self.original_of(index) or 0], durable=False)
        write_bytes(run_dir / WORKER_DATA, self.data_bytes, durable=False)
        model = self.config.model
        job = Job(
            index=index,
            seed=self.seed(index),
            run_dir=str(run_dir),
            submission=str(run_dir / WORKER_SUBMISSION),
            dataset=str(run_dir / WORKER_DATA),
            model=str(run_dir / WORKER_MODEL),
            model_config=JobModel(arch=model.arch, num_classes=model.num_classes,
                                  checkpoint_dtype=model.checkpoint_dtype),
            output=str(run_dir / WORKER_OUTPUT),
            batch_size=self.config.ingestion.batch_size,
            device=self.device,
            sandbox=self.config.ingestion.filesystem_sandbox,
        )
        job.write()
        return job

    def remove(self, index: int) -> None:
        """Delete run ``index``'s folder (what the run left is read by then)."""
        shutil.rmtree(self.run_dir(index), ignore_errors=True)
