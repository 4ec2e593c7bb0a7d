"""The platform's step time limit: the ingestion plans its runs against it, writes a partial output of the
runs that fit, and the scoring program scores it (a Check-like phase) or fails it (a Final-like one).

The end-to-end tests run on the tiny phase grown to N = 5 retrained models (two more trained here), with a
submission whose runs 0 to 3 return at once and whose run 4 waits far past any limit.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace

import pytest

from conftest import SUBMISSIONS, run_module, run_scoring, with_phase_settings
from unlearning_challenge.artifacts import ArtifactError, RunRecord, RunStatus
from unlearning_challenge.config import ParticipantOutput
from unlearning_challenge.deadline import (
    RESERVE_SECONDS,
    STEP_TIME_LIMIT_FILE,
    StepDeadline,
    partial_sentence,
    process_age_seconds,
    read_step_time_limit,
    write_step_time_limit,
)
from unlearning_challenge.ingestion import IngestionError, step_deadline
from unlearning_challenge.runner.disclosure import for_participants
from unlearning_challenge.runner.outcome import STEP_TIME_RAN_OUT

# --- the planner, on its own -------------------------------------------------------------------------------


def test_step_time_limit_file_round_trips_and_bad_files_are_refused(tmp_path):
    assert read_step_time_limit(tmp_path) is None
    write_step_time_limit(tmp_path, 600, "Check")
    assert read_step_time_limit(tmp_path) == 600
    data = json.loads((tmp_path / STEP_TIME_LIMIT_FILE).read_text())
    assert data["phase"] == "Check"
    for bad in ('{"format": "unlearning-challenge/step-time-limit", "execution_time_limit_seconds": 0}',
                '{"format": "other", "execution_time_limit_seconds": 600}',
                '{"format": "unlearning-challenge/step-time-limit", "execution_time_limit_seconds": true}'):
        (tmp_path / STEP_TIME_LIMIT_FILE).write_text(bad)
        with pytest.raises(ArtifactError, match="is not a step time limit .* rebuild the bundle with `make bundle`"):
            read_step_time_limit(tmp_path)
    (tmp_path / STEP_TIME_LIMIT_FILE).write_text("{")
    with pytest.raises(ArtifactError, match="cannot read step_time_limit.json"):
        read_step_time_limit(tmp_path)


def test_the_deadline_counts_from_the_process_start():
    age = process_age_seconds()
    assert 0 < age < 24 * 3600
    deadline = StepDeadline.starting_now(600)
    assert 600 - RESERVE_SECONDS - age - 5 < deadline.time_left() <= 600 - RESERVE_SECONDS - age + 1e-6


def test_a_run_starts_only_when_it_and_its_evaluation_fit():
    deadline = StepDeadline(600, ends_at=time.monotonic() + 100, reserve_seconds=20)  # 80 s left
    assert deadline.fits(75) and not deadline.fits(85)  # before the first run: the budget
    deadline.record_run(30)
    deadline.record_evaluation(5)
    deadline.record_run(20)
    deadline.record_evaluation(8)
    assert deadline.predicted_run(1.0) == 30 + 8  # the longest run and the longest evaluation so far
    assert deadline.fits(1.0) and not deadline.fits(1.0, after=45)
    assert deadline.seconds_per_run == pytest.approx((30 + 5 + 20 + 8) / 2)


def test_a_started_run_ends_before_the_deadline():
    deadline = StepDeadline(600, ends_at=time.monotonic() + 100, reserve_seconds=20)
    deadline.record_evaluation(10)
    assert deadline.run_wall_limit(30) == 30  # the hard limit is the smaller
    assert 69 < deadline.run_wall_limit(500) <= 70  # 100 - 20 reserve - 10 evaluation
    assert StepDeadline(600, ends_at=time.monotonic() - 1).run_wall_limit(30) == 0


def test_the_partial_sentence_is_fixed():
    assert partial_sentence(9, 32, 600, 61.4) == ("9 of 32 runs fit in the phase's 600 s: this method takes about "
                                                 "61 s a run on this worker")
    assert "takes more than 70 s" in partial_sentence(0, 32, 600, 70, at_least=True)


def test_step_time_limit_argument_and_file(tmp_path):
    assert step_deadline(tmp_path, None, False) is None  # no file, no argument: no deadline
    write_step_time_limit(tmp_path, 600, "Check")
    assert step_deadline(tmp_path, None, False).limit_seconds == 600
    assert step_deadline(tmp_path, 300, False).limit_seconds == 300  # the argument wins
    assert step_deadline(tmp_path, 0, False) is None
    assert step_deadline(tmp_path, None, True) is None  # --no-time-limit
    with pytest.raises(IngestionError, match="--step-time-limit must be 0 .* more than the 20 s kept"):
        step_deadline(tmp_path, 10, False)


def test_a_stopped_run_keeps_its_trusted_sentence_in_a_private_phase():
    record = RunRecord(index=4, status=RunStatus.STOPPED, message=STEP_TIME_RAN_OUT, output_tail="secret")
    shown = for_participants(record, ParticipantOutput.HIDDEN)
    assert shown.message == STEP_TIME_RAN_OUT and shown.output_tail == "" and shown.failure is None


# --- end to end: ingestion and scoring on the tiny phase grown to N = 5 -----------------------------------

STEP_LIMIT = 50  # seconds: the tiny phase's start and runs 0 to 3 take well under 30 of them


@pytest.fixture(scope="module")
def five_model_phase(tiny_phase, tmp_path_factory):
    """(input_dir, reference_dir) of the tiny phase with N = 5 (its three models reused, two more trained)."""
    from unlearning_challenge.reference.generate import generate_reference
    from unlearning_challenge.reference.models import pick_device

    root = tmp_path_factory.mktemp("five")
    shutil.copytree(tiny_phase[0].parent / "work", root / "work")
    config = replace(tiny_phase[2], reference=replace(tiny_phase[2].reference, num_models=5))
    generate_reference(config, work_dir=root / "work", input_dir=root / "input_data",
                       reference_dir=root / "reference_data", device=pick_device("cpu"), log=lambda _: None)
    return root / "input_data", root / "reference_data"


@pytest.fixture(scope="module")
def partial_output(five_model_phase, tmp_path_factory):
    """The ingestion of ``slow_after_four`` under a 50 s step limit: (process, output folder, wall seconds)."""
    out = tmp_path_factory.mktemp("partial") / "res"
    start = time.monotonic()
    done = run_module("unlearning_challenge.ingestion", "--input", five_model_phase[0], "--output", out,
                      "--submission", SUBMISSIONS / "slow_after_four", "--time-budget", "10",
                      "--step-time-limit", str(STEP_LIMIT))
    return done, out, time.monotonic() - start


def test_the_ingestion_stops_in_time_and_writes_the_runs_that_fit(partial_output):
    done, out, seconds = partial_output
    assert done.returncode == 0, done.stderr
    assert seconds < STEP_LIMIT  # counted from before this Python started, as the platform counts
    manifest = json.loads((out / "ingestion.json").read_text())
    assert manifest["status"] == "partial"
    assert manifest["num_models"] == 4 and manifest["num_models_asked"] == 5
    assert manifest["step_time_limit_seconds"] == STEP_LIMIT
    assert STEP_LIMIT - RESERVE_SECONDS - 5 < manifest["step_seconds"] < STEP_LIMIT - RESERVE_SECONDS + 5
    assert [run["status"] for run in manifest["runs"]] == ["ok"] * 4 + ["stopped"]
    assert manifest["runs"][4]["message"] == STEP_TIME_RAN_OUT and "failure" not in manifest["runs"][4]
    assert manifest["message"].startswith(f"4 of 5 runs fit in the phase's {STEP_LIMIT} s: this method takes about ")
    assert manifest["message"].endswith(" s a run on this worker")
    assert "the step ends within 50 s" in done.stderr


def test_a_check_phase_scores_the_runs_that_fit_with_a_banner(partial_output, five_model_phase, tmp_path):
    _, out, _ = partial_output
    done = run_scoring("--res", out, "--ref", five_model_phase[1], "--output", tmp_path / "scores")
    assert done.returncode == 0, done.stderr
    assert "partial output: 4 of 5 runs fit" in done.stderr and "not comparable with the leaderboard" in done.stderr
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert scores["num_models"] == 4 and scores["quick_check"] is True
    assert scores["partial_output"].startswith("4 of 5 runs fit in the phase's 50 s")
    html = (tmp_path / "scores" / "detailed_results.html").read_text()
    assert "<b>Partial output.</b> 4 of 5 runs fit" in html and "not comparable with the" in html


def test_a_final_phase_fails_a_partial_output_with_the_sentence(partial_output, five_model_phase, tmp_path):
    _, out, _ = partial_output
    reference = with_phase_settings(five_model_phase[1], tmp_path / "ref", "scoring", partial_output="fail")
    done = run_scoring("--res", out, "--ref", reference, "--output", tmp_path / "scores")
    assert done.returncode == 1
    assert ("scoring failed: the submission's runs did not all fit in the phase's time limit (4 of 5 runs fit in "
            "the phase's 50 s: this method takes about") in done.stderr
    assert "This phase ranks only submissions whose 5 runs all finish" in done.stderr
    assert not (tmp_path / "scores" / "scores.txt").exists()


def test_too_few_runs_that_fit_are_not_scored(partial_output, five_model_phase, tmp_path):
    _, out, _ = partial_output
    res = tmp_path / "res"
    shutil.copytree(out, res)
    manifest = json.loads((res / "ingestion.json").read_text())
    manifest["num_models"] = 3  # as if only 3 had fit (the arrays are not read before this is refused)
    (res / "ingestion.json").write_text(json.dumps(manifest))
    done = run_scoring("--res", res, "--ref", five_model_phase[1], "--output", tmp_path / "scores")
    assert done.returncode == 1 and "At least 4 runs are needed for a score" in done.stderr


# --- over budget, within the hard limit: flagged in a Check-like phase, failed in a Final-like one ---------


def test_a_run_over_its_budget_is_scored_and_flagged_where_the_phase_warns(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    done = run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", tmp_path / "res",
                      "--submission", SUBMISSIONS / "busy", "--time-budget", "1.5", "--num-models", "2")
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    assert done.returncode == 0, done.stderr
    runs = manifest["runs"]
    assert [run["status"] for run in runs] == ["ok", "ok"]
    assert all(1.9 < run["over_budget_ratio"] < 3.0 for run in runs)
    assert "more than the budget of 1.5 CPU seconds per run" in runs[0]["message"]
    assert runs[0]["message"].endswith("scored in this phase, but the Feedback and Final phases would fail this run")
    done = run_scoring("--res", tmp_path / "res", "--ref", reference_dir, "--output", tmp_path / "scores",
                       "--num-models", "2")
    assert done.returncode == 0, done.stderr
    assert "over budget: run 0 used " in done.stderr
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert [run["index"] for run in scores["over_budget_runs"]] == [0, 1]
    assert "<b>Over budget.</b> 2 run(s)" in (tmp_path / "scores" / "detailed_results.html").read_text()


def test_a_run_over_its_budget_fails_where_the_phase_fails_it(tiny_phase, tmp_path):
    input_dir = with_phase_settings(tiny_phase[0], tmp_path / "in", over_budget="fail")
    done = run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", tmp_path / "res",
                      "--submission", SUBMISSIONS / "busy", "--time-budget", "1.5")
    manifest = json.loads((tmp_path / "res" / "ingestion.json").read_text())
    run = manifest["runs"][0]
    assert done.returncode == 1
    assert manifest["budget_clock"] == "cpu" and manifest["timing"]["unit"] == "CPU seconds"
    assert run["status"] == "timeout" and run["failure"] == "over_budget" and 2.9 < run["cpu_seconds"] < 4.5
    assert "more than the budget of 1.5 CPU seconds per run" in manifest["message"]
