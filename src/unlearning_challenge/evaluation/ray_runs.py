"""The Ray backend: one long-lived actor per run slot (:mod:`~unlearning_challenge.evaluation.slots`),
fed batches of one submission's runs by this driver.

As many slots as the cluster's nodes hold (a slot is ``--cpus-per-run`` CPUs, ``--gpus-per-run`` whole
GPUs and its memory, :func:`~unlearning_challenge.evaluation.slots.slot_memory_bytes`), at most one per
run to do. Each slot pays its setup once (phase, calibration, worker user); each run streams back as it
ends and is saved here. A slot that is idle takes the next batch, of the submission it already has open
when there is one. A submission's first failed run drops its batches not yet started.

A slot lost with its process or node restarts (on a surviving node when its own is gone); the runs its
batch had not finished are queued again, each redone at most ``MAX_REDOS`` times, counted and reported. A
slot killed by Ray's memory monitor fails the run it held as ``out_of_memory`` (not redone). Ctrl-C (and
SIGTERM) kills every slot (their runs die with them) and stops a cluster started here. The modes of the
trusted folders, which the slots close to their workers, are restored when the evaluation ends.

Every node must see the input data and the work folder (the submissions' copies) at the same paths.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from unlearning_challenge.artifacts import RunRecord, RunStatus
from unlearning_challenge.evaluation.options import EvaluationOptions
from unlearning_challenge.evaluation.runs import Phase, Progress
from unlearning_challenge.evaluation.slots import RunSlot, slot_memory_bytes
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, Submission
from unlearning_challenge.failures import Failure
from unlearning_challenge.reference.calibration import OMP_WAIT_POLICY
from unlearning_challenge.reference.ray_tasks import _ANSI, RaySettings, ray_cluster
from unlearning_challenge.runner.isolation import folder_modes

# Times a run lost with its slot (its process or node gone, not the run's own doing) is run again.
MAX_REDOS = 1
# Times a slot is restarted after its process died.
MAX_SLOT_RESTARTS = 4
# Largest batch of one submission's runs given to a slot at once.
MAX_BATCH = 8
# Seconds the slots get to close their sessions when the runs are done.
CLOSE_WAIT_SECONDS = 30
# Seconds between asking a restarting slot whether it is back.
RESTART_POLL_SECONDS = 0.5


def ray_settings(options: EvaluationOptions) -> RaySettings:
    """``--ray-address``, else ``RAY_ADDRESS``, else a new local cluster (never one found on this machine)."""
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or "local"
    return RaySettings(address=address, gpus_per_model=options.gpus_per_run, cpus_per_model=options.cpus_per_run)


def slot_count(request: dict[str, float], nodes: Sequence[dict[str, float]], runs: int) -> int:
    """Slots the nodes hold side by side (each node: as many ``request``s as fit), at most ``runs``, at least 1."""
    fit = sum(min(math.floor(node.get(k, 0) / v + 1e-9) for k, v in request.items() if v > 0) for node in nodes)
    return max(1, min(runs, fit))


@dataclass
class Batch:
    """Consecutive runs of one submission given to a slot."""

    submission: Submission
    indices: list[int]


@dataclass
class Slot:
    """The driver's view of one slot: its actor, its batch in flight (with the runs not yet back)."""

    number: int
    actor: object
    restarts: int = 0
    open_submission: str | None = None
    batch: Batch | None = None
    stream: object | None = None  # the batch's ObjectRefGenerator
    waking: object | None = None  # the ready() call of a slot starting or restarting
    info: dict = field(default_factory=dict)


def run_ray(phase: Phase, jobs: Sequence[tuple[Submission, list[int]]], work: EvaluationWork, *,
            options: EvaluationOptions, trusted: Sequence[Path], log: Callable[[str], None]) -> list[str]:
    """Every job's runs on the cluster's slots, each finished run saved as it arrives. Returns the problems
    (runs lost with their slot more than ``MAX_REDOS`` times, or left when no slot could run them)."""
    todo = sum(len(indices) for _, indices in jobs)
    trusted = [Path(p).resolve() for p in trusted]
    memory = slot_memory_bytes(phase.config.ingestion.memory_limit_gib, options.memory_per_run)
    with ray_cluster(ray_settings(options), log, unit="run") as cluster, folder_modes(trusted):
        import ray

        request = {**cluster.request, "memory": memory}
        count = slot_count(request, [node["Resources"] for node in ray.nodes() if node["Alive"]], todo)
        actor = ray.remote(
            num_cpus=cluster.request["CPU"], num_gpus=cluster.request.get("GPU", 0), memory=memory,
            max_restarts=MAX_SLOT_RESTARTS, max_task_retries=0,
            runtime_env={"env_vars": {"OMP_WAIT_POLICY": OMP_WAIT_POLICY}})(RunSlot)
        threads = max(1, int(options.cpus_per_run))
        args = (str(phase.input_dir.resolve()), str(work.root.resolve()), cluster.device.type, threads,
                options.no_time_limit, [str(p) for p in trusted])
        slots = [Slot(n, actor.options(name=f"run slot {n}").remote(n, *args)) for n in range(count)]
        log(f"ray: {count} run slot(s) of {memory / 2**30:g} GiB memory each; {todo} run(s)")
        return Driver(ray, slots, jobs, work, log, device=cluster.device.type,
                      seed_start=phase.config.ingestion.seed_start).run()


