"""The budget's speed factor: the step profile, the per-kind ratios and their quantile, the manifests
that record a profile and those that do not (the one-kind factor, as before), and the benchmark."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import ROOT
from unlearning_challenge import judged
from unlearning_challenge.artifacts import InputManifest, read_input_manifest, write_manifest
from unlearning_challenge.config import BudgetScaling, ModelConfig, TrainingConfig, load_config
from unlearning_challenge.reference import calibration
from unlearning_challenge.reference.calibration import (
    FACTOR_QUANTILE,
    Clock,
    anchored,
    calibration_profile,
    mean_profile,
    profile_record,
    record_profile,
    speed_factor,
    step_kinds,
)
from unlearning_challenge.reference.generate import anchored_profile

CPU = torch.device("cpu")


def _tiny_images(n: int = 20, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def test_the_kinds_are_named_by_their_batches_the_recipes_first():
    assert [kind.name for kind in step_kinds(64)] == ["train_64", "train_256", "eval_256", "forget_16"]
    assert [kind.mode for kind in step_kinds(64)] == ["train", "train", "eval", "ascent"]
    assert [kind.name for kind in step_kinds(2)] == ["train_2", "train_8", "eval_8", "forget_2"]


def test_profile_times_every_kind_on_the_clock_asked(monkeypatch):
    images, labels = _tiny_images()
    train = TrainingConfig(batch_size=4)
    profile = calibration_profile(images, labels, model_cfg=ModelConfig(), train_cfg=train, device=CPU,
                                  rounds=1, clock=Clock.CPU, min_seconds=0)
    assert list(profile) == ["train_4", "train_16", "eval_16", "forget_2"]
    assert all(seconds > 0 for seconds in profile.values())
    # a kind's batch is capped at the images given; the steps are interleaved, one warm-up step each first
    calls = []
    monkeypatch.setattr(calibration, "_step", lambda model, opt, crit, kind, x, y: calls.append((kind.name, len(x))))
    calibration_profile(images[:10], labels[:10], model_cfg=ModelConfig(), train_cfg=train, device=CPU, rounds=1,
                        min_seconds=0)
    assert calls == [("train_4", 4), ("train_16", 10), ("eval_16", 10), ("forget_2", 2),
                     ("train_4", 4), ("train_4", 4), ("train_16", 10), ("eval_16", 10), ("forget_2", 2),
                     ("forget_2", 2)]


def test_fast_steps_get_more_rounds(monkeypatch):
    """A GPU's steps take milliseconds: rounds go on until they add up to min_seconds, or the most rounds."""
    images, labels = _tiny_images()
    rounds = []
    monkeypatch.setattr(calibration, "_step", lambda model, opt, crit, kind, x, y: rounds.append(kind.name))
    calibration_profile(images, labels, model_cfg=ModelConfig(), train_cfg=TrainingConfig(batch_size=4), device=CPU,
                        rounds=2, min_seconds=60.0)
    assert rounds.count("train_16") == 1 + calibration.PROFILE_MAX_ROUNDS


def test_the_factor_is_the_quantile_of_the_kinds_ratios():
    there = {"train_64": 0.2, "train_256": 0.5, "eval_256": 0.1, "forget_16": 0.05}
    here = {"train_64": 0.3, "train_256": 1.0, "eval_256": 0.15, "forget_16": 0.06, "unknown_there": 9.0}
    factor, ratios = speed_factor(here, there)
    assert ratios == pytest.approx({"train_64": 1.5, "train_256": 2.0, "eval_256": 1.5, "forget_16": 1.2})
    assert FACTOR_QUANTILE == 1.0 and factor == pytest.approx(2.0)  # the largest: no kind under-budgeted
    assert speed_factor(here, there, quantile=0.5)[0] == pytest.approx(1.5)
    assert speed_factor({"train_64": 0.3}, there)[1] == pytest.approx({"train_64": 1.5})
    with pytest.raises(ValueError, match="no step kind in common"):
        speed_factor({"other": 1.0}, there)


def test_anchoring_keeps_the_proportions_and_sets_the_recipes_step():
    profile = anchored({"train_64": 0.3, "train_256": 0.9, "forget_16": 0.15}, "train_64", 0.2)
    assert profile == pytest.approx({"train_64": 0.2, "train_256": 0.6, "forget_16": 0.1})


def test_a_work_records_profile_round_trips_and_older_records_have_none(tmp_path):
    profile = {"train_64": 0.25, "train_256": 0.8}
    np.savez(tmp_path / "r.npz", seconds=np.array(1.0), **profile_record(profile))
    with np.load(tmp_path / "r.npz", allow_pickle=False) as f:
        assert record_profile({k: f[k] for k in f.files}) == pytest.approx(profile)
    assert record_profile({"seconds": np.array(1.0)}) is None
    assert mean_profile([profile, {"train_64": 0.35, "train_256": 1.0}]) == pytest.approx(
        {"train_64": 0.3, "train_256": 0.9})
    assert mean_profile([profile, None]) is None and mean_profile([profile, {"train_64": 1.0}]) is None


