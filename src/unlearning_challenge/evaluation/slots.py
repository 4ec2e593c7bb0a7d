"""A run slot: the long-lived Ray actor that runs submissions' runs on one node, paying its setup once.

A slot holds ``--cpus-per-run`` CPUs (and ``--gpus-per-run`` whole GPUs) and the memory a run may use
(:func:`slot_memory_bytes`). At start-up it loads the phase, takes its node's budget
(:func:`node_budget`: calibrated once per node, by the first slot there, and recorded in the work
folder), its own worker user (:func:`~unlearning_challenge.runner.isolation.slot_identity`: runs of two
slots on one node cannot signal, trace or read each other, and each clears only its own shared memory;
its workers import a copy of the package that user can read, :func:`readable_package`) and closes the
trusted folders to the workers. Then :meth:`RunSlot.run` runs batches of one
submission's indices in one :class:`~unlearning_challenge.evaluation.runs.SubmissionRuns` (one session,
fork server and workspace per submission, kept between batches), yielding each judged run as it ends.

Should the slot's process die (its node lost, Ray's memory monitor), its session's guardian kills its
runs and removes their folders (:mod:`~unlearning_challenge.runner.guardian`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import torch

import unlearning_challenge
from unlearning_challenge.atomic import write_json
from unlearning_challenge.evaluation.options import EvaluationError
from unlearning_challenge.evaluation.runs import Budget, Phase, SubmissionRuns
from unlearning_challenge.evaluation.work import content_sha256
from unlearning_challenge.judged import limits_for
from unlearning_challenge.runner.environment import import_package_from, worker_env
from unlearning_challenge.runner.isolation import close_to_workers, slot_identity

# The work folder's record of each node's calibration (one file per node, device and thread count).
CALIBRATION_FOLDER = "calibration"
# What a slot reserves in Ray's memory accounting besides the run's own cap: the slot's process (torch,
# the phase's data, the trusted evaluation) and the fork server.
SLOT_OVERHEAD_GIB = 2.0
# A slot's memory when the phase sets no cap on a run (ingestion.memory_limit_gib: 0) and none is given.
DEFAULT_RUN_MEMORY_GIB = 4.0


def slot_memory_bytes(memory_limit_gib: float, memory_per_run_gib: float | None) -> int:
    """What one slot asks of its node's memory: ``--memory-per-run`` when given, else the phase's cap on a
    run (``ingestion.memory_limit_gib``, or ``DEFAULT_RUN_MEMORY_GIB`` without one) plus the slot's own."""
    gib = memory_per_run_gib if memory_per_run_gib is not None else (
        (memory_limit_gib or DEFAULT_RUN_MEMORY_GIB) + SLOT_OVERHEAD_GIB)
    return int(gib * 2**30)


