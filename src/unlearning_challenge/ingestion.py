"""The ingestion program: runs the submission N times and records what scoring needs.

For each run the trusted side starts a fresh worker (see
:mod:`unlearning_challenge.runner.session`) on a fresh copy of the original model with
a per-run seed, measures its wall time, then evaluates the returned weights
itself. Output, written only by this process into ``--output``:

``unlearned.npz``
    a :class:`~unlearning_challenge.artifacts.ModelFamily` (forget logits,
    accuracies, run seconds, seeds), only when every run succeeded;
``ingestion.json``
    status (``ok`` / ``failed``), message, fingerprints, time budget and one
    record per run (status, seconds, message, traceback and output tails).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep, so CPU time counts work (timing.OMP_WAIT_POLICY).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import unlearning_challenge
from unlearning_challenge import __version__
from unlearning_challenge.artifacts import (
    DATASET_FILE,
    ORIGINAL_WEIGHTS,
    PHASE_FILE,
    SUBMISSION_FILE,
    UNLEARNED_ARRAYS,
    ArtifactError,
    IngestionManifest,
    InputManifest,
    ModelFamily,
    read_input_manifest,
    write_family,
    write_manifest,
)
from unlearning_challenge.config import PhaseConfig, load_config
from unlearning_challenge.data import FaceDataset, Splits, load_dataset, save_dataset, split_fingerprint
from unlearning_challenge.reference.evaluation import ModelOutputs, evaluate_model
from unlearning_challenge.runner.forkserver import ForkServer, ForkServerError
from unlearning_challenge.runner.hints import run_hint
from unlearning_challenge.reference.models import (
    CheckpointError,
    architecture_problems,
    build_model,
    load_weights,
    nonfinite_parameters,
    pick_device,
)
from unlearning_challenge.runner.landlock import SHARED_MEMORY
from unlearning_challenge.reference.calibration import OMP_WAIT_POLICY, Clock, calibration_step_seconds
from unlearning_challenge.runner.isolation import (
    MAX_WORKER_PROCESSES,
    WorkerIdentity,
    copy_submission,
    give_to_worker,
    locked,
    worker_identity,
)
from unlearning_challenge.runner.session import (
    RunRecord,
    RunStatus,
    Worker,
    WorkerSpec,
    become_subreaper,
    kill_leftovers,
    own_children,
    reaped_children_cpu_seconds,
)


class IngestionError(RuntimeError):
    """The ingestion cannot start (bad input data or submission folder)."""


class OutputFolderError(IngestionError):
    """The output folder cannot be written (nothing can be recorded there either)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestion", description="Run a submission's unlearning N times.")
    parser.add_argument("--input", required=True, type=Path, help="input data folder (input_data/)")
    parser.add_argument("--output", required=True, type=Path, help="folder for the ingestion output")
    parser.add_argument("--submission", required=True, type=Path, help="folder holding unlearning.py")
    parser.add_argument("--num-models", type=int, default=None, help="run only the first k of the N runs (quick check)")
    parser.add_argument("--no-time-limit", action="store_true", help="do not enforce the per-run time budget")
    parser.add_argument("--time-budget", type=float, default=None, help="per-run budget in seconds (default: from the input data)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--memory-limit-gib", type=float, default=None, help="cap each worker's address space (0: none)")
    return parser


def load_input(input_dir: Path) -> tuple[PhaseConfig, InputManifest, FaceDataset, Splits]:
    """Read and cross-check the input data folder."""
    manifest = read_input_manifest(input_dir)
    config = load_config(input_dir / PHASE_FILE)
    if config.fingerprint() != manifest.config_fingerprint:
        raise ArtifactError(f"input data: {PHASE_FILE} does not match manifest.json (config fingerprint differs)")
    dataset, splits = load_dataset(input_dir / DATASET_FILE)
    if split_fingerprint(dataset, splits) != manifest.split_fingerprint:
        raise ArtifactError(f"input data: {DATASET_FILE} does not match manifest.json (split fingerprint differs)")
    if not (input_dir / ORIGINAL_WEIGHTS).is_file():
        raise ArtifactError(f"input data: {ORIGINAL_WEIGHTS} is missing from {input_dir}")
    return config, manifest, dataset, splits


