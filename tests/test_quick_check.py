"""``quick-check`` and the attack end to end on a tiny phase: real ingestion (worker processes), then scoring."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import SUBMISSIONS, run_module, run_scoring
from unlearning_challenge.artifacts import read_family
from unlearning_challenge.config import dump_config, load_config
from unlearning_challenge.scoring.mia import family_mia


def quick_check(input_dir, out, submission, *extra):
    return run_module("unlearning_challenge", "quick-check", "--submission", submission, "--input-data", input_dir,
                      "--output", out, *extra)


def values(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines())


def test_quick_check_of_the_sample_prints_one_runs_numbers(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    done = quick_check(input_dir, tmp_path / "out", "starting_kit/sample_submission", "--no-time-limit")
    assert done.returncode == 0, done.stderr
    lines = values(done.stdout)
    assert lines["status"] == "ok"
    for key in ("retain_accuracy", "test_accuracy", "forget_accuracy", "mia_accuracy"):
        assert 0.0 <= float(lines[key]) <= 1.0
    assert float(lines["run_seconds"]) > 0 and float(lines["total_seconds"]) > 0
    assert lines["time_budget_seconds"].startswith("none (no time limit; the phase's budget on its reference machine")
    family = read_family(tmp_path / "out" / "unlearned.npz", expected_sha256=None, what="test")
    assert family.num_models == 1
    expected = family_mia(family.forget_losses, family.test_losses).mean
    assert float(lines["mia_accuracy"]) == pytest.approx(expected, abs=1e-6)


def test_quick_check_enforces_the_budget_by_default(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    done = quick_check(input_dir, tmp_path / "out", SUBMISSIONS / "do_nothing")
    lines = values(done.stdout)
    budget = float(lines["time_budget_seconds"])
    assert budget > 0 and lines["within_budget"] in ("yes", "no")
    assert (done.returncode == 0) == (lines["within_budget"] == "yes")
    # On a CPU the verdict compares the run's CPU seconds with the budget, as the ingestion does.
    assert lines["budget_clock"] == "cpu (the budget counts CPU seconds)"
    assert (float(lines["run_cpu_seconds"]) <= budget) == (lines["within_budget"] == "yes")


def test_quick_check_of_a_broken_submission_says_what_is_wrong(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    done = quick_check(input_dir, tmp_path / "out", SUBMISSIONS / "syntax_error", "--no-time-limit")
    lines = values(done.stdout)
    assert done.returncode == 1
    assert lines["status"] == "failed" and "SyntaxError" in lines["message"] and "(while importing" in lines["message"]
    assert "within_budget" not in lines
    assert "quick-check: the submission failed" in done.stderr


def test_quick_check_without_unlearning_py(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    (tmp_path / "empty").mkdir()
    done = quick_check(input_dir, tmp_path / "out", tmp_path / "empty")
    assert done.returncode == 1
    assert "the submission has no unlearning.py at its root" in values(done.stdout)["message"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    refused = quick_check(input_dir, taken, "starting_kit/sample_submission")
    assert refused.returncode == 2 and "output folder" in refused.stderr and "is not empty" in refused.stderr


def test_scoring_reports_the_attack_and_the_phase_chooses_the_bounds(tiny_phase, ingested, tmp_path):
    _, reference_dir, _ = tiny_phase
    ingest, res = ingested(SUBMISSIONS / "do_nothing", "--num-models", "2")  # test_pipeline scores it too
    assert ingest.returncode == 0, ingest.stderr
    family = read_family(res / "unlearned.npz", expected_sha256=None, what="test")
    assert family.forget_losses.shape == (2, family.forget_logits.shape[1]) and family.test_losses.shape[0] == 2
    assert family.forget_losses.dtype == np.float32 and np.all(family.forget_losses >= 0)

    scored = run_scoring("--res", res, "--ref", reference_dir, "--output", tmp_path / "s1", "--num-models", "2")
    assert scored.returncode == 0, scored.stderr
    lines = values((tmp_path / "s1" / "scores.txt").read_text())
    assert float(lines["mia_accuracy"]) == pytest.approx(family_mia(family.forget_losses, family.test_losses).mean,
                                                         abs=1e-6)
    scores = json.loads((tmp_path / "s1" / "scores.json").read_text())
    assert scores["bounds"] == "empirical" and scores["forget_quality"] == scores["forget_quality_empirical"]
    assert "Membership inference" in (tmp_path / "s1" / "detailed_results.html").read_text()

    ref = tmp_path / "ref"
    shutil.copytree(reference_dir, ref)
    config = load_config(ref / "phase.yaml")
    text = dump_config(config).replace("bounds: empirical", "bounds: clopper-pearson")
    (ref / "phase.yaml").write_text(text)
    scored = run_scoring("--res", res, "--ref", ref, "--output", tmp_path / "s2", "--num-models", "2")
    assert scored.returncode == 0, scored.stderr
    bounded = json.loads((tmp_path / "s2" / "scores.json").read_text())
    assert bounded["bounds"] == "clopper-pearson"
    assert bounded["forget_quality"] == bounded["forget_quality_clopper_pearson"] >= scores["forget_quality"]