def readable_package() -> Path:
    """A copy of this package that every user can read (not write), in ``<tmp>/unlearning-package-<sha256>``,
    made once per node and version; the folder that holds it. Ray's copy of the package, which a slot runs,
    is readable by the trusted user only, and the workers of a slot that runs as its own user import it."""
    package = Path(unlearning_challenge.__file__).resolve().parent
    parent = Path(tempfile.gettempdir()) / f"unlearning-package-{content_sha256(package)[:16]}"
    if not (parent / package.name).is_dir():
        staging = Path(tempfile.mkdtemp(prefix="unlearning-package-staging-"))
        try:
            shutil.copytree(package, staging / package.name, ignore=shutil.ignore_patterns("__pycache__"))
            for root, dirs, files in os.walk(staging):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
            with contextlib.suppress(OSError):  # another slot of this node made it first
                os.rename(staging, parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return parent


def node_budget(phase: Phase, work_root: Path, node_id: str, device: torch.device, threads: int, *,
                no_time_limit: bool) -> Budget:
    """This node's per-run budget: calibrated by the first slot to ask (the others wait, so it times a
    quiet node), then read by every slot of the node from ``<work>/calibration/<node>-<device>-<threads>t.json``.
    Every run on one node is held to one budget, and the record stays with the evaluation."""
    folder = work_root / CALIBRATION_FOLDER
    folder.mkdir(exist_ok=True)
    name = f"{node_id}-{device.type}-{threads}t{'-no-limit' if no_time_limit else ''}"
    record = folder / f"{name}.json"
    with open(folder / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            budget = Budget.calibrate(phase, device, no_time_limit=no_time_limit)
            write_json(record, {"node": platform.node(), "ray_node_id": node_id, "device": device.type,
                                "threads": threads, "budget_seconds": budget.seconds, "timing": budget.timing})
        data = json.loads(record.read_text())
    seconds, timing = data["budget_seconds"], data["timing"]
    return Budget(seconds, timing, limits_for(phase.config, phase.manifest, seconds, timing))


class RunSlot:
    """One run slot (a Ray actor: ``ray.remote(RunSlot)``); see the module docstring.

    ``trusted``: folders closed to the workers for good (the driver restores their modes when the
    evaluation ends); ``work_root``: the evaluation's work folder (the calibration record goes there).
    """

    def __init__(self, slot: int, input_dir: str, work_root: str, device: str, threads: int, no_time_limit: bool,
                 trusted: Sequence[str]):
        import ray

        os.environ["OMP_NUM_THREADS"] = str(threads)  # the runs' workers inherit it
        torch.set_num_threads(threads)
        if not Path(input_dir).is_dir() or not Path(work_root).is_dir():
            raise EvaluationError(f"node {platform.node()} cannot read {input_dir} or {work_root}: every node must "
                                  "see the input data and the work folder at the same paths")
        self.slot, self.device = slot, torch.device(device)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.phase = Phase.load(Path(input_dir))
        self.budget = node_budget(self.phase, Path(work_root), self.node_id, self.device, threads,
                                  no_time_limit=no_time_limit)
        if os.geteuid() == 0:  # the slot's user must be able to import the package
            import_package_from(readable_package())
        self.identity = slot_identity(slot, worker_env(Path("/")))
        self.warnings = close_to_workers([Path(p) for p in trusted]) if self.identity[0].dropped else []
        self.context = {"ray_node_id": self.node_id, "slot": slot}
        self._open: tuple[str, SubmissionRuns] | None = None

    def ready(self) -> dict:
        """Where the slot is and what it holds: node, budget, worker user and warnings."""
        identity, warning = self.identity
        return {"slot": self.slot, "node": platform.node(), "ray_node_id": self.node_id, "pid": os.getpid(),
                "budget_seconds": self.budget.seconds, "speed_ratio": self.budget.timing.get("speed_ratio"),
                "worker_user": identity.name, "warnings": [w for w in (warning, *self.warnings) if w]}

    def run(self, folder: str, sha256: str, indices: Sequence[int]) -> Iterator[dict]:
        """Run ``indices`` of the submission in ``folder`` (its files' hash ``sha256``), yielding each judged
        run as ``{"run": RunResult JSON, "arrays": arrays or None}``, until one fails."""
        for result in self._runs(folder, sha256).runs(indices):
            yield {"run": result.to_json(), "arrays": result.arrays()}

    def _runs(self, folder: str, sha256: str) -> SubmissionRuns:
        """The open session of this submission (the previous one's closed)."""
        if self._open is not None and self._open[0] == folder:
            return self._open[1]
        self.close()
        if not Path(folder).is_dir() or content_sha256(Path(folder)) != sha256:
            raise EvaluationError(f"node {platform.node()} sees other files in {folder}, or none: every node must "
                                  "see the same work folder")
        runs = SubmissionRuns(self.phase, Path(folder), self.budget, device=self.device, trusted=None,
                              log=lambda _: None, identity=self.identity, context=self.context)
        runs.__enter__()
        self._open = (folder, runs)
        return runs

    def close(self) -> None:
        """End the open submission's session (its fork server, guardian and workspace)."""
        if self._open is not None:
            _, runs = self._open
            self._open = None
            runs.__exit__(None, None, None)