def check_submission(submission: Path) -> None:
    if not submission.is_dir():
        raise IngestionError(f"submission folder not found: {submission}")
    if not (submission / SUBMISSION_FILE).is_file():
        found = sorted(p.name for p in submission.iterdir())[:10]
        raise IngestionError(
            f"the submission has no {SUBMISSION_FILE} at its root (found: {found}); "
            f"put {SUBMISSION_FILE} at the top of the folder (or of the zip)"
        )


def check_output_writable(output: Path) -> None:
    """Refuse to start (before any run) when the output folder cannot be written."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".write-check-"):
            pass
    except OSError as exc:
        try:
            info = output.stat()
            owner = f"owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"
        except OSError:
            owner = "not readable"
        raise OutputFolderError(
            f"cannot write the output folder {output} ({owner}; this process runs as uid {os.geteuid()}): "
            f"{exc.strerror or exc}. Run the programs as the folder's owner (the competition image runs as root "
            "by default, as the platforms' workers expect), or make the folder writable for this user"
        ) from None


def worker_env(run_dir: Path) -> dict[str, str]:
    """A minimal environment: nothing that names the trusted folders."""
    package_parent = str(Path(unlearning_challenge.__file__).resolve().parent.parent)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(run_dir),
        "TMPDIR": str(run_dir / "tmp"),
        "TORCHINDUCTOR_CACHE_DIR": str(run_dir / "tmp" / "inductor"),
        "TRITON_CACHE_DIR": str(run_dir / "tmp" / "triton"),
        "PYTHONPATH": package_parent,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", OMP_WAIT_POLICY),
    }
    for key in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OMP_NUM_THREADS"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class RunPlan:
    """Each run's private folder and how its worker starts.

    The original weights and the worker's data (retain, forget and val images;
    the test images are left out) are held in this process's memory and written
    afresh into every run's folder, with a copy of the submission: nothing a run
    does to its files reaches a later run.
    """

    def __init__(self, workspace: Path, config: PhaseConfig, submission: Path, device: torch.device,
                 original: Path, dataset: FaceDataset, splits: Splits, memory_limit_bytes: int,
                 identity: WorkerIdentity, fork_server: ForkServer | None = None):
        self.workspace, self.config, self.submission = workspace, config, submission
        self.device, self.memory_limit_bytes, self.identity = device, memory_limit_bytes, identity
        self.fork_server, self.fork_server_failure = fork_server, ""
        self.original_bytes = original.read_bytes()
        data_path = workspace / "worker_data.npz"
        save_dataset(data_path, dataset, splits, only=("retain", "forget", "val"))
        self.data_bytes = data_path.read_bytes()
        data_path.unlink()
        os.chmod(workspace, 0o711)  # workers may enter their own run folder, not list the others

    def seed(self, index: int) -> int:
        return self.config.ingestion.seed_start + index

    def run_dir(self, index: int) -> Path:
        return self.workspace / f"run_{index:05d}"

    def output(self, index: int) -> Path:
        return self.run_dir(index) / "out" / "unlearned.safetensors"

    def start(self, index: int) -> Worker:
        run_dir = self.run_dir(index)
        for sub in ("out", "tmp"):
            (run_dir / sub).mkdir(parents=True)
        copy_submission(self.submission, run_dir / "submission")
        (run_dir / "model.safetensors").write_bytes(self.original_bytes)
        (run_dir / "data.npz").write_bytes(self.data_bytes)
        job = {
            "submission": str(run_dir / "submission"),
            "dataset": str(run_dir / "data.npz"),
            "model": str(run_dir / "model.safetensors"),
            "model_config": {
                "arch": self.config.model.arch,
                "num_classes": self.config.model.num_classes,
                "checkpoint_dtype": self.config.model.checkpoint_dtype,
            },
            "output": str(self.output(index)),
            "seed": self.seed(index),
            "batch_size": self.config.ingestion.batch_size,
            "device": str(self.device),
            "run_dir": str(run_dir),
            "sandbox": self.config.ingestion.filesystem_sandbox,
        }
        job_path = run_dir / "job.json"
        job_path.write_text(json.dumps(job))
        give_to_worker(run_dir, self.identity)
        spec = WorkerSpec(job_path, run_dir, worker_env(run_dir), self.identity, self.memory_limit_bytes)
        if self.fork_server is not None:
            try:
                return Worker(spec, self.fork_server)
            except ForkServerError as exc:
                self.fork_server_failure = str(exc)
                self.fork_server = None
        return Worker(spec)

    def worker_start(self) -> str:
        """How workers were started, for the ingestion manifest."""
        if self.fork_server is not None:
            return "forked from a server with torch imported"
        if self.fork_server_failure:
            return f"new Python process per run ({self.fork_server_failure})"
        return "new Python process per run"


def finish_run(record: RunRecord, worker: Worker, message: dict, timed_out: str, limits: RunLimits,
               keep: set[int]) -> None:
    """Fill a record from the worker's last message; kill the worker and whatever it left running.

    ``timed_out``: which hard limit stopped the run ("wall", "cpu"; "" if none).
    """
    exit_code = worker.exit_code()
    worker.stop()
    leftovers = kill_leftovers(keep)
    if leftovers:
        record.extra["killed_leftover_processes"] = len(leftovers)
    record.exit_code = exit_code
    record.output_tail = worker.output.tail()
    record.output_bytes = worker.output.total
    event = message.get("event")
    if timed_out == "cpu":
        record.status = RunStatus.TIMEOUT
        record.message = (f"killed after {record.seconds:.1f} s: past the hard limit of {limits.cpu_limit:.1f} "
                          "CPU seconds per run")
    elif timed_out:
        record.status = RunStatus.TIMEOUT
        record.message = f"killed after {record.seconds:.1f} s: past the hard limit of {limits.wall_limit:.1f} s per run"
    elif event == "done":
        record.status = RunStatus.OK
    elif event == "error":
        record.status = RunStatus.BAD_OUTPUT if message.get("stage") == "return" else RunStatus.CRASHED
        stage = {"setup": "while loading the data", "import": "while importing unlearning.py",
                 "call": "inside unlearning()", "return": "with what unlearning() returned"}.get(message.get("stage"), "")
        record.message = f"{message.get('message', 'error')} ({stage})"
        hint = run_hint(str(message.get("message", "")), message.get("stage"))
        if hint:
            record.message += f"; {hint}"
        record.traceback_tail = str(message.get("traceback", ""))[-4000:]
    else:
        how = f"exit code {exit_code}" if exit_code is not None and exit_code >= 0 else (
            f"signal {-exit_code}" if exit_code is not None else "no exit code")
        record.status = RunStatus.CRASHED
        record.message = f"the worker process ended without finishing the run ({how})"


def evaluate_run(record: RunRecord, plan: RunPlan, dataset: FaceDataset, splits: Splits) -> ModelOutputs | None:
    """Load the weights the worker left and evaluate them on the trusted side."""
    path = plan.output(record.index)
    if not path.is_file():
        record.status, record.message = RunStatus.BAD_OUTPUT, "the run reported done but left no model weights"
        return None
    try:
        state = load_weights(path)
    except CheckpointError as exc:
        record.status, record.message = RunStatus.BAD_OUTPUT, f"unreadable model weights: {exc}"
        return None
    problems = architecture_problems(state, plan.config.model)
    if problems:
        record.status = RunStatus.BAD_OUTPUT
        record.message = "the returned model is not a ResNet-18 with 10 classes: " + "; ".join(problems)
        return None
    bad = nonfinite_parameters(state)
    if bad:
        record.status = RunStatus.BAD_OUTPUT
        record.message = f"the returned model has NaN or infinite weights in {len(bad)} tensor(s), e.g. {bad[:3]}"
        return None
    model = build_model(plan.config.model)
    model.load_state_dict(state)
    return evaluate_model(model, dataset, splits, plan.device)


# With the CPU clock, a run is also stopped after this many times its CPU hard limit in
# wall seconds (a run that sleeps uses no CPU time).
CPU_CLOCK_WALL_FACTOR = 3.0


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits: the budget (None: no limit) and the hard limits past which a worker is killed.

    ``clock`` says what ``budget`` and ``cpu_limit`` count; ``wall_limit`` is always wall seconds.
    """

    clock: Clock
    budget: float | None
    wall_limit: float
    cpu_limit: float | None

    @classmethod
    def derive(cls, clock: Clock, budget: float | None, config: PhaseConfig, manifest: InputManifest) -> "RunLimits":
        if budget is None:
            return cls(clock, None, max(10 * manifest.mean_retrain_seconds, 600.0), None)
        hard = budget * config.ingestion.hard_timeout_factor
        if clock is Clock.CPU:
            return cls(clock, budget, hard * CPU_CLOCK_WALL_FACTOR, hard)
        return cls(clock, budget, hard, None)

    def used(self, record: RunRecord) -> float:
        """What the run used of the budget: its CPU or its wall seconds."""
        return record.cpu_seconds if self.clock is Clock.CPU else record.seconds


