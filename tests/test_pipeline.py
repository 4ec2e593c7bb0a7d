"""End to end on a tiny phase: reference generation, ingestion (real worker processes), scoring."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from conftest import SUBMISSIONS, run_module, run_scoring
from unlearning_challenge.artifacts import read_family, read_manifest, INPUT_FORMAT, REFERENCE_FORMAT
from unlearning_challenge.reference.generate import generate_reference


def ingest(input_dir, out, submission, *extra):
    """Ingestion with no time limit unless a test gives a --time-budget (the tiny phase's
    budget is a fraction of a second)."""
    if "--time-budget" not in extra and "--no-time-limit" not in extra:
        extra = (*extra, "--no-time-limit")
    return run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", out,
                      "--submission", submission, *extra)


def score(res, ref, out, *extra):
    """The scoring program, in this process (``run_scoring``)."""
    return run_scoring("--res", res, "--ref", ref, "--output", out, *extra)


def test_reference_folders_are_consistent(tiny_phase):
    input_dir, reference_dir, config = tiny_phase
    inp = read_manifest(input_dir, expected_format=INPUT_FORMAT, what="input")
    ref = read_manifest(reference_dir, expected_format=REFERENCE_FORMAT, what="ref")
    assert inp["split_fingerprint"] == ref["split_fingerprint"]
    assert inp["num_models"] == ref["num_models"] == config.reference.num_models
    assert inp["time_budget_seconds"] == pytest.approx(0.2 * ref["mean_retrain_seconds"])
    family = read_family(reference_dir / "reference.npz", expected_sha256=ref["arrays_sha256"], what="ref")
    assert family.forget_logits.shape == (3, ref["num_forget"], 10)
    assert list(family.seeds) == [0, 1, 2]
    assert np.all(family.seconds > 0)
    # Distinct seeds give distinct models.
    assert not np.array_equal(family.forget_logits[0], family.forget_logits[1])


def test_reference_generation_resumes_without_retraining(tiny_phase, tmp_path):
    input_dir, reference_dir, config = tiny_phase
    work = input_dir.parent / "work"
    lines = []
    generate_reference(config, work_dir=work, input_dir=tmp_path / "i", reference_dir=tmp_path / "r", log=lines.append)
    assert "0 retrained model(s) to train in this shard" in lines
    assert (tmp_path / "r" / "reference.npz").read_bytes() == (reference_dir / "reference.npz").read_bytes()


def test_a_finished_reference_grows_by_training_only_the_new_seeds(tiny_phase, tmp_path):
    input_dir, reference_dir, config = tiny_phase
    work = tmp_path / "work"
    shutil.copytree(input_dir.parent / "work", work)
    bigger = replace(config, reference=replace(config.reference, num_models=4))
    lines = []
    generate_reference(bigger, work_dir=work, input_dir=tmp_path / "i", reference_dir=tmp_path / "r", log=lines.append)
    assert "1 retrained model(s) to train in this shard" in lines
    grown = read_family(tmp_path / "r" / "reference.npz", expected_sha256=None, what="grown")
    before = read_family(reference_dir / "reference.npz", expected_sha256=None, what="before")
    assert list(grown.seeds) == [0, 1, 2, 3]
    np.testing.assert_array_equal(grown.forget_logits[:3], before.forget_logits)
    assert (tmp_path / "i" / "original.safetensors").read_bytes() == (input_dir / "original.safetensors").read_bytes()


def test_sample_submission_end_to_end(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    done = ingest(input_dir, tmp_path / "res", "starting_kit/sample_submission", "--no-time-limit")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    assert manifest["status"] == "ok"
    assert [r["seed"] for r in manifest["runs"]] == [1_000_000, 1_000_001, 1_000_002]
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in manifest["runs"])
    assert not (tmp_path / "res" / "metadata").exists()
    scored = run_module("unlearning_challenge.scoring", "--res", tmp_path / "res", "--ref", reference_dir,
                        "--output", tmp_path / "scores")  # the program's command line, as the platforms run it
    assert scored.returncode == 0, scored.stderr
    lines = dict(line.split(": ") for line in (tmp_path / "scores" / "scores.txt").read_text().splitlines())
    for key in ("score", "forget_quality", "retain_accuracy_ratio", "test_accuracy_ratio", "mean_run_seconds"):
        float(lines[key])
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert 0 <= scores["forget_quality"] <= 1
    # Both sides kept their logits on the same retain and validation samples: F and KLoM on them are reported.
    assert scores["samples_unavailable"] is None
    assert 0 <= scores["forget_quality_retain_sample"] <= 1 and scores["klom_validation_p95"] >= 0
    assert (tmp_path / "scores" / "detailed_results.html").is_file()


def test_unchanged_model_scores_zero(tiny_phase, ingested, tmp_path):
    _, reference_dir, _ = tiny_phase
    done, res = ingested(SUBMISSIONS / "do_nothing")
    assert done.returncode == 0, done.stderr
    scored = score(res, reference_dir, tmp_path / "scores")
    assert scored.returncode == 0, scored.stderr
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert scores["forget_quality"] == 0.0 and scores["score"] == 0.0


def test_in_place_update_without_return_is_accepted(ingested):
    done, _ = ingested(SUBMISSIONS / "in_place_no_return")  # test_scoring_fuzz scores this output
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "name, status, message",
    [
        ("syntax_error", "crashed", "SyntaxError"),
        ("no_function", "crashed", "defines no function named 'unlearning'"),
        ("wrong_return", "bad_output", "unlearning returned a tuple; return the model"),
        ("other_architecture", "bad_output", "is not a ResNet-18 with 10 classes"),
        ("nan_weights", "bad_output", "NaN or infinite weights"),
        ("exits_process", "crashed", "ended without finishing the run (exit code 7)"),
    ],
)
def test_broken_submissions_fail_with_a_clear_message(tiny_phase, tmp_path, name, status, message):
    input_dir, reference_dir, _ = tiny_phase
    done = ingest(input_dir, tmp_path / "res", SUBMISSIONS / name)
    assert done.returncode == 1
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["runs"][0]["status"] == status
    assert message in manifest["message"]
    assert not (tmp_path / "res" / "unlearned.npz").exists()
    scored = score(tmp_path / "res", reference_dir, tmp_path / "scores")
    assert scored.returncode == 1
    assert "the submission failed during ingestion" in scored.stderr and message in scored.stderr


def test_failure_in_a_later_run_stops_the_submission(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    done = ingest(input_dir, tmp_path / "res", SUBMISSIONS / "raises_on_second_run")
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    assert done.returncode == 1
    assert [r["status"] for r in manifest["runs"]] == ["ok", "crashed"]
    assert "deliberate failure in the second run" in manifest["runs"][1]["traceback_tail"]
    assert manifest["message"].startswith("run 1 (seed 1000001) crashed")


def test_cpu_budget_counts_cpu_time_not_waiting(tiny_phase, tmp_path):
    """On a CPU the budget counts CPU seconds: a run that waits 3 s uses almost none of a 1.5 s budget."""
    input_dir, _, _ = tiny_phase
    done = ingest(input_dir, tmp_path / "res", SUBMISSIONS / "sleeps", "--time-budget", "1.5")
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    run = manifest["runs"][0]
    assert done.returncode == 0, done.stderr
    assert run["status"] == "ok" and run["seconds"] >= 3.0 and run["cpu_seconds"] < 1.0


def test_hard_limits_kill_the_worker(tiny_phase, tmp_path):
    """CPU hard limit: 3 x the budget in CPU seconds; wall hard limit: 3 x that in seconds."""
    input_dir, _, _ = tiny_phase
    done = ingest(input_dir, tmp_path / "cpu", SUBMISSIONS / "busy", "--time-budget", "0.3")
    run = json.loads((tmp_path / "cpu" / "ingestion.json").read_text())["runs"][0]
    assert done.returncode == 1 and run["status"] == "timeout"
    assert "past the hard limit of 0.9 CPU seconds per run" in run["message"]
    assert 0.9 <= run["cpu_seconds"] < 2.5
    done = ingest(input_dir, tmp_path / "wall", SUBMISSIONS / "sleeps", "--time-budget", "0.2")
    run = json.loads((tmp_path / "wall" / "ingestion.json").read_text())["runs"][0]
    assert done.returncode == 1 and run["status"] == "timeout"
    assert "past the hard limit of 1.8 s per run" in run["message"]
    assert 1.8 <= run["seconds"] < 2.9


def test_missing_submission_file(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    (tmp_path / "empty").mkdir()
    done = ingest(input_dir, tmp_path / "res", tmp_path / "empty")
    assert done.returncode == 2
    assert "the submission has no unlearning.py at its root" in done.stderr


def test_quick_check_uses_first_models_on_both_sides(tiny_phase, ingested, tmp_path):
    _, reference_dir, _ = tiny_phase
    done, res = ingested(SUBMISSIONS / "do_nothing", "--num-models", "2")
    assert done.returncode == 0, done.stderr
    refused = score(res, reference_dir, tmp_path / "s1")
    assert refused.returncode == 1
    assert "number of models differs: ingestion output has 2, reference data has 3" in refused.stderr
    quick = score(res, reference_dir, tmp_path / "s2", "--num-models", "2")
    assert quick.returncode == 0, quick.stderr
    assert "quick check: scoring the first 2 models" in quick.stderr
    _, full = ingested(SUBMISSIONS / "do_nothing")
    every = score(full, reference_dir, tmp_path / "s3", "--num-models", "3")  # all N: the full score
    assert every.returncode == 0 and "quick check" not in every.stderr, every.stderr
    assert json.loads((tmp_path / "s3" / "scores.json").read_text())["quick_check"] is False


def test_scoring_refuses_missing_corrupt_or_mismatched_inputs(tiny_phase, ingested, tmp_path):
    _, reference_dir, _ = tiny_phase
    done, shared = ingested(SUBMISSIONS / "do_nothing")
    assert done.returncode == 0, done.stderr
    missing = score(tmp_path / "nothing", reference_dir, tmp_path / "s0")
    assert missing.returncode == 1 and "the ingestion output is missing" in missing.stderr

    res = tmp_path / "res"
    shutil.copytree(shared, res)  # changed below
    data = (res / "unlearned.npz").read_bytes()
    (res / "unlearned.npz").write_bytes(data[: len(data) // 2])
    truncated = score(res, reference_dir, tmp_path / "s1")
    assert truncated.returncode == 1 and "does not match the checksum in its manifest" in truncated.stderr
    (res / "unlearned.npz").write_bytes(data)

    ref = tmp_path / "ref"
    shutil.copytree(reference_dir, ref)
    manifest = json.loads((ref / "manifest.json").read_text())
    manifest["split_fingerprint"] = "0" * 64
    (ref / "manifest.json").write_text(json.dumps(manifest))
    mismatched = score(res, ref, tmp_path / "s2")
    assert mismatched.returncode == 1 and "split fingerprint differs" in mismatched.stderr


def test_unwritable_output_folder_is_refused_before_any_run(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    (tmp_path / "a_file").write_text("not a folder")
    done = ingest(input_dir, tmp_path / "a_file" / "res", SUBMISSIONS / "do_nothing")
    assert done.returncode == 2
    assert f"cannot write the output folder {tmp_path / 'a_file' / 'res'}" in done.stderr
    assert "Run the programs as the folder's owner" in done.stderr
    assert "unlearning runs" not in done.stderr


def test_outputs_that_cannot_be_written_leave_a_failed_manifest(tiny_phase, tmp_path):
    input_dir, _, _ = tiny_phase
    (tmp_path / "res" / "unlearned.npz").mkdir(parents=True)  # the arrays cannot replace a folder
    done = ingest(input_dir, tmp_path / "res", SUBMISSIONS / "do_nothing", "--num-models", "1")
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    assert done.returncode == 1
    assert manifest["status"] == "failed" and [r["status"] for r in manifest["runs"]] == ["ok"]
    assert manifest["message"].startswith("the runs completed but unlearned.npz could not be written to")