def test_the_reference_profile_is_anchored_to_the_recorded_recipe_step():
    config = load_config(ROOT / "phases" / "default.yaml")
    profiles = [{"train_64": 0.2, "train_256": 0.6}, {"train_64": 0.4, "train_256": 1.0}]
    assert anchored_profile(config, profiles, 0.15) == pytest.approx({"train_64": 0.15, "train_256": 0.4})
    assert anchored_profile(config, [profiles[0], None], 0.15) is None  # a record made before profiles
    assert anchored_profile(config, [{"train_256": 0.6}], 0.15) is None


def test_input_manifest_with_and_without_a_profile(tmp_path):
    committed = read_input_manifest(ROOT / "input_data")
    older = dataclasses.replace(committed, calibration_profile=None)
    write_manifest(tmp_path, older)
    assert "calibration_profile" not in json.loads((tmp_path / "manifest.json").read_text())
    assert read_input_manifest(tmp_path).calibration_profile is None
    newer = dataclasses.replace(committed, calibration_profile={"train_64": 0.2, "eval_256": 0.1})
    write_manifest(tmp_path, newer)
    assert read_input_manifest(tmp_path).calibration_profile == {"train_64": 0.2, "eval_256": 0.1}


def test_the_committed_profile_is_anchored_to_the_recorded_step():
    manifest = read_input_manifest(ROOT / "input_data")
    if manifest.calibration_profile is None:
        pytest.skip("the committed input data has no calibration profile")
    kinds = [kind.name for kind in step_kinds(64)]
    assert list(manifest.calibration_profile) == sorted(kinds)  # written with sorted keys
    assert manifest.calibration_profile["train_64"] == pytest.approx(manifest.calibration_step_seconds, rel=1e-12)


def _budget_inputs(profile: dict[str, float] | None) -> tuple:
    config = load_config(ROOT / "phases" / "default.yaml")
    manifest = InputManifest(phase="check", config_fingerprint="a", split_fingerprint="b", num_models=4,
                             mean_retrain_seconds=100.0, calibration_step_seconds=0.2, time_fraction=0.2,
                             time_budget_seconds=20.0, calibration_profile=profile)
    images, labels = _tiny_images()
    return config, manifest, SimpleNamespace(images=images, age_group=labels), SimpleNamespace(retain=np.arange(20))


def test_an_older_manifest_gets_the_one_kind_factor(monkeypatch):
    config, manifest, dataset, splits = _budget_inputs(None)
    monkeypatch.setattr(judged, "calibration_step_seconds", lambda *a, **k: 0.3)
    monkeypatch.setattr(calibration, "calibration_profile", lambda *a, **k: pytest.fail("no profile to compare"))
    budget, timing = judged.time_budget(config, manifest, dataset, splits, CPU)
    assert budget == pytest.approx(20.0 * 0.3 / 0.2)
    assert timing["speed_ratio"] == pytest.approx(1.5) and timing["calibration_step_seconds"] == 0.3
    assert "calibration_ratios" not in timing


def test_a_profile_scales_the_budget_by_the_largest_ratio_and_says_so(monkeypatch):
    there = {"train_64": 0.2, "train_256": 0.5, "eval_256": 0.1, "forget_16": 0.05}
    here = {"train_64": 0.3, "train_256": 1.0, "eval_256": 0.12, "forget_16": 0.06}
    config, manifest, dataset, splits = _budget_inputs(there)
    asked = {}
    monkeypatch.setattr(judged, "calibration_step_seconds", lambda *a, **k: pytest.fail("one kind only"))
    monkeypatch.setattr(calibration, "calibration_profile", lambda *a, **k: asked.update(k) or dict(here))
    budget, timing = judged.time_budget(config, manifest, dataset, splits, CPU)
    assert asked["clock"] is Clock.CPU
    assert budget == pytest.approx(20.0 * 2.0)
    assert timing["speed_ratio"] == pytest.approx(2.0) and timing["factor_quantile"] == FACTOR_QUANTILE
    assert timing["calibration_ratios"] == pytest.approx({"train_64": 1.5, "train_256": 2.0, "eval_256": 1.2,
                                                           "forget_16": 1.2})
    assert timing["calibration_profile"] == here and timing["reference_calibration_profile"] == there
    assert "train_256" in timing["explanation"] and "2.00" in timing["explanation"]
    json.dumps(timing)  # ingestion.json stores it as is
    # budget_scaling none and --no-time-limit are unchanged
    unscaled = dataclasses.replace(config.ingestion, budget_scaling=BudgetScaling.NONE)
    none = dataclasses.replace(config, ingestion=unscaled)
    assert judged.time_budget(none, manifest, dataset, splits, CPU)[0] == 20.0
    assert judged.time_budget(config, manifest, dataset, splits, CPU, no_time_limit=True)[0] is None


def test_the_benchmark_prints_its_table():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_calibration.py"), "--repeats", "1",
                           "--rounds", "1", "--loop-scale", "0.1", "--baseline-steps", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "machine:" in done.stdout and "factor over 1 calibrations" in done.stdout
    for kind in step_kinds(64):
        assert f"\n{kind.name} " in done.stdout