def time_budget(config: PhaseConfig, manifest: InputManifest, dataset: FaceDataset, splits: Splits, device: torch.device,
                *, no_time_limit: bool = False, budget_seconds: float | None = None) -> tuple[float | None, dict]:
    """The per-run budget in seconds of ``Clock.for_device(device)`` (None: no limit) and how it was derived.

    The reference budget is wall seconds on the machine that made the reference; it is
    scaled by (one training step here, on this clock) / (one step there, in wall seconds).
    """
    clock = Clock.for_device(device)
    unit = "CPU seconds" if clock is Clock.CPU else "s"
    reference_budget = manifest.time_budget_seconds
    timing = {"reference_budget_seconds": reference_budget, "speed_ratio": None, "clock": clock.value,
              "unit": unit, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if no_time_limit:
        return None, {**timing, "explanation": "no time limit"}
    if budget_seconds is not None:
        return budget_seconds, {**timing, "explanation": "budget given on the command line"}
    fraction, retrain = manifest.time_fraction, manifest.mean_retrain_seconds
    explanation = f"{fraction:.0%} of one retrain's {retrain:.1f} s"
    if config.ingestion.budget_scaling == "none" or not manifest.calibration_step_seconds:
        return reference_budget, {**timing, "explanation": explanation}
    here = calibration_step_seconds(
        dataset.images[splits.retain], dataset.age_group[splits.retain],
        model_cfg=config.model, train_cfg=config.training, device=device, clock=clock,
    )
    ratio = here / manifest.calibration_step_seconds
    if clock is Clock.CPU:
        explanation += f", scaled by {ratio:.2f} to this machine's CPU seconds"
    else:
        explanation += f", scaled by {ratio:.2f} for this machine's speed"
    return reference_budget * ratio, {**timing, "speed_ratio": ratio, "calibration_step_seconds": here,
                                      "explanation": explanation}


def start_fork_server(config: PhaseConfig, subreaper: bool, log=print) -> ForkServer | None:
    """The fork server workers start from, or None (each worker then starts a new Python).

    Forked workers are reparented to this process, so it must be a child subreaper.
    """
    if not config.ingestion.fork_server:
        return None
    if not subreaper:
        log("warning: this process cannot be a child subreaper (Linux only): each worker starts a new Python")
        return None
    return ForkServer(worker_env(Path("/")))


def ingestion_manifest(config: PhaseConfig, manifest: InputManifest, records: list[RunRecord], *, status: str,
                       message: str, num_models: int, budget: float | None, device: torch.device,
                       arrays_sha256: str | None, **details) -> IngestionManifest:
    """The output's manifest; ``details``: timing, worker_user, isolation_warning, worker_start."""
    return IngestionManifest(
        status=status,
        message=message,
        phase=config.name,
        config_fingerprint=manifest.config_fingerprint,
        split_fingerprint=manifest.split_fingerprint,
        num_models=num_models,
        num_models_reference=manifest.num_models,
        time_budget_seconds=budget,
        budget_clock=Clock.for_device(device).value,
        time_limit_enforced=budget is not None,
        device=str(device),
        package_version=__version__,
        arrays_sha256=arrays_sha256,
        runs=tuple(r.to_json() for r in records),
        **details,
    )


def shared_memory_entries() -> set[str]:
    """Names in /dev/shm now (a run may use shared memory, but nothing it leaves there survives it)."""
    try:
        return set(os.listdir(SHARED_MEMORY))
    except OSError:
        return set()


def clear_shared_memory(before: set[str]) -> None:
    """Remove what appeared in /dev/shm since ``before`` (no state passes from one run to the next)."""
    for name in shared_memory_entries() - before:
        path = Path(SHARED_MEMORY) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def run_one(record: RunRecord, worker: Worker, limits: RunLimits, keep: set[int]) -> None:
    """Let a ready worker run, then stop it; the record gets its wall and CPU seconds.

    The CPU seconds are what this process reaps while the run's processes end
    (the worker and every leftover are reaped here, a subreaper), less the
    worker's own setup before ``go``.
    """
    reaped_before = reaped_children_cpu_seconds()
    end = worker.go(limits.wall_limit, limits.cpu_limit)
    record.seconds = end.seconds
    finish_run(record, worker, end.message, end.timed_out, limits, keep)
    if worker.supervisor is not None and worker.supervisor.refused:
        record.extra["refused_process_creations"] = worker.supervisor.refused
    record.cpu_seconds = max(0.0, reaped_children_cpu_seconds() - reaped_before - end.cpu_at_go)


def process_cap_text(worker: Worker, ready: dict, identity: WorkerIdentity) -> str:
    """What capped the run's processes (several caps may hold at once)."""
    caps = []
    if worker.supervisor is not None:
        caps.append(f"seccomp supervisor: at most {worker.supervisor.limit} live processes")
    elif ready.get("process_cap"):
        caps.append(str(ready["process_cap"]))
    if identity.dropped:
        caps.append(f"RLIMIT_NPROC {MAX_WORKER_PROCESSES} for user {identity.name}")
    return "; ".join(caps)


def over_budget_message(record: RunRecord, limits: RunLimits, timing: dict) -> str:
    if limits.clock is Clock.CPU:
        return (f"used {record.cpu_seconds:.1f} CPU seconds in {record.seconds:.1f} s, more than the budget of "
                f"{limits.budget:.1f} CPU seconds per run ({timing['explanation']})")
    return (f"took {record.seconds:.1f} s, more than the budget of {limits.budget:.1f} s "
            f"per run ({timing['explanation']})")


def run_all(plan: RunPlan, num_models: int, limits: RunLimits, timing: dict,
            dataset: FaceDataset, splits: Splits, keep: set[int]) -> tuple[list[RunRecord], list[ModelOutputs]]:
    """Run until every run is done or one fails. The next worker starts while the last model is evaluated."""
    records: list[RunRecord] = []
    outputs: list[ModelOutputs] = []
    shared_memory = shared_memory_entries()
    worker: Worker | None = plan.start(0)
    bar = tqdm(range(num_models), desc="unlearning runs", unit="run", file=sys.stderr)
    try:
        for index in bar:
            record = RunRecord(index=index, seed=plan.seed(index))
            records.append(record)
            ready = worker.wait_ready(exclude=keep)
            record.process_cap = process_cap_text(worker, ready, plan.identity)
            if ready.get("event") != "ready":
                finish_run(record, worker, ready, "", limits, keep)
                worker = None
            else:
                record.confinement = ready.get("confinement") or "landlock"
                run_one(record, worker, limits, keep)
                clear_shared_memory(shared_memory)
                worker = plan.start(index + 1) if index + 1 < num_models and record.status == RunStatus.OK else None
            if record.status == RunStatus.OK:
                result = evaluate_run(record, plan, dataset, splits)
                if result is not None:
                    outputs.append(result)
                if result is not None and limits.budget is not None and limits.used(record) > limits.budget:
                    record.status = RunStatus.TIMEOUT
                    record.message = over_budget_message(record, limits, timing)
            shutil.rmtree(plan.run_dir(index), ignore_errors=True)
            bar.set_postfix(last=f"{record.seconds:.1f}s", status=record.status.value)
            if record.status != RunStatus.OK:
                break
    finally:
        bar.close()
        if worker is not None:
            worker.stop()
        kill_leftovers(keep)
        clear_shared_memory(shared_memory)
    return records, outputs


def run_ingestion(args: argparse.Namespace, log=print) -> int:
    """Run every run; write the output; 0 when all runs are ok."""
    output = args.output
    check_output_writable(output)
    config, manifest, dataset, splits = load_input(args.input)
    check_submission(args.submission)
    num_models = manifest.num_models if args.num_models is None else args.num_models
    if not 1 <= num_models <= manifest.num_models:
        raise IngestionError(f"--num-models must be between 1 and {manifest.num_models}, got {num_models}")
    device = pick_device(args.device)
    budget, timing = time_budget(config, manifest, dataset, splits, device,
                                 no_time_limit=args.no_time_limit, budget_seconds=args.time_budget)
    limits = RunLimits.derive(Clock(timing["clock"]), budget, config, manifest)
    timing.update(wall_limit_seconds=limits.wall_limit, cpu_limit_seconds=limits.cpu_limit)
    memory_gib = config.ingestion.memory_limit_gib if args.memory_limit_gib is None else args.memory_limit_gib
    identity, warning = worker_identity(worker_env(Path("/")))
    if warning:
        log(f"warning: {warning}")
    budget_text = "no time limit" if budget is None else (
        f"budget {budget:.1f} {timing['unit']} per run ({timing['explanation']})")
    log(f"ingestion: {num_models} run(s) of {args.submission} on {device}, {budget_text}")

    subreaper = become_subreaper()
    keep = own_children()
    fork_server = start_fork_server(config, subreaper, log)
    if fork_server is not None:
        keep.add(fork_server.pid)
    records: list[RunRecord] = []
    workspace = Path(tempfile.mkdtemp(prefix="unlearning-runs-"))
    extra = {"timing": timing, "worker_user": identity.name, "isolation_warning": warning}

    def write(status: str, message: str, sha: str | None) -> None:
        write_manifest(output, ingestion_manifest(
            config, manifest, records, status=status, message=message, num_models=num_models,
            budget=budget, device=device, arrays_sha256=sha, **extra))

    try:
        with locked([args.input.resolve(), output.resolve()], identity) as lock_warnings:
            for text in lock_warnings:
                log(f"warning: {text}")
            plan = RunPlan(workspace, config, args.submission.resolve(), device, args.input / ORIGINAL_WEIGHTS,
                           dataset, splits, int(memory_gib * 2**30), identity, fork_server)
            try:
                records, outputs = run_all(plan, num_models, limits, timing, dataset, splits, keep)
            finally:
                extra["worker_start"] = plan.worker_start()
    except KeyboardInterrupt:
        write("failed", "interrupted", None)
        raise
    finally:
        if fork_server is not None:
            fork_server.close()
        shutil.rmtree(workspace, ignore_errors=True)

    failed = next((r for r in records if r.status != RunStatus.OK), None)
    if failed is not None:
        message = f"run {failed.index} (seed {failed.seed}) {failed.status.value}: {failed.message}"
        write("failed", message, None)
        log(f"ingestion failed: {message}")
        return 1
    try:
        sha = write_family(output / UNLEARNED_ARRAYS, family_of(outputs, records, dataset, splits))
    except OSError as exc:
        message = f"the runs completed but {UNLEARNED_ARRAYS} could not be written to {output}: {exc}"
        write("failed", message, None)
        log(f"ingestion failed: {message}")
        return 1
    message = f"{num_models} run(s) completed"
    write("ok", message, sha)
    log(f"ingestion: {message}; mean {np.mean([r.seconds for r in records]):.2f} s per run; output in {output}")
    return 0


def family_of(outputs: list[ModelOutputs], records: list[RunRecord], dataset: FaceDataset,
              splits: Splits) -> ModelFamily:
    """The unlearned models' family: one row per run."""
    return ModelFamily.stack(
        [vars(output) for output in outputs],
        forget_labels=dataset.age_group[splits.forget], forget_image_ids=dataset.image_id[splits.forget],
        seconds=[r.seconds for r in records], seeds=[r.seed for r in records],
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: clean up workers as on Ctrl-C
    try:
        code = run_ingestion(args, log=lambda text: print(text, file=sys.stderr))
    except (IngestionError, ArtifactError, ValueError, OSError) as exc:
        print(f"ingestion failed: {exc}", file=sys.stderr)
        if not isinstance(exc, OutputFolderError):
            record_failure(args.output, str(exc))
        return 2
    return code


def record_failure(output: Path, message: str) -> None:
    """Write a failed ingestion manifest, if the output folder can be written at all."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        write_manifest(output, IngestionManifest(status="failed", message=message))
    except OSError as exc:
        print(f"ingestion: could not record the failure in {output}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
