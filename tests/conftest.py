"""Shared fixtures: a tiny phase (small images, few models, one epoch) built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from unlearning_challenge.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


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


def run_module(module: str, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )
