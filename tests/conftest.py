"""Shared fixtures (a tiny phase built once per session) and the markers that make the test tiers.

Each test is marked by what it needs (pyproject.toml registers the markers):

- ``ingestion``: runs a submission through the ingestion program (a subprocess, or a ``RunSession``, fork server
  or worker in the test process) or scores one with the scoring program as a subprocess;
- ``training``: trains models for a phase or a reference (every test using the ``tiny_phase`` fixture, which
  generates a phase by training);
- ``ray``: starts or joins a Ray cluster;
- ``docker``: needs a docker engine.

They come from three places: ``FIXTURE_MARKERS`` (a test using one of those fixtures, directly or through
another fixture, gets its markers), ``MODULE_MARKERS`` (every test of the module) and, where only some tests
of a module need them, ``@pytest.mark.<name>`` in the module itself. A tier is a marker expression:
``make test-fast`` runs ``-m "not ingestion and not training and not ray and not docker"``, ``make test``
runs everything.

Both run on several pytest-xdist workers. The tests of a module in ``SHARED_WORKER`` run on one worker:
they share a module-scoped fixture (collection checks that every such module is listed), or start Ray
clusters (a group named ``ray-...``: one cluster at a time within it, each with its own temporary folder,
so two groups' clusters can run side by side). Every other test goes to whichever worker is free.
The session fixtures (the tiny phase, the ``ingested`` outputs) are built once for all workers, under a
file lock in the run's shared temporary folder, and each worker's torch threads are its share of the cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from unlearning_challenge.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"

# Each xdist worker's share of the cores, for the torch threads of its tests and of the programs they
# start (OMP_NUM_THREADS passes through to the workers): more threads than cores would make them spin
# against each other. Set before any test module imports torch.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# A test using one of these fixtures (directly or through another fixture) gets these markers.
FIXTURE_MARKERS = {
    "tiny_phase": ("training",),
    "ingested": ("ingestion",),
}
# Markers of the tests that take seconds each (pyproject.toml declares them).
SLOW_MARKERS = ("ingestion", "training", "ray", "docker")
# The tests of these modules run on one xdist worker, together with the other modules of the same group.
SHARED_WORKER = {
    "test_baselines": "test_baselines",
    "test_bundle_emulation": "test_bundle_emulation",
    "test_data_splits": "test_data_splits",
    "test_data_synthetic": "test_data_synthetic",
    "test_docker_e2e": "test_docker_e2e",
    "test_privacy": "test_privacy",
    "test_report": "test_report",
    "test_scoring_fuzz": "test_scoring_fuzz",
    "test_step_deadline": "test_step_deadline",
    "test_evaluate": "ray-evaluate",
    "test_reference_ray": "ray-reference",
}
# Every test of these modules gets these markers.
MODULE_MARKERS = {
    "test_pipeline": ("ingestion",),  # ingestion and scoring programs on the tiny phase
    "test_hostile": ("ingestion",),  # hostile submissions through the ingestion program
    "test_quick_check": ("ingestion",),  # the quick-check command and the scoring program
    "test_scoring_fuzz": ("ingestion",),  # one ingestion, then the scoring program on mutated copies
    "test_bundle_emulation": ("ingestion",),  # both platforms' workers running the bundled programs
    "test_walkthrough": ("ingestion",),  # the notebook runs an ingestion on the Check phase
    "test_orphans": ("ingestion",),  # ingestion and evaluate killed while a run loops
    "test_docker_e2e": ("docker",),
}


def pytest_collection_modifyitems(config, items):
    for name in [*MODULE_MARKERS, *SHARED_WORKER]:
        if not (Path(__file__).parent / f"{name}.py").is_file():
            raise pytest.UsageError(f"tests/conftest.py names {name}.py, which does not exist")
    for item in items:
        markers = set(MODULE_MARKERS.get(item.path.stem, ()))
        for fixture in getattr(item, "fixturenames", ()):
            markers.update(FIXTURE_MARKERS.get(fixture, ()))
        for marker in sorted(markers):
            item.add_marker(marker)
        check_shared_worker(item)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The scheduler below hands out the tests of no group in this order once the groups are out: the
        # slowest first (marked slow, then those running a program, a training or a cluster), so that the
        # workers end together, evened out by the quick ones. A stable sort: a module's tests keep their order.
        items.sort(key=lambda item: (item.get_closest_marker("slow") is None,
                                     not any(item.get_closest_marker(name) for name in SLOW_MARKERS)))


def check_shared_worker(item) -> None:
    """A test using a module-scoped fixture, or starting Ray, must be in a module of ``SHARED_WORKER``."""
    module = item.path.stem
    definitions = getattr(item, "_fixtureinfo", None)
    for name, defs in (definitions.name2fixturedefs.items() if definitions else ()):
        if defs and defs[-1].scope == "module" and module not in SHARED_WORKER:
            raise pytest.UsageError(f"tests/conftest.py: {item.nodeid} uses the module-scoped fixture {name!r}; "
                                    f"add {module!r} to SHARED_WORKER so that its tests share one xdist worker")
    if item.get_closest_marker("ray") and not SHARED_WORKER.get(module, "").startswith("ray"):
        raise pytest.UsageError(f"tests/conftest.py: {item.nodeid} starts Ray; add {module!r} to SHARED_WORKER "
                                f"in a group named 'ray-...'")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    """Load balancing test by test, except that the modules of one ``SHARED_WORKER`` group go to one worker
    (largest groups first)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_WORKER.get(Path(nodeid.split("::", 1)[0]).stem, nodeid)

    return SharedWorkerScheduling(config, log)


