"""Reference models as Ray tasks, sized to the cluster.

One task per model (each original and each retrained seed). Each task asks
``gpus_per_model`` GPUs (and ``cpus_per_model`` CPUs) when the models train on
CUDA, else ``cpus_per_model`` CPUs; a request no node can meet is refused
before anything is submitted. Each task reads the data from the work folder
and writes its own model file there, so every node must see the work folder
at the same path; the driver ships its copy of this package to the tasks.
A task lost with its worker or node is retried ``MAX_RETRIES`` times; a failed task (an exception)
is reported with its seed and traceback while the others go on; the finished models stay on disk
and a rerun trains only what is missing.
"""

from __future__ import annotations

import contextlib
import math
import platform
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

import unlearning_challenge
from unlearning_challenge.artifacts import ArtifactError
from unlearning_challenge.atomic import write_npz
from unlearning_challenge.config import PhaseConfig
from unlearning_challenge.data import load_dataset, split_fingerprint
from unlearning_challenge.reference.calibration import calibration_profile, profile_record
from unlearning_challenge.reference.work import WorkFolder, train_original, train_retrained


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the task's name in its tracebacks
# Times a model's task lost with its worker or node (not a model's own failure) is run again: a model's
# files depend only on its seed and are written atomically, so a retry cannot leave half of one.
MAX_RETRIES = 2
# GiB a model's task reserves on its node unless told (the challenge's ResNet-18 and its data loading).
DEFAULT_MODEL_MEMORY_GIB = 4.0


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the tasks as asked, or some of them failed."""


@dataclass(frozen=True)
class RaySettings:
    """address: a running cluster (``host:port`` or ``auto``); None: ``RAY_ADDRESS``, a cluster
    started on this machine with ``ray start``, else a new local one.
    device: ``cuda`` or ``cpu`` for every task; None: ``cuda`` when the cluster has GPUs."""

    address: str | None = None
    device: str | None = None
    gpus_per_model: float = 1.0
    cpus_per_model: float = 1.0
    memory_per_model: float | None = None  # GiB a task reserves on its node (None: DEFAULT_MODEL_MEMORY_GIB)

    def __post_init__(self) -> None:
        if not self.gpus_per_model > 0 or (self.gpus_per_model > 1 and self.gpus_per_model != int(self.gpus_per_model)):
            raise ValueError(f"--gpus-per-model must be a fraction in (0, 1] or a whole number, got {self.gpus_per_model:g}")
        if not self.cpus_per_model > 0:
            raise ValueError(f"--cpus-per-model must be positive, got {self.cpus_per_model:g}")
        if self.memory_per_model is not None and not self.memory_per_model > 0:
            raise ValueError(f"--memory-per-model must be a positive number of GiB, got {self.memory_per_model:g}")
        if self.device is not None and torch.device(self.device).type not in ("cuda", "cpu"):
            raise ValueError(f"the ray backend trains on 'cuda' or 'cpu', got --device {self.device!r}")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("the ray backend needs Ray: pip install -e '.[ray]'") from None
    return ray


def runtime_env() -> dict:
    """Ships this package (as the driver has it) to every task."""
    return {"py_modules": [str(Path(unlearning_challenge.__file__).parent)]}


def connect(settings: RaySettings) -> bool:
    """Join or start the cluster; True when this call started (and so must stop) it.

    Ray's driver installs its own SIGTERM handler (which aborts); the one this process had (the
    command's: SIGTERM as Ctrl-C, so that the cluster is stopped) is put back."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(address=settings.address, include_dashboard=False, runtime_env=runtime_env())
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
    return True


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("s" if value == 0 or value > 1 else "")


def task_device(settings: RaySettings, cluster: dict[str, float]) -> torch.device:
    """The device every task trains on: the one asked, else CUDA when the cluster has GPUs."""
    if settings.device is not None:
        return torch.device(torch.device(settings.device).type)
    return torch.device("cuda" if cluster.get("GPU", 0) > 0 else "cpu")


def task_resources(device: torch.device, settings: RaySettings) -> dict[str, float]:
    """What one model asks of a node: ``{"CPU": c}`` or ``{"CPU": c, "GPU": g}``."""
    request = {"CPU": settings.cpus_per_model}
    if device.type == "cuda":
        request["GPU"] = settings.gpus_per_model
    return request


def describe(request: dict[str, float]) -> str:
    """``{"CPU": 1, "GPU": 0.5}`` -> ``"0.5 GPU and 1 CPU"``."""
    parts = [_amount(request[k], k) for k in ("GPU", "CPU") if k in request]
    return " and ".join(parts)


def check_request(request: dict[str, float], cluster: dict[str, float], nodes: list[dict[str, float]], *,
                  unit: str = "model", no_gpu_hint: str = "pass --device cpu or join a cluster with GPUs") -> None:
    """Refuse a request that no alive node can meet (``cluster``: totals; ``nodes``: each node's resources).

    ``unit``: what one task is (``model``, ``run``), as the messages and flags name it."""
    have = f"the cluster has {_amount(cluster.get('GPU', 0), 'GPU')} and {_amount(cluster.get('CPU', 0), 'CPU')}"
    asks = f"each {unit} asks {describe(request)}"
    if request.get("GPU", 0) > cluster.get("GPU", 0):
        raise ClusterError(f"{asks}; {have}: {no_gpu_hint} (--ray-address)")
    if request["CPU"] > cluster.get("CPU", 0):
        raise ClusterError(f"{asks}; {have}: lower --cpus-per-{unit} or join a larger cluster (--ray-address)")
    if not any(all(node.get(k, 0) >= v for k, v in request.items()) for node in nodes):
        largest = max(nodes, key=lambda node: tuple(node.get(k, 0) for k in ("GPU", "CPU") if k in request), default={})
        raise ClusterError(
            f"{asks}; {have} but no single node has that much (the largest has "
            f"{describe({k: largest.get(k, 0) for k in request})}): lower --gpus-per-{unit} or --cpus-per-{unit}"
        )


