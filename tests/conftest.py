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
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from unlearning_challenge.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"

# A test using one of these fixtures (directly or through another fixture) gets these markers.
FIXTURE_MARKERS = {
    "tiny_phase": ("training",),
    "ingested": ("ingestion",),
}
# Every test of these modules gets these markers.
MODULE_MARKERS = {
    "test_pipeline": ("ingestion",),  # ingestion and scoring programs on the tiny phase
    "test_hostile": ("ingestion",),  # hostile submissions through the ingestion program
    "test_quick_check": ("ingestion",),  # the quick-check command and the scoring program
    "test_scoring_fuzz": ("ingestion",),  # one ingestion, then the scoring program on mutated copies
    "test_bundle_emulation": ("ingestion",),  # both platforms' workers running the bundled programs
    "test_walkthrough": ("ingestion",),  # the notebook runs an ingestion on the Check phase
    "test_docker_e2e": ("docker",),
}


def pytest_collection_modifyitems(config, items):
    for name in MODULE_MARKERS:
        if not (Path(__file__).parent / f"{name}.py").is_file():
            raise pytest.UsageError(f"tests/conftest.py: MODULE_MARKERS names {name}.py, which does not exist")
    for item in items:
        markers = set(MODULE_MARKERS.get(item.path.stem, ()))
        for fixture in getattr(item, "fixturenames", ()):
            markers.update(FIXTURE_MARKERS.get(fixture, ()))
        for marker in sorted(markers):
            item.add_marker(marker)


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

    root = tmp_path_factory.mktemp("tiny_phase")
    config = tiny_config()
    generate_reference(
        config, work_dir=root / "work", input_dir=root / "input_data", reference_dir=root / "reference_data",
        device=pick_device("cpu"), log=lambda _: None,
    )
    return root / "input_data", root / "reference_data", config


@pytest.fixture(scope="session")
def ingested(tiny_phase, tmp_path_factory):
    """``ingested(submission, *args)``: (the finished process, its output folder) of the ingestion program
    on the tiny phase with no time limit, run once a session for each submission and arguments. Several tests
    read the same output; one that changes it works on a copy."""
    done = {}

    def ingest(submission, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
        key = (str(submission), *map(str, args))
        if key not in done:
            out = tmp_path_factory.mktemp("ingested") / "res"
            done[key] = run_module("unlearning_challenge.ingestion", "--input", tiny_phase[0], "--output", out,
                                   "--submission", submission, "--no-time-limit", *args), out
        return done[key]

    return ingest


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