class Driver:
    """Feeds the slots batches and saves the runs they stream back (see the module docstring)."""

    def __init__(self, ray, slots: list[Slot], jobs: Sequence[tuple[Submission, list[int]]], work: EvaluationWork,
                 log: Callable[[str], None], *, device: str, seed_start: int):
        self.ray, self.slots, self.work, self.log, self.device = ray, slots, work, log, device
        self.seed_start = seed_start  # run i's seed is seed_start + i
        self.started = list(slots)  # every slot, also those given up
        self.queue: deque[Batch] = deque()
        for submission, indices in jobs:
            size = max(1, min(MAX_BATCH, math.ceil(len(indices) / len(slots))))
            self.queue.extend(Batch(submission, indices[i:i + size]) for i in range(0, len(indices), size))
        self.failed: set[str] = set()  # submissions with a failed run
        self.redone: Counter = Counter()  # (submission, index) -> times redone
        self.problems: list[str] = []
        self.nodes: dict[str, dict] = {}
        self.lost_for_memory = 0  # slots killed for memory before they held a run
        self.progress = Progress(sum(len(b.indices) for b in self.queue), "ray")
        for slot in slots:
            slot.waking = slot.actor.ready.remote()

    def run(self) -> list[str]:
        try:
            while self.queue or any(slot.stream is not None for slot in self.slots):
                self._dispatch()
                waits = {slot.stream or slot.waking: slot for slot in self.slots if slot.stream or slot.waking}
                if not waits:
                    self._give_up("no run slot is left to run them" + (
                        f" ({self.lost_for_memory} killed for memory)" if self.lost_for_memory else ""))
                    break
                (ready,), _ = self.ray.wait(list(waits), num_returns=1)
                slot = waits[ready]
                if slot.stream is not None:
                    self._receive(slot)
                else:
                    self._woken(slot)
        except KeyboardInterrupt:
            self.progress.close()
            self.log(f"interrupted: stopping {len(self.slots)} run slot(s); the finished runs stay in {self.work.root}")
            self._kill_slots()  # their runs' guardians kill what the runs hold and remove their folders
            raise
        self.progress.close()
        self.log(self.progress.summary())
        self._close_slots()
        if self.redone:
            self.log(f"ray: {sum(self.redone.values())} run(s) redone after their slot was lost")
        return self.problems

    def _close_slots(self) -> None:
        """End every slot's session (its fork server, guardian and workspace), then the slots."""
        closing = [slot.actor.close.remote() for slot in self.slots if slot.info]
        self.ray.wait(closing, num_returns=len(closing), timeout=CLOSE_WAIT_SECONDS)
        self._kill_slots()

    def _kill_slots(self) -> None:
        for slot in self.started:
            self.ray.kill(slot.actor, no_restart=True)

    def _dispatch(self) -> None:
        """Give each idle, started slot a batch: of the submission it has open, else the next."""
        for slot in self.slots:
            if slot.stream is not None or slot.waking is not None or not slot.info or not self.queue:
                continue
            batch = next((b for b in self.queue if b.submission.name == slot.open_submission), self.queue[0])
            self.queue.remove(batch)
            slot.batch, slot.open_submission = batch, batch.submission.name
            slot.stream = slot.actor.run.remote(str(batch.submission.folder.resolve()), batch.submission.sha256,
                                                batch.indices)

    def _woken(self, slot: Slot) -> None:
        """A slot's ready() answered: it is idle now, or gone for good."""
        waking, slot.waking = slot.waking, None
        try:
            info = self.ray.get(waking)
        except self.ray.exceptions.ActorUnavailableError:  # restarting: ask again once it is back
            time.sleep(RESTART_POLL_SECONDS)
            slot.waking = slot.actor.ready.remote()
            return
        except self.ray.exceptions.RayError as exc:
            if _out_of_memory(self.ray, exc):  # Ray's own text is a page of advice for Ray's users
                self.log(f"run slot {slot.number} is gone: killed for memory before it held a run (its node ran "
                         f"low); give each slot more with --memory-per-run, so that fewer share a node")
                self.lost_for_memory += 1
            else:
                self.log(f"run slot {slot.number} is gone: {_ANSI.sub('', str(exc)).strip().splitlines()[-1]}")
            self.slots.remove(slot)
            return
        slot.info = info
        node = self.nodes.setdefault(info["ray_node_id"], info)
        if node is info:
            budget = "no time limit" if info["budget_seconds"] is None else f"budget {info['budget_seconds']:.1f} s"
            self.log(f"ray: node {info['node']} ({info['ray_node_id'][:12]}): {budget}, runs as "
                     f"{info['worker_user']}" + "".join(f"\nwarning: {text}" for text in info["warnings"]))

    def _receive(self, slot: Slot) -> None:
        """The next run of a slot's batch (saved), the batch's end, or the slot's loss."""
        batch = slot.batch
        try:
            value = self.ray.get(next(slot.stream))
        except StopIteration:
            self._batch_over(slot, batch.indices)  # a run failed: the batch stopped there
            return
        except self.ray.exceptions.RayError as exc:
            self._slot_lost(slot, exc)
            return
        where = f"{batch.submission.name} run {batch.indices[0]} (ray)"
        result = RunResult.of(value["run"], value["arrays"], where=where)
        self.work.save(batch.submission.name, result)
        self.progress.done(batch.submission.name, result)
        batch.indices.remove(result.record.index)
        if not result.record.ok:
            self._submission_failed(batch.submission, result.record.index)
        if not batch.indices:
            self._batch_over(slot, [])

    def _batch_over(self, slot: Slot, unfinished: list[int]) -> None:
        slot.batch = slot.stream = None
        self.progress.skip(len(unfinished))

    def _submission_failed(self, submission: Submission, index: int) -> None:
        """Drop the submission's batches not started (the ingestion stops at a failed run)."""
        self.failed.add(submission.name)
        dropped = [b for b in self.queue if b.submission.name == submission.name]
        for batch in dropped:
            self.queue.remove(batch)
        self.progress.skip(sum(len(b.indices) for b in dropped))

    def _slot_lost(self, slot: Slot, exc: Exception) -> None:
        """The slot's process died during a batch: the run it held fails as out of memory when Ray's memory
        monitor killed it, else is queued again (with the rest of the batch) unless redone ``MAX_REDOS``
        times; the slot restarts (Ray's ``max_restarts``)."""
        batch, slot.batch, slot.stream = slot.batch, None, None
        reason = _ANSI.sub("", str(exc)).strip()
        name, held = batch.submission.name, batch.indices[0]
        slot.restarts += 1
        if _out_of_memory(self.ray, exc):
            self.log(f"{name} run {held}: its slot was killed for memory; the run fails as out of memory")
            record = RunRecord(index=held, seed=self.seed_start + held, status=RunStatus.CRASHED,
                               failure=Failure.OUT_OF_MEMORY, message=Failure.OUT_OF_MEMORY.sentence)
            where = {key: slot.info.get(key) for key in ("node", "ray_node_id", "slot")}
            result = RunResult(record, {"budget": slot.info.get("budget_seconds"), "device": self.device, **where})
            self.work.save(name, result)
            self.progress.done(name, result)
            self._submission_failed(batch.submission, held)
            batch.indices.remove(held)
        elif self.redone[(name, held)] >= MAX_REDOS:
            rest = f"; its batch's runs {', '.join(map(str, batch.indices[1:]))} not run" if batch.indices[1:] else ""
            self.problems.append(f"{name} run {held}: lost with its run slot {1 + MAX_REDOS} times "
                                 f"(last: {reason.splitlines()[-1] if reason else type(exc).__name__}){rest}")
            self.progress.skip(len(batch.indices))
            batch.indices.clear()
        else:
            self.log(f"{name} run {held}: lost with run slot {slot.number} ({type(exc).__name__}); it is redone")
            self.redone[(name, held)] += 1
        if batch.indices and name not in self.failed:
            self.queue.appendleft(batch)
        elif batch.indices:
            self.progress.skip(len(batch.indices))
        slot.open_submission, slot.info = None, {}
        if slot.restarts > MAX_SLOT_RESTARTS:
            self.slots.remove(slot)
        else:
            slot.waking = slot.actor.ready.remote()

    def _give_up(self, why: str) -> None:
        for batch in self.queue:
            self.problems.append(f"{batch.submission.name} runs {', '.join(map(str, batch.indices))}: {why}")
        self.queue.clear()


def _out_of_memory(ray, exc: Exception) -> bool:
    """Whether Ray's memory monitor (or the kernel's OOM killer, as Ray saw it) ended the slot."""
    if isinstance(exc, getattr(ray.exceptions, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "memory monitor" in text or "outofmemory" in text