def _threads(config: PhaseConfig, settings: RaySettings) -> int:
    """torch threads in a task: the config's ``training.cpu_threads``, else the CPUs it holds."""
    return config.training.cpu_threads or max(1, math.floor(settings.cpus_per_model))


def _open_work(work_root: str, fingerprint: str):
    """The work folder's data, as this node sees it (it must be the driver's)."""
    work = WorkFolder(Path(work_root))
    if not work.dataset.is_file():
        raise ArtifactError(f"node {platform.node()} cannot read {work.dataset}: every node must see the work "
                            "folder at the same path")
    dataset, splits = load_dataset(work.dataset)
    if split_fingerprint(dataset, splits) != fingerprint:
        raise ArtifactError(f"node {platform.node()} sees another dataset at {work.dataset}: every node must see "
                            "the same work folder")
    return work, dataset, splits


def _retrained_task(config: PhaseConfig, work_root: str, fingerprint: str, device: str, threads: int, seed: int) -> int:
    torch.set_num_threads(threads)
    work, dataset, splits = _open_work(work_root, fingerprint)
    record = train_retrained(config, dataset, splits, seed, torch.device(device), fingerprint)
    profile = calibration_profile(dataset.images[splits.retain], dataset.age_group[splits.retain],
                                  model_cfg=config.model, train_cfg=config.training, device=torch.device(device))
    write_npz(work.retrained(seed), {**record, **profile_record(profile)})
    return seed


def _original_task(config: PhaseConfig, work_root: str, fingerprint: str, device: str, threads: int,
                   k: int = 0) -> None:
    torch.set_num_threads(threads)
    work, dataset, splits = _open_work(work_root, fingerprint)
    train_original(config, work, dataset, splits, torch.device(device), k=k, progress=False)


@dataclass
class RayCluster:
    """A joined cluster whose nodes can run one model each as asked."""

    settings: RaySettings
    device: torch.device
    request: dict[str, float]
    log: Callable[[str], None] = print

    def train(self, config: PhaseConfig, work_root: Path, fingerprint: str, seeds: list[int], *,
              originals: Sequence[int] = ()) -> None:
        """Train the original models ``originals`` (their indices k) and the retrained ``seeds``, one task each.

        Each failure is logged with its traceback as it happens; ClusterError once the others are done.
        """
        ray = _import_ray()
        memory = self.settings.memory_per_model or DEFAULT_MODEL_MEMORY_GIB
        options = {"num_cpus": self.request["CPU"], "num_gpus": self.request.get("GPU", 0), "memory": int(memory * 2**30),
                   "max_retries": MAX_RETRIES, "retry_exceptions": False}
        args = (config, str(Path(work_root).resolve()), fingerprint, self.device.type, _threads(config, self.settings))
        labels = {}
        for k in originals:
            one = config.reference.num_originals == 1
            ref = ray.remote(_original_task).options(name="original" if one else f"original {k}", **options)
            labels[ref.remote(*args, k)] = "the original model" if one else f"original model {k}"
        for seed in seeds:
            ref = ray.remote(_retrained_task).options(name=f"seed {seed}", **options).remote(*args, seed)
            labels[ref] = f"retrained model seed {seed}"
        self.log(f"ray: {len(labels)} model(s) submitted")
        failed = _wait_all(ray, labels, self.log)
        if failed:
            raise ClusterError(
                f"{len(failed)} of {len(labels)} model(s) failed ({', '.join(failed)}; tracebacks above); the others "
                f"are saved in {args[1]}: run the same command again to train only the missing ones"
            )


def _wait_all(ray, labels: dict, log: Callable[[str], None]) -> list[str]:
    """Wait for every task; the labels of those that failed. Ctrl-C cancels the unfinished ones."""
    failed, pending = [], list(labels)
    try:
        with tqdm(total=len(pending), desc="models (ray)", unit="model") as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failed.append(labels[ref])
                        log(f"{labels[ref]} failed; the other models go on:\n{_ANSI.sub('', str(exc))}")
                    bar.update(1)
    except KeyboardInterrupt:
        log(f"interrupted: cancelling {len(pending)} unfinished model(s); the finished ones stay in the work folder")
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return failed


@contextlib.contextmanager
def ray_cluster(settings: RaySettings, log: Callable[[str], None] = print, *, unit: str = "model",
                **hints) -> Iterator[RayCluster]:
    """Join (or start) the cluster and check that a node can run one task (a ``unit``) as asked
    (``hints``: :func:`check_request`'s).

    Raises ClusterError at once when none can. A cluster started here is stopped on the way out.
    """
    ray = _import_ray()
    started = connect(settings)
    try:
        cluster = ray.cluster_resources()
        device = task_device(settings, cluster)
        request = task_resources(device, settings)
        check_request(request, cluster, [node["Resources"] for node in ray.nodes() if node["Alive"]], unit=unit,
                      **hints)
        log(f"ray cluster: {describe({k: cluster.get(k, 0) for k in ('GPU', 'CPU')})}; "
            f"each {unit} on {device.type} with {describe(request)}")
        yield RayCluster(settings, device, request, log)
    finally:
        if started:
            ray.shutdown()
