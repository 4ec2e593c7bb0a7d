"""Runs untrusted participant code in worker processes, measured and bounded by the trusted side.

A :class:`RunSession` is what one ingestion holds while it runs a submission: this
process as a child subreaper, the fork server, the worker's identity, the
/dev/shm baseline. ``run(job)`` starts a fresh worker for the job (or takes the one
``start(job)`` started ahead), tells it to go, waits for its last message or a
hard limit, then kills the worker's whole process group and any process the
worker left behind (orphans are reparented to this process, a child subreaper)
and clears what it left in /dev/shm; the returned :class:`RunRecord` says what
happened. The session does not look at the weights a run left: evaluating them
is the caller's (:func:`unlearning_challenge.reference.evaluation.evaluate_saved_model`).

This is a process boundary, not a sandbox: see the README's security section
for what is and is not protected.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from unlearning_challenge.artifacts import RunRecord
from unlearning_challenge.runner.environment import worker_env
from unlearning_challenge.runner.forkserver import ForkServer, ForkServerError, take_early
from unlearning_challenge.runner.guardian import Guardian
from unlearning_challenge.runner.handle import Worker, WorkerSpec
from unlearning_challenge.runner.isolation import (
    WorkerCaps,
    WorkerIdentity,
    give_to_worker,
    keep_out_of_proc,
    worker_identity,
)
from unlearning_challenge.runner.job import Job
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.outcome import STEP_LIMIT, conclude
from unlearning_challenge.runner.protocol import Event
from unlearning_challenge.runner.reaping import (
    become_subreaper,
    kill_leftovers,
    own_children,
    reaped_children_cpu_seconds,
)
from unlearning_challenge.runner.shared_memory import clear_shared_memory, shared_memory_entries


class RunSession:
    """Runs jobs one at a time in fresh workers, bounded by ``limits``; a context manager.

    The worker's identity is chosen at construction (``identity``, and ``isolation_warning`` when it
    could not be dropped), unless given (``identity``: the user and its warning); entering makes this process
    non-dumpable (runs cannot reach its descriptors through /proc), a child subreaper, starts the guardian
    (:mod:`~unlearning_challenge.runner.guardian`: should this process die, it kills what the runs hold
    and removes the folders given to :meth:`guard`) and the fork server when ``fork_server`` is asked for;
    :meth:`stop_runs` (also on exit) kills whatever the runs left; exit closes the
    fork server and the guardian. ``caps``: what each run may hold; ``preload``: the participant libraries the
    fork server imports (:func:`~unlearning_challenge.runner.forkserver.participant_preload`).
    """

    def __init__(self, limits: RunLimits, *, fork_server: bool, caps: WorkerCaps, preload: tuple[str, ...] = (),
                 log=print, identity: tuple[WorkerIdentity, str] | None = None):
        self.limits, self.caps, self.log = limits, caps, log
        self.want_fork_server, self.preload = fork_server, preload
        self.identity, self.isolation_warning = identity or worker_identity(worker_env(Path("/")))
        self.fork_server: ForkServer | None = None  # None once it failed: workers then start a new Python
        self.fork_server_failure = ""
        self._started_fork_server: ForkServer | None = None  # closed on exit, even after it failed
        self.guardian: Guardian | None = None  # None off Linux
        # This process's children before any run (the fork server joins them): never leftovers.
        self.own_processes: set[int] = set()
        self.shared_memory_before: set[str] = set()
        # The worker started and not yet stopped, with its job.
        self._current: tuple[Job, Worker] | None = None

    def __enter__(self) -> "RunSession":
        keep_out_of_proc()
        subreaper = become_subreaper()
        early = take_early(worker_env(Path("/")), self.preload)  # started by this program before its imports
        self.own_processes = own_children()
        if sys.platform.startswith("linux"):  # before any worker
            self.guardian = Guardian(spared=self.own_processes - {early.pid} if early else set(self.own_processes))
            self.own_processes.add(self.guardian.pid)
        try:
            self.fork_server = self._started_fork_server = self._start_fork_server(subreaper, early)
            if self.fork_server is not None:
                self.own_processes.add(self.fork_server.pid)
                if self.guardian is not None:
                    self.guardian.server(self.fork_server.pid)
                    self.guardian.folder(self.fork_server.matplotlib_dir)
        except BaseException:
            self._close_guardian()
            raise
        self.shared_memory_before = shared_memory_entries()
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.stop_runs()
        finally:
            try:
                if self._started_fork_server is not None:
                    self._started_fork_server.close()
            finally:
                self._close_guardian()

    def _close_guardian(self) -> None:
        if self.guardian is not None:
            self.guardian.close()
            self.guardian = None

    def guard(self, folder: Path) -> None:
        """Have ``folder`` (the runs' workspace) removed should this process die during the session."""
        if self.guardian is not None:
            self.guardian.folder(folder)

    def _start_fork_server(self, subreaper: bool, early: ForkServer | None) -> ForkServer | None:
        """The fork server workers start from (``early`` when one was started before this session), or None
        (each worker then starts a new Python).

        Forked workers are reparented to this process, so it must be a child subreaper.
        """
        if not self.want_fork_server or not subreaper:
            if early is not None:
                early.close()
            if self.want_fork_server:
                self.log("warning: this process cannot be a child subreaper (Linux only): each worker starts a new "
                         "Python")
            return None
        return early or ForkServer(worker_env(Path("/")), preload=self.preload)

    @property
    def worker_start(self) -> str:
        """How workers were started, for the ingestion manifest."""
        if self.fork_server is not None:
            return "forked from a server with torch imported"
        if self.fork_server_failure:
            return f"new Python process per run ({self.fork_server_failure})"
        return "new Python process per run"

    def start(self, job: Job) -> Worker:
        """Start the worker for ``job`` now (it loads its data while the caller does other work)."""
        run_dir = Path(job.run_dir)
        give_to_worker(run_dir, self.identity)
        spec = WorkerSpec(job.file, run_dir, worker_env(run_dir), self.caps, self.identity)
        if self._current is not None:
            self._stop_current()
        worker = None
        if self.fork_server is not None:
            try:
                worker = Worker(spec, self.fork_server)
            except ForkServerError as exc:
                self.fork_server_failure = str(exc)
                self.fork_server = None
        if worker is None:
            worker = Worker(spec)
        if self.guardian is not None:
            self.guardian.worker(worker.process.pid)
        self._current = (job, worker)
        return worker

    def run(self, job: Job, *, step_wall_limit: float | None = None) -> RunRecord:
        """Run ``job`` in its worker (started now unless :meth:`start` did), stop it, clean up; its record.

        ``step_wall_limit``: wall seconds left to the run by the step's deadline; when below the hard wall
        limit, the run is stopped there and recorded as ``stopped`` (see deadline.py)."""
        worker = self._current[1] if self._current is not None and self._current[0] == job else self.start(job)
        ready = worker.wait_ready(exclude=self.own_processes)
        record = RunRecord(index=job.index, seed=job.seed, process_cap=self._process_cap_text(worker, ready))
        if ready.get("event") != Event.READY.value:
            exit_code, record = self._stop(record, worker)
            return conclude(record, ready, "", self.limits, exit_code)
        confinement = (ready.get("confinement") or "landlock", str(ready.get("network") or ""))
        record = self._go(replace(record, confinement="; ".join(text for text in confinement if text)), worker,
                          step_wall_limit)
        clear_shared_memory(self.shared_memory_before, self.identity.uid)
        return record

    def _go(self, record: RunRecord, worker: Worker, step_wall_limit: float | None = None) -> RunRecord:
        """Let a ready worker run, then stop it; ``record`` with its wall and CPU seconds and outcome.

        The CPU seconds are what this process reaps while the run's processes end
        (the worker and every leftover are reaped here, a subreaper), less the
        worker's own setup before ``go``.
        """
        reaped_before = reaped_children_cpu_seconds()
        step_bound = step_wall_limit is not None and step_wall_limit < self.limits.wall_limit
        if self.guardian is not None:
            self.guardian.go(worker.process.pid, self.limits.wall_limit)
        end = worker.go(max(0.0, step_wall_limit) if step_bound else self.limits.wall_limit, self.limits.cpu_limit)
        timed_out = STEP_LIMIT if step_bound and end.timed_out == "wall" else end.timed_out
        exit_code, record = self._stop(replace(record, seconds=end.seconds), worker)
        extra = dict(record.extra)
        if worker.supervisor is not None and worker.supervisor.refused:
            extra["refused_process_creations"] = worker.supervisor.refused
        cpu_seconds = max(0.0, reaped_children_cpu_seconds() - reaped_before - end.cpu_at_go)
        record = replace(record, extra=extra, cpu_seconds=cpu_seconds)
        return conclude(record, end.message, timed_out, self.limits, exit_code)

    def _stop(self, record: RunRecord, worker: Worker) -> tuple[int | None, RunRecord]:
        """Kill the worker and whatever it left running. Returns its exit code, and ``record``
        with that exit code, its output and the leftovers killed."""
        exit_code = worker.exit_code()
        self._stop_current()
        leftovers = kill_leftovers(self.own_processes)
        extra = {**record.extra, "killed_leftover_processes": len(leftovers)} if leftovers else record.extra
        return exit_code, replace(record, exit_code=exit_code, output_tail=worker.output.tail(),
                                  output_bytes=worker.output.total, extra=extra)

    def _process_cap_text(self, worker: Worker, ready: dict) -> str:
        """What capped the run's processes (several caps may hold at once)."""
        caps = []
        if worker.supervisor is not None:
            caps.append(f"seccomp supervisor: at most {worker.supervisor.limit} live processes")
        elif ready.get("process_cap"):
            caps.append(str(ready["process_cap"]))
        if self.identity.dropped:
            caps.append(f"RLIMIT_NPROC {self.caps.processes} for user {self.identity.name}")
        return "; ".join(caps)

    def _stop_current(self) -> None:
        if self._current is not None:
            _, worker = self._current
            self._current = None
            worker.stop()
            if self.guardian is not None:
                self.guardian.ended(worker.process.pid)

    def stop_runs(self) -> None:
        """Stop the current worker (running, or started ahead), kill every process the runs left, clear /dev/shm."""
        self._stop_current()
        kill_leftovers(self.own_processes)
        clear_shared_memory(self.shared_memory_before, self.identity.uid)

