"""The ray backend on a real Ray cluster (two worker nodes of 1 CPU, no GPU) with a tiny phase of 2 models."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray
import torch
from ray.cluster_utils import Cluster

from conftest import ROOT, remove_the_node_running, run_module, tiny_config
from unlearning_challenge.config import dump_config
from unlearning_challenge.reference.generate import generate_reference, prepare_data
from unlearning_challenge.reference.ray_tasks import ClusterError, RaySettings, check_request, ray_cluster, runtime_env
from unlearning_challenge.reference.work import WorkFolder

# One torch thread in both backends: CPU training results depend on the thread count.
_TINY = tiny_config(num_models=2)
CONFIG = replace(_TINY, training=replace(_TINY.training, cpu_threads=1))


@pytest.fixture(scope="module")
def nodes():
    """A cluster for this module: a head with no CPUs and two worker nodes of 1 CPU (no GPU)."""
    threads = torch.get_num_threads()
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", ray_tmp)
        patch.delenv("RAY_ADDRESS", raising=False)
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(2):
                nodes.add_node(num_cpus=1)
            nodes.wait_for_nodes()
            ray.init(address=nodes.address, runtime_env=runtime_env())
            yield nodes
        finally:
            ray.shutdown()
            nodes.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster(nodes):
    """The module's cluster's address."""
    return nodes.address


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The phase made by the local backend: its root (work/, input_data/, reference_data/)."""
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("local")
    generate_reference(CONFIG, work_dir=root / "work", input_dir=root / "input_data",
                       reference_dir=root / "reference_data", device=torch.device("cpu"), log=lambda _: None)
    torch.set_num_threads(threads)
    return root


def _generate(root: Path, lines: list[str], **kwargs):
    return generate_reference(CONFIG, work_dir=root / "work", input_dir=root / "input_data",
                              reference_dir=root / "reference_data", device=torch.device("cpu"), backend="ray",
                              log=lines.append, **kwargs)


def _assert_same_reference(root: Path, local: Path) -> None:
    """Same data, original model and reference arrays; only the training seconds differ."""
    with np.load(root / "reference_data" / "reference.npz") as ray_arrays, \
            np.load(local / "reference_data" / "reference.npz") as local_arrays:
        assert sorted(ray_arrays.files) == sorted(local_arrays.files)
        for key in ray_arrays.files:
            if key != "seconds":
                np.testing.assert_array_equal(ray_arrays[key], local_arrays[key], err_msg=key)
    for name in ("dataset.npz", "original.safetensors"):
        assert (root / "input_data" / name).read_bytes() == (local / "input_data" / name).read_bytes(), name


def _copy_original(local: Path, root: Path) -> WorkFolder:
    """A work folder holding the local run's data and original model, but no retrained model."""
    shutil.copytree(local / "work", root / "work", ignore=shutil.ignore_patterns("retrained"))
    return WorkFolder(root / "work")


@pytest.mark.ray
@pytest.mark.training
def test_a_ray_shard_then_a_ray_run_that_loses_a_node_give_the_local_backends_arrays(nodes, local_reference,
                                                                                      tmp_path):
    lines = []
    assert _generate(tmp_path, lines, shard=(0, 2)) is None
    assert "ray cluster: 0 GPUs and 2 CPUs; each model on cpu with 1 CPU" in lines
    assert "1 retrained model(s) to train in this shard" in lines
    assert "ray: 2 model(s) submitted" in lines  # shard 0 also trains the original model
    assert "other shards still have models to train; run with --assemble-only when they are done" in lines
    lines.clear()
    removed = []  # the node training the missing model, removed (not gracefully) while it trains
    trains = lambda process: bool(_running_tasks([process]))  # noqa: E731
    remover = threading.Thread(target=remove_the_node_running, args=(nodes, trains, removed, 300), daemon=True)
    remover.start()
    try:
        assert _generate(tmp_path, lines) is not None
        remover.join(timeout=10)
        assert len(removed) == 1, lines
        assert "1 retrained model(s) to train in this shard" in lines  # resumed: only seed 1 was missing
        assert "ray: 1 model(s) submitted" in lines
        _assert_same_reference(tmp_path, local_reference)  # the lost model trained again on the other node
    finally:
        if removed:
            nodes.add_node(num_cpus=1)  # the module's other tests keep two nodes
            nodes.wait_for_nodes()


@pytest.mark.ray
@pytest.mark.training
def test_a_failed_model_names_its_seed_and_traceback_while_the_others_finish(cluster, local_reference, tmp_path):
    work = _copy_original(local_reference, tmp_path)
    _, _, fingerprint = prepare_data(CONFIG, work)
    # Seed 1's file cannot be written: a folder stands at its path.
    work.retrained(1).mkdir(parents=True)
    lines = []
    with ray_cluster(RaySettings(), lines.append) as joined, pytest.raises(ClusterError) as failure:
        joined.train(CONFIG, work.root, fingerprint, [0, 1])
    assert str(failure.value) == (
        "1 of 2 model(s) failed (retrained model seed 1; tracebacks above); the others are saved in "
        f"{work.root.resolve()}: run the same command again to train only the missing ones")
    report = next(line for line in lines if line.startswith("retrained model seed 1 failed; the other models go on:"))
    assert "ray::seed 1()" in report and ", in write_npz\n" in report  # the task's traceback
    assert "IsADirectoryError: [Errno 21] Is a directory" in report and "seed_00001.npz" in report
    assert work.retrained(0).is_file()

    work.retrained(1).rmdir()
    lines = []
    assert _generate(tmp_path, lines) is not None
    assert "1 retrained model(s) to train in this shard" in lines
    _assert_same_reference(tmp_path, local_reference)


