"""The Ray backend: one task per (submission, run) pair, each confined and judged on its node.

Each task builds its own :class:`~unlearning_challenge.runner.session.RunSession`
through :func:`~unlearning_challenge.evaluation.runs.run_submission` (worker process,
Landlock, seccomp supervisor and network filter, user drop where the node allows it,
budget calibrated on that node), evaluates the returned weights in the task, outside
the worker, and returns only trusted data: the run's record and context as JSON and
the trusted evaluation's arrays. The driver saves them in the work folder.

Every node must see the input data and the work folder (the submissions' copies) at
the same paths. A task lost with its worker or node is retried ``MAX_RETRIES`` times,
then reported; the first failed run of a submission cancels its later runs; Ctrl-C
cancels every task (and a cluster started here is stopped).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Callable, Sequence

import torch

from unlearning_challenge.evaluation.options import EvaluationError, EvaluationOptions
from unlearning_challenge.evaluation.runs import Phase, Progress, run_submission
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, Submission, content_sha256
from unlearning_challenge.reference.calibration import OMP_WAIT_POLICY
from unlearning_challenge.reference.ray_tasks import _ANSI, RaySettings, ray_cluster

# Times a task lost with its worker or node (not a run's own failure) is run again.
MAX_RETRIES = 2
# Seconds Ctrl-C waits for cancelled tasks to stop their runs' workers.
CANCEL_WAIT_SECONDS = 30


def _pair_task(input_dir: str, submission: str, sha256: str, index: int, device: str, threads: int,
               no_time_limit: bool, trusted: list[str]) -> dict:
    """Run ``index`` of the submission on this node; ``{"run": RunResult JSON, "arrays": arrays or None}``."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the run's worker inherits it
    torch.set_num_threads(threads)
    folder = Path(submission)
    if not Path(input_dir).is_dir() or not folder.is_dir():
        raise EvaluationError(f"node {platform.node()} cannot read {input_dir} or {folder}: every node must see the "
                              "input data and the work folder at the same paths")
    if content_sha256(folder) != sha256:
        raise EvaluationError(f"node {platform.node()} sees other files in {folder}: every node must see the same "
                              "work folder")
    phase = Phase.load(Path(input_dir))
    (result,) = run_submission(phase, folder, [index], device=torch.device(device), no_time_limit=no_time_limit,
                               trusted=[Path(p) for p in trusted], log=lambda _: None)
    return {"run": result.to_json(), "arrays": result.arrays()}


def ray_settings(options: EvaluationOptions) -> RaySettings:
    """``--ray-address``, else ``RAY_ADDRESS``, else a new local cluster (never one found on this machine)."""
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or "local"
    return RaySettings(address=address, gpus_per_model=options.gpus_per_run, cpus_per_model=options.cpus_per_run)


def run_ray(phase: Phase, jobs: Sequence[tuple[Submission, list[int]]], work: EvaluationWork, *,
            options: EvaluationOptions, trusted: Sequence[Path], log: Callable[[str], None]) -> list[str]:
    """Every job's runs as Ray tasks, each finished run saved as it arrives. Returns the problems
    (runs whose task failed, not by the run's own doing)."""
    with ray_cluster(ray_settings(options), log, unit="run") as cluster:
        import ray

        # max_calls=1: each run's task in a fresh Ray worker process (a session makes its process a
        # subreaper and non-dumpable; nothing of one run outlives its task).
        task = ray.remote(
            num_cpus=cluster.request["CPU"], num_gpus=cluster.request.get("GPU", 0), max_retries=MAX_RETRIES,
            retry_exceptions=False, max_calls=1, runtime_env={"env_vars": {"OMP_WAIT_POLICY": OMP_WAIT_POLICY}},
        )(_pair_task)
        threads = max(1, int(options.cpus_per_run))
        pending = {}
        for submission, indices in jobs:
            for index in indices:
                ref = task.options(name=f"{submission.name} run {index}").remote(
                    str(phase.input_dir.resolve()), str(submission.folder.resolve()), submission.sha256, index,
                    cluster.device.type, threads, options.no_time_limit, [str(Path(p).resolve()) for p in trusted])
                pending[ref] = (submission, index)
        log(f"ray: {len(pending)} run(s) submitted")
        return _collect(ray, pending, work, log)


def _collect(ray, pending: dict, work: EvaluationWork, log: Callable[[str], None]) -> list[str]:
    """Wait for every task, saving each run; a failed run cancels its submission's later runs."""
    problems = []
    progress = Progress(len(pending), "ray")
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                submission, index = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    continue
                except ray.exceptions.RayError as exc:
                    problems.append(f"{submission.name} run {index}: its task failed (not the run: "
                                    f"{type(exc).__name__}, after at most {MAX_RETRIES} retries)")
                    log(f"{submission.name} run {index}: its task failed; the other runs go on:\n"
                        f"{_ANSI.sub('', str(exc))}")
                    progress.skip(1)
                    continue
                result = RunResult.of(value["run"], value["arrays"], where=f"{submission.name} run {index} (ray)")
                work.save(submission.name, result)
                progress.done(submission.name, result)
                if not result.record.ok:
                    progress.skip(_cancel(ray, pending, lambda s, i: s.name == submission.name and i > index))
    except KeyboardInterrupt:
        progress.close()
        log(f"interrupted: cancelling {len(pending)} unfinished run(s); the finished ones stay in {work.root}")
        refs = list(pending)
        _cancel(ray, pending, lambda s, i: True)
        ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_SECONDS)
        raise
    finally:
        progress.close()
    return problems


def _cancel(ray, pending: dict, which: Callable[[Submission, int], bool]) -> int:
    """Cancel the pending tasks ``which`` selects (a running one is interrupted: its session stops its
    worker); how many."""
    chosen = [ref for ref, (submission, index) in pending.items() if which(submission, index)]
    for ref in chosen:
        del pending[ref]
        ray.cancel(ref)
    return len(chosen)
