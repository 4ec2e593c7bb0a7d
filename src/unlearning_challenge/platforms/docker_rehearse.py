"""Rehearse a submission in the competition image, as each platform's compute worker runs it.

The ingestion and scoring programs come from the bundle's zips (``make bundle``)
and run in ``docker_image`` through the docker SDK with the worker's own
folder layout, mounts, working directory, command splitting and limits:

- Codabench (codalab/codabench compute_worker/compute_worker.py): the run
  folder's ``program``, ``output`` and ``data`` (read-only) at ``/app/program``,
  ``/app/output``, ``/app/data``; for the ingestion also ``/app/ingested_program``
  and ``/app/input_data``; for the scoring ``/app/input`` (``ref``, ``res``) and
  ``/app/shared``. Working directory ``/app/program``, the command
  shlex-split (the SDK's split of a string), every default capability dropped,
  ``no-new-privileges``, the image's own user. The worker creates the output
  folder itself, as root with the default umask (0755), and does not open it up.
- CodaLab v1 (codalab/competitions-v1-compute-worker worker.py): the run folder
  mounted at its own path, ``-w <run>``, ``PYTHONPATH=$PYTHONPATH:<run>/program``
  passed literally to the ingestion, the command split on single spaces,
  ``no-new-privileges``, ``--memory`` of the host's memory less 512 MiB, the
  run, output and temp folders world-writable.

Both: the network is off (Codabench's ``COMPETITION_CONTAINER_NETWORK_DISABLED``;
CodaLab's worker leaves it on), the phase's ``execution_time_limit`` is
enforced per step by killing the container, and a GPU is requested
(``device_requests``, as ``docker run --gpus all``) when the host has one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unlearning_challenge.artifacts import INGESTION_MANIFEST, ArtifactError, IngestionManifest, read_ingestion_manifest
from unlearning_challenge.platforms.commands import (
    PLATFORMS, codabench_variables, codalab_variables, metadata_argv, metadata_command,
)

# Codabench's cap_drop_list: every capability docker grants by default.
CODABENCH_CAP_DROP = [
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
]
SECURITY_OPT = ["no-new-privileges"]
HOST_MEMORY_RESERVE_MIB = 512  # CodaLab's worker: --memory <available - 512>MB


class RehearsalError(RuntimeError):
    """The rehearsal cannot run (no bundle phase, bad submission); the message says what to do."""


# --------------------------------------------------------------------------- one container


@dataclass
class StepResult:
    """One container: its exit, how long it ran, and against which limit."""

    name: str
    exit_code: int | None
    seconds: float
    limit: int
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def line(self) -> str:
        end = "stopped at the limit" if self.timed_out else f"exit {self.exit_code}"
        return f"{self.name:9s} {self.seconds:7.1f} s of {self.limit} s limit ({100 * self.seconds / self.limit:.0f}%), {end}"


def _forward(client, container_id: str, log_path: Path) -> threading.Thread:
    """Stream the container's stdout and stderr to our stderr (our stdout carries the report), and into ``log_path``."""

    def pump():
        with open(log_path, "ab") as log:
            for out, err in client.api.attach(container_id, stream=True, logs=True, demux=True):
                for chunk in (out, err):
                    if chunk:
                        sys.stderr.buffer.write(chunk)
                        sys.stderr.flush()
                        log.write(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def run_step(client, image: str, name: str, argv: list[str], limit: int, log_path: Path, **settings) -> StepResult:
    """Create, start and wait for one container; kill it at ``limit`` seconds, as the workers do."""
    import requests

    container = client.containers.create(image, argv, detach=True, **settings)
    try:
        started = time.monotonic()
        container.start()
        forwarder = _forward(client, container.id, log_path)  # after the start: `logs=True` replays from it
        try:
            status = container.wait(timeout=limit)
            exit_code, timed_out = status.get("StatusCode"), False
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            container.wait(timeout=60)
            exit_code, timed_out = None, True
        seconds = time.monotonic() - started
        forwarder.join(timeout=10)
    finally:
        container.remove(force=True)
    return StepResult(name, exit_code, seconds, limit, timed_out)


def gpu_requests() -> list:
    """``--gpus all`` when this host has an NVIDIA GPU, else nothing."""
    import docker

    has_gpu = Path("/dev/nvidiactl").exists() or (
        shutil.which("nvidia-smi") is not None
        and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0)
    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if has_gpu else []


def _bind(mounts: dict[Path, str], read_only: set[Path] = frozenset(), mode: str = "rw") -> dict:
    return {str(host): {"bind": inside, "mode": "ro" if host in read_only else mode} for host, inside in mounts.items()}


def root_made_folder(client, image: str, folder: Path) -> None:
    """Create ``folder`` as root with the default umask (0755), as Codabench's worker does, whoever runs this."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    client.containers.run(image, ["mkdir", f"/parent/{folder.name}"], remove=True, user="0", network_mode="none",
                          volumes={str(folder.parent): {"bind": "/parent", "mode": "rw"}}, entrypoint=[])


# --------------------------------------------------------------------------- the two workers


@dataclass
class Rehearsal:
    """What to run: the image, the phase's program and data zips, the packed submission, the limit."""

    client: object
    image: str
    items: dict[str, bytes]  # ingestion_program, scoring_program, input_data, reference_data
    submission_zip: Path
    limit: int
    folder: Path
    extra_ingestion_args: list[str] = field(default_factory=list)
    extra_scoring_args: list[str] = field(default_factory=list)
    gpu: list = field(default_factory=list)

    def unzip(self, data: bytes | Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(data if isinstance(data, Path) else _bytes_io(data)) as zf:
            zf.extractall(folder)

    def common(self) -> dict:
        return {"security_opt": SECURITY_OPT, "network_mode": "none", "device_requests": self.gpu}


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


def rehearse_codabench(r: Rehearsal) -> tuple[list[StepResult], Path, Path]:
    """Prediction (the ingestion) then scoring; returns the steps, the ingestion and the scoring output folders."""
    data = r.folder / "data"  # the worker's HOST_DIRECTORY/data, read-only
    data.mkdir(parents=True)
    settings = dict(r.common(), cap_drop=CODABENCH_CAP_DROP, userns_mode="host", working_dir="/app/program",
                    environment=["PYTHONUNBUFFERED=1", "http_proxy=", "https_proxy="])

    prediction = r.folder / "prediction"
    r.unzip(r.items["ingestion_program"], prediction / "ingestion_program")
    r.unzip(r.submission_zip, prediction / "program")
    r.unzip(r.items["input_data"], prediction / "input_data")
    root_made_folder(r.client, r.image, prediction / "output")
    argv = metadata_argv(metadata_command(prediction / "ingestion_program"),
                        codabench_variables("ingestion", is_scoring=False), "codabench")
    mounts = {prediction / "ingestion_program": "/app/program", prediction / "output": "/app/output", data: "/app/data",
              prediction / "program": "/app/ingested_program", prediction / "input_data": "/app/input_data"}
    ingestion = run_step(r.client, r.image, "ingestion", argv + r.extra_ingestion_args, r.limit,
                         r.folder / "ingestion.log", volumes=_bind(mounts, {data}, mode="z"), **settings)

    scoring_root = r.folder / "scoring"
    r.unzip(r.items["scoring_program"], scoring_root / "program")
    r.unzip(r.items["reference_data"], scoring_root / "input" / "ref")
    (scoring_root / "input" / "res").mkdir()
    (scoring_root / "shared").mkdir()
    root_made_folder(r.client, r.image, scoring_root / "output")
    argv = metadata_argv(metadata_command(scoring_root / "program"), codabench_variables("program", is_scoring=True),
                        "codabench")
    # The worker downloads the prediction's output into input/res; here it is mounted there.
    mounts = {scoring_root / "program": "/app/program", scoring_root / "output": "/app/output", data: "/app/data",
              scoring_root / "shared": "/app/shared", scoring_root / "input": "/app/input",
              prediction / "output": "/app/input/res"}
    scoring = run_step(r.client, r.image, "scoring", argv + r.extra_scoring_args, r.limit,
                       r.folder / "scoring.log", volumes=_bind(mounts, {data}, mode="z"), **settings)
    return [ingestion, scoring], prediction / "output", scoring_root / "output"


def _world_writable(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    return folder


def _memory_limit() -> str:
    total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"{total_mib - HOST_MEMORY_RESERVE_MIB}m"


def rehearse_codalab(r: Rehearsal) -> tuple[list[StepResult], Path, Path]:
    """The predict step (the ingestion) then the scoring step, each in its own run folder."""
    settings = dict(r.common(), mem_limit=_memory_limit())

    predict_root = _world_writable(r.folder / "predict")
    run, shared = predict_root / "run", _world_writable(r.folder / "predict_shared")
    r.unzip(r.items["ingestion_program"], run / "ingestion_program")
    r.unzip(r.submission_zip, run / "program")
    r.unzip(r.items["input_data"], run / "input")
    _world_writable(run / "output"), _world_writable(run / "temp")
    argv = metadata_argv(metadata_command(run / "ingestion_program"), codalab_variables("ingestion", run, shared),
                        "codalab")
    ingestion = run_step(
        r.client, r.image, "ingestion", argv + r.extra_ingestion_args, r.limit, r.folder / "ingestion.log",
        volumes=_bind({run: str(run), shared: str(shared)}), working_dir=str(run),
        environment=[f"PYTHONPATH=$PYTHONPATH:{run}/program", "PYTHONUNBUFFERED=1"], **settings)

    score_root = _world_writable(r.folder / "score")
    score_run, score_shared = score_root / "run", _world_writable(r.folder / "score_shared")
    r.unzip(r.items["scoring_program"], score_run / "program")
    r.unzip(r.items["reference_data"], score_run / "input" / "ref")
    shutil.copytree(run / "output", score_run / "input" / "res")  # the worker downloads the predict step's output
    _world_writable(score_run / "output"), _world_writable(score_run / "temp")
    argv = metadata_argv(metadata_command(score_run / "program"),
                        codalab_variables("scoring", score_run, score_shared), "codalab")
    scoring = run_step(
        r.client, r.image, "scoring", argv + r.extra_scoring_args, r.limit, r.folder / "scoring.log",
        volumes=_bind({score_run: str(score_run), score_shared: str(score_shared)}), working_dir=str(score_run),
        environment=["PYTHONUNBUFFERED=1"], **settings)
    return [ingestion, scoring], run / "output", score_run / "output"


RUNNERS = dict(zip(PLATFORMS, (rehearse_codabench, rehearse_codalab)))


# --------------------------------------------------------------------------- report


@dataclass
class Outcome:
    """What a rehearsal found: the steps, the ingestion's record, the score lines, and what failed."""

    steps: list[StepResult]
    ingestion: IngestionManifest | None  # None when the ingestion left none (or an unreadable one)
    scores_txt: str | None
    problems: list[str]
    scores: dict | None = None  # scores.json, full precision

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(steps: list[StepResult], ingestion_output: Path, scoring_output: Path) -> Outcome:
    problems = [f"the {s.name} step was stopped at the phase's execution_time_limit ({s.limit} s)"
                if s.timed_out else f"the {s.name} step exited with {s.exit_code}" for s in steps if not s.ok]
    ingestion = None
    if not (ingestion_output / INGESTION_MANIFEST).is_file():
        problems.append(f"the ingestion left no {INGESTION_MANIFEST} in {ingestion_output}")
    else:
        try:
            ingestion = read_ingestion_manifest(ingestion_output)
        except ArtifactError as exc:
            problems.append(str(exc))
        else:
            if ingestion.status not in ("ok", "partial"):  # partial: the scoring step decides what it is worth
                problems.append(f"ingestion status {ingestion.status}: {ingestion.message}")
    scores_path = scoring_output / "scores.txt"
    scores_txt = scores_path.read_text() if scores_path.is_file() else None
    if scores_txt is None:
        problems.append(f"the scoring wrote no scores.txt in {scoring_output}")
    scores_path = scoring_output / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else None
    return Outcome(steps, ingestion, scores_txt, problems, scores)


def confinement_summary(ingestion: IngestionManifest | None, field: str = "confinement") -> str:
    """e.g. "32 of 32 runs: landlock" from one field of ingestion.json's per-run records."""
    runs = ingestion.runs if ingestion is not None else ()
    counts: dict[str, int] = {}
    for run in runs:
        key = getattr(run, field) or "not recorded"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} of {len(runs)} runs: {kind}" for kind, n in sorted(counts.items())) or "no runs recorded"


def report(platform: str, image: str, outcome: Outcome, folder: Path, gpu: bool) -> str:
    lines = [f"{platform} rehearsal in {image} ({'GPU requested' if gpu else 'no GPU on this host'}); folders in {folder}"]
    lines += [f"  {step.line()}" for step in outcome.steps]
    lines.append(f"  confinement: {confinement_summary(outcome.ingestion)}")
    lines.append(f"  process cap: {confinement_summary(outcome.ingestion, 'process_cap')}")
    if outcome.ingestion is not None and outcome.ingestion.worker_user:
        warning = outcome.ingestion.isolation_warning
        lines.append(f"  worker user: {outcome.ingestion.worker_user}" + (f" ({warning})" if warning else ""))
    if outcome.ingestion is not None and outcome.ingestion.status == "partial":
        lines.append(f"  partial output: {outcome.ingestion.message} (the step's time limit; the phase's "
                     "scoring.partial_output decides what it is worth)")
    if outcome.scores_txt:
        lines.append(outcome.scores_txt.rstrip("\n"))
    lines += [f"{platform} rehearsal failed: {problem}" for problem in outcome.problems]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the whole rehearsal


def phase_items(result, platform: str, label: str) -> tuple[dict[str, bytes], int]:
    """The phase's program and data zips as the platform finds them in its bundle, and its time limit."""
    keys = ("ingestion_program", "scoring_program", "input_data", "reference_data")
    included = {plan.phase.name: plan for plan in result.included}
    if label not in included:
        left_out = {plan.phase.name: plan.explanation() for plan in result.plans if not plan.included}
        raise RehearsalError(f"phase {label!r} is not in the bundle ({left_out.get(label, 'no such phase')}); "
                             f"phases in it: {sorted(included)}")
    bundle = result.codalab_bundle if platform == "codalab" else result.codabench_bundle
    with zipfile.ZipFile(bundle) as zf:
        doc = yaml.safe_load(zf.read("competition.yaml"))
        if platform == "codalab":
            phase = next(p for p in doc["phases"].values() if p["label"] == label)
            return {key: zf.read(phase[key]) for key in keys}, int(phase["execution_time_limit"])
        phase = next(p for p in doc["phases"] if p["name"] == label)
        task = next(t for t in doc["tasks"] if t["index"] == phase["tasks"][0])
        return {key: zf.read(task[key]) for key in keys}, int(phase["execution_time_limit"])


def rehearse(platform: str, submission: Path, *, root: Path, competition: Path, phase: str = "Check",
             num_models: int | None = None, no_time_limit: bool = False, local_base: bool = False,
             output: Path | None = None, participant_output: str | None = None,
             log=lambda line: print(line, file=sys.stderr)) -> Outcome:
    """Bundle, image (each rebuilt when stale), then both steps of ``phase`` as ``platform``'s worker runs them.

    ``participant_output`` ("shown" or "hidden") overrides the phase's setting in both programs.
    """
    from unlearning_challenge.platforms.build import build_bundles
    from unlearning_challenge.platforms.competition import load_competition
    from unlearning_challenge.platforms.docker_image import ImageBuild, docker_client, ensure_image
    from unlearning_challenge.platforms.submission_zip import pack_submission

    if platform not in RUNNERS:
        raise RehearsalError(f"unknown platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    folder = output or root / "runs" / time.strftime(f"docker-{platform}-%Y%m%d-%H%M%S")
    if folder.exists() and any(folder.iterdir()):
        raise RehearsalError(f"output folder {folder} is not empty; choose another with OUT=...")
    image = load_competition(root / competition).docker_image
    client = docker_client()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    build_seconds = ensure_image(client, ImageBuild(tag=image, root=root, local_base=local_base, log=log))
    log(f"image {image}: " + ("current" if build_seconds is None else f"built in {build_seconds:.0f} s"))
    result = build_bundles(competition, root=root, out_dir=root / "dist", log=log)
    items, limit = phase_items(result, platform, phase)
    packed = pack_submission(submission, folder / "submission.zip").path
    extra = ["--num-models", str(num_models)] if num_models else []
    if participant_output:
        extra += ["--participant-output", participant_output]
    rehearsal = Rehearsal(client, image, items, packed, limit, folder,
                          extra_ingestion_args=extra + (["--no-time-limit"] if no_time_limit else []),
                          extra_scoring_args=extra, gpu=gpu_requests())
    log(f"{platform}: phase {phase}, execution_time_limit {limit} s per step"
        + (f", first {num_models} models only" if num_models else "") + f" (set-up {time.monotonic() - started:.0f} s)")
    steps, ingestion_output, scoring_output = RUNNERS[platform](rehearsal)
    outcome = judge(steps, ingestion_output, scoring_output)
    print(report(platform, image, outcome, folder, bool(rehearsal.gpu)))
    return outcome
