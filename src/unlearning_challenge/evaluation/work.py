"""The work folder of ``evaluate``: what was asked, a copy of each submission, and each finished run.

Layout (every file written atomically; a run is done once its ``.json`` exists)::

    <work>/evaluation.json                 the input data's fingerprints and whether time was limited
    <work>/<name>/submission.json          the submission's source and content hash
    <work>/<name>/submission/              its files (a zip unpacked), what every run copies
    <work>/<name>/runs/run_00000.npz       the trusted evaluation's arrays (ok runs only)
    <work>/<name>/runs/run_00000.json      the run's record and where and how it ran

A rerun reads what is there and runs only what is missing; a work folder made
from other input data, or a submission whose content changed, is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearning_challenge.artifacts import InputManifest, RunRecord
from unlearning_challenge.atomic import write_json, write_npz
from unlearning_challenge.evaluation.options import EvaluationError, submission_name
from unlearning_challenge.reference.evaluation import ModelOutputs

WORK_FORMAT = "unlearning-evaluation-work"
SKIPPED = ("__pycache__", "*.pyc", "*.pyo")


@dataclass(frozen=True)
class Submission:
    """One submission: its ``name`` (unique), where it came from, its copy in the work folder and
    the sha256 of its files."""

    name: str
    source: Path
    folder: Path
    sha256: str


def content_sha256(folder: Path) -> str:
    """sha256 of the files under ``folder`` (their relative paths and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def unpack(source: Path, destination: Path) -> None:
    """``source``'s files into the new folder ``destination``: a folder copied (caches left out), a zip
    extracted as the platforms' workers extract a submission (``ZipFile.extractall``)."""
    if source.is_file():
        destination.mkdir(parents=True)
        try:
            with zipfile.ZipFile(source) as archive:
                archive.extractall(destination)
        except zipfile.BadZipFile as exc:
            raise EvaluationError(f"submission {source} is not a readable zip file: {exc}") from None
    else:
        shutil.copytree(source, destination, symlinks=False, ignore=shutil.ignore_patterns(*SKIPPED))


@dataclass(frozen=True)
class RunResult:
    """One finished run as the trusted side saw it: its ``record``, ``context`` (where and how it ran:
    budget, timing, device, worker_user, isolation_warning, worker_start, node) and, when ok, the
    trusted evaluation's ``output``."""

    record: RunRecord
    context: dict[str, Any] = field(default_factory=dict)
    output: ModelOutputs | None = None

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record.to_json(), "context": self.context}

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The outputs as arrays (accuracies as 0-d float64), None when the run failed."""
        if self.output is None:
            return None
        return {key: np.asarray(value) for key, value in vars(self.output).items() if value is not None}

    @classmethod
    def of(cls, data: dict[str, Any], arrays: dict[str, np.ndarray] | None, *, where: str) -> "RunResult":
        """The result from :meth:`to_json` and :meth:`arrays` (validated: it may come from another node)."""
        record = RunRecord.from_json(data["record"], where=where)
        output = None
        if arrays is not None:
            output = ModelOutputs(**{key: float(value) if np.ndim(value) == 0 else np.asarray(value)
                                     for key, value in arrays.items()})
        if record.ok != (output is not None):
            raise EvaluationError(f"{where}: run {record.index} is {record.status} but its arrays are "
                                  f"{'missing' if output is None else 'present'}")
        return cls(record, dict(data.get("context") or {}), output)


class EvaluationWork:
    """The work folder at ``root`` (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def info(self) -> Path:
        return self.root / "evaluation.json"

    def runs_dir(self, name: str) -> Path:
        return self.root / name / "runs"

    def run_json(self, name: str, index: int) -> Path:
        return self.runs_dir(name) / f"run_{index:05d}.json"

    def run_arrays(self, name: str, index: int) -> Path:
        return self.runs_dir(name) / f"run_{index:05d}.npz"

    def claim(self, manifest: InputManifest, *, time_limit: bool) -> None:
        """Record what the runs are made on, or refuse a work folder made on other data or time rules."""
        expected = {"format": WORK_FORMAT, "phase": manifest.phase, "config_fingerprint": manifest.config_fingerprint,
                    "split_fingerprint": manifest.split_fingerprint, "time_limit": time_limit}
        if self.info.is_file():
            found = json.loads(self.info.read_text())
            differ = sorted(key for key in expected if found.get(key) != expected[key])
            if differ:
                raise EvaluationError(
                    f"work folder {self.root} holds runs made with another {', '.join(differ)} (phase "
                    f"{found.get('phase')!r}, time limit {found.get('time_limit')}): give another --work, or delete "
                    "it to start again")
            return
        write_json(self.info, expected)

    def add(self, source: Path) -> Submission:
        """The submission's copy in the work folder (made now, or checked to hold the same files)."""
        name = submission_name(source)
        folder = self.root / name / "submission"
        info = self.root / name / "submission.json"
        (self.root / name).mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root / name))
        try:
            unpack(source, scratch / "files")
            sha = content_sha256(scratch / "files")
            if info.is_file():
                found = json.loads(info.read_text())
                if found["sha256"] != sha:
                    raise EvaluationError(
                        f"{source}: its files differ from those of {found['source']} whose runs are in "
                        f"{self.root / name} (sha256 {sha[:12]}... vs {found['sha256'][:12]}...): delete that folder "
                        "to run this version, or rename the submission")
                if not folder.is_dir():
                    raise EvaluationError(f"{folder} is missing: delete {self.root / name} and run again")
            else:
                shutil.rmtree(folder, ignore_errors=True)
                (scratch / "files").rename(folder)
                write_json(info, {"source": str(source), "sha256": sha})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Submission(name, source, folder, sha)

    def save(self, name: str, result: RunResult) -> None:
        """Keep a finished run: its arrays first, then its record (the record marks it done)."""
        index = result.record.index
        arrays = result.arrays()
        if arrays is not None:
            write_npz(self.run_arrays(name, index), arrays)
        write_json(self.run_json(name, index), result.to_json())

    def load(self, name: str) -> dict[int, RunResult]:
        """The finished runs of submission ``name``, by index."""
        results = {}
        for path in sorted(self.runs_dir(name).glob("run_*.json")):
            data = json.loads(path.read_text())
            arrays_path = path.with_suffix(".npz")
            arrays = None
            if RunRecord.from_json(data["record"], where=str(path)).ok:
                with np.load(arrays_path, allow_pickle=False) as stored:
                    arrays = {key: stored[key] for key in stored.files}
            result = RunResult.of(data, arrays, where=str(path))
            results[result.record.index] = result
        return results


def runs_end(results: dict[int, RunResult], num_models: int) -> int:
    """How many runs an ingestion output of ``results`` holds: up to the first failed one, else ``num_models``."""
    failed = [index for index, result in results.items() if not result.record.ok and index < num_models]
    return min(failed) + 1 if failed else num_models


def to_run(results: dict[int, RunResult], num_models: int) -> list[int]:
    """The indices still to run: the missing ones of ``range(num_models)``, or below the first failed run."""
    return [index for index in range(runs_end(results, num_models)) if index not in results]