@pytest.mark.ray
def test_a_gpu_request_on_a_cluster_without_gpus_is_refused_at_once(cluster, tmp_path):
    (tmp_path / "tiny.yaml").write_text(dump_config(CONFIG))
    start = time.monotonic()
    result = run_module("unlearning_challenge", "reference", "--config", tmp_path / "tiny.yaml",
                        "--work", tmp_path / "work", "--backend", "ray", "--device", "cuda",
                        "--ray-address", cluster, timeout=180)
    assert result.returncode == 2, result.stderr
    assert ("reference: each model asks 1 GPU and 1 CPU; the cluster has 0 GPUs and 2 CPUs: pass --device cpu "
            "or join a cluster with GPUs (--ray-address)") in result.stderr
    assert not (tmp_path / "work").exists()  # refused before any work
    print(f"refused after {time.monotonic() - start:.1f} s (python start-up and joining the cluster included)")


@pytest.mark.parametrize("request_, cluster_, nodes, message", [
    ({"CPU": 4}, {"CPU": 2}, [{"CPU": 2}],
     "each model asks 4 CPUs; the cluster has 0 GPUs and 2 CPUs: lower --cpus-per-model or join a larger "
     "cluster (--ray-address)"),
    ({"CPU": 1, "GPU": 0.5}, {"CPU": 8}, [{"CPU": 8}],
     "each model asks 0.5 GPU and 1 CPU; the cluster has 0 GPUs and 8 CPUs: pass --device cpu or join a cluster "
     "with GPUs (--ray-address)"),
    ({"CPU": 3}, {"CPU": 4}, [{"CPU": 2}, {"CPU": 2}],
     "each model asks 3 CPUs; the cluster has 0 GPUs and 4 CPUs but no single node has that much (the largest "
     "has 2 CPUs): lower --gpus-per-model or --cpus-per-model"),
])
def test_requests_no_node_can_meet(request_, cluster_, nodes, message):
    with pytest.raises(ClusterError) as refused:
        check_request(request_, cluster_, nodes)
    assert str(refused.value) == message


def test_requests_some_node_can_meet():
    check_request({"CPU": 1, "GPU": 0.25}, {"CPU": 4, "GPU": 2}, [{"CPU": 2}, {"CPU": 2, "GPU": 2}])


@pytest.mark.parametrize("settings, message", [
    (dict(gpus_per_model=1.5), "--gpus-per-model must be a fraction in (0, 1] or a whole number, got 1.5"),
    (dict(gpus_per_model=0), "--gpus-per-model must be a fraction in (0, 1] or a whole number, got 0"),
    (dict(cpus_per_model=0), "--cpus-per-model must be positive, got 0"),
    (dict(memory_per_model=-1), "--memory-per-model must be a positive number of GiB, got -1"),
    (dict(device="mps"), "the ray backend trains on 'cuda' or 'cpu', got --device 'mps'"),
])
def test_bad_ray_settings(settings, message):
    with pytest.raises(ValueError) as bad:
        RaySettings(**settings)
    assert str(bad.value) == message


def _running_tasks(processes: list[psutil.Process]) -> list[str]:
    """Titles of the Ray workers that run a model (Ray names a busy worker ``ray::<task name>``)."""
    titles = []
    for process in processes:
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if title.startswith(("ray::seed", "ray::original")):
            titles.append(title)
    return titles


@pytest.mark.ray
@pytest.mark.training
def test_ctrl_c_stops_the_tasks_and_the_local_cluster(tmp_path):
    # Enough models that some are still unfinished when the signal lands, however fast the machine.
    config = replace(CONFIG, reference=replace(CONFIG.reference, num_models=8))
    (tmp_path / "tiny.yaml").write_text(dump_config(config))
    # Its own temporary folder, so that it starts its own cluster instead of joining this module's.
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay short
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": ray_tmp}
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "unlearning_challenge", "reference", "--config", str(tmp_path / "tiny.yaml"),
             "--work", str(tmp_path / "work"), "--backend", "ray",
             # never the repository's committed folders, even if the run were to finish
             "--input-data", str(tmp_path / "input_data"), "--reference-data", str(tmp_path / "reference_data")],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            # Ctrl-C as in a terminal, even when the suite runs in the background (a non-interactive
            # shell starts background jobs with SIGINT ignored, and children inherit that)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while not _running_tasks(spawned := psutil.Process(process.pid).children(recursive=True)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert re.search(r"interrupted: cancelling [1-9] unfinished model\(s\); the finished ones stay in the work folder",
                     text), text
    assert "reference: interrupted; the finished models stay in" in text
    _, alive = psutil.wait_procs(spawned, timeout=30)  # the cluster and its workers, tasks included
    assert not alive, [" ".join(p.cmdline()[:2]) for p in alive]
    shutil.rmtree(ray_tmp, ignore_errors=True)