def shared_folder(tmp_path_factory, name: str) -> Path:
    """A folder of this test run that every xdist worker sees (each worker's temporary folder is below
    the run's; without xdist, the run's own)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / name


def built_once(folder: Path, build) -> Path:
    """``build(folder)`` by the first worker to get here; the others wait for it and reuse the result."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder / ".built"
        if not done.exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            done.touch()
    return folder


def tiny_config(num_models: int = 3):
    """The default phase shrunk: 16x16 images, 60 persons, 2 epochs at a higher learning rate
    (so that even these tiny models beat chance on the test set), N models."""
    config = load_config(ROOT / "phases" / "default.yaml")
    return replace(
        config,
        name="tiny",
        dataset=replace(config.dataset, num_persons=60, image_size=16),
        training=replace(config.training, epochs=2, lr=1e-3),
        reference=replace(config.reference, num_models=num_models),
        model=replace(config.model, checkpoint_dtype="float32"),
    )


@pytest.fixture(scope="session")
def tiny_phase(tmp_path_factory):
    """(input_dir, reference_dir, config) of a tiny phase generated once."""
    from unlearning_challenge.reference.models import pick_device
    from unlearning_challenge.reference.generate import generate_reference

    config = tiny_config()

    def build(root: Path) -> None:
        generate_reference(
            config, work_dir=root / "work", input_dir=root / "input_data", reference_dir=root / "reference_data",
            device=pick_device("cpu"), log=lambda _: None,
        )

    root = built_once(shared_folder(tmp_path_factory, "tiny_phase"), build)
    return root / "input_data", root / "reference_data", config


@pytest.fixture(scope="session")
def ingested(tiny_phase, tmp_path_factory):
    """``ingested(submission, *args)``: (the finished process, its output folder) of the ingestion program
    on the tiny phase with no time limit, run once a test run (for all workers) for each submission and
    arguments. Several tests read the same output; one that changes it works on a copy."""

    def ingest(submission, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
        argv = ["--input", str(tiny_phase[0]), "--submission", str(submission), "--no-time-limit", *map(str, args)]
        name = "ingested-" + hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]

        def build(folder: Path) -> None:
            done = run_module("unlearning_challenge.ingestion", *argv, "--output", folder / "res")
            (folder / "process.json").write_text(json.dumps([done.returncode, done.stdout, done.stderr]))

        folder = built_once(shared_folder(tmp_path_factory, name), build)
        code, stdout, stderr = json.loads((folder / "process.json").read_text())
        command = [sys.executable, "-m", "unlearning_challenge.ingestion", *argv, "--output", str(folder / "res")]
        return subprocess.CompletedProcess(command, code, stdout, stderr), folder / "res"

    return ingest


def with_phase_settings(folder: Path, target: Path, section: str = "ingestion", **settings) -> Path:
    """A copy of ``folder`` (input or reference data) whose phase has these settings in ``section``."""
    shutil.copytree(folder, target)
    phase = yaml.safe_load((target / "phase.yaml").read_text())
    phase[section].update(settings)
    (target / "phase.yaml").write_text(yaml.safe_dump(phase))
    return target


def run_module(module: str, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )


def run_scoring(*args: str) -> subprocess.CompletedProcess:
    """The scoring program's ``main(args)`` in this process, its exit status and output as ``run_module``
    gives them: a scoring of a few seconds then costs no new Python importing torch. Its command line as a
    subprocess is run by test_pipeline's end-to-end test, test_bundle_emulation and the walkthrough."""
    from unlearning_challenge.scoring.program import main

    argv = [*map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["unlearning_challenge.scoring", *argv], code, out.getvalue(), err.getvalue())


def remove_the_node_running(cluster, busy, removed: list, timeout: float = 600) -> None:
    """Remove, not gracefully, the first worker node of ``cluster`` (a ``ray.cluster_utils.Cluster``) seen
    running a process ``busy(process)`` accepts, and append it to ``removed`` (for a thread)."""
    import psutil

    raylets = {node.all_processes["raylet"][0].process.pid: node for node in cluster.worker_nodes}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in psutil.process_iter():
            try:
                if busy(process):
                    node = next((raylets[p.pid] for p in process.parents() if p.pid in raylets), None)
                    if node is not None:
                        cluster.remove_node(node, allow_graceful=False)
                        removed.append(node)
                        return
            except psutil.Error:
                pass
        time.sleep(0.02)
