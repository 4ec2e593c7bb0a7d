"""The job a worker reads and the status a run's last message maps to."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from unlearning_challenge.reference.calibration import Clock
from unlearning_challenge.runner.job import Job, JobError, JobModel
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.outcome import conclude
from unlearning_challenge.runner.protocol import Stage, parse, stage_of
from unlearning_challenge.artifacts import RunRecord, RunStatus


def a_job(run_dir) -> Job:
    return Job(index=3, seed=1_000_003, run_dir=str(run_dir), submission=str(run_dir / "submission"),
               dataset=str(run_dir / "data.npz"), model=str(run_dir / "model.safetensors"),
               model_config=JobModel(arch="resnet18", num_classes=10, checkpoint_dtype="float32"),
               output=str(run_dir / "out" / "unlearned.safetensors"), batch_size=64, device="cpu", sandbox=True)


def test_a_job_reads_back_as_written(tmp_path):
    job = a_job(tmp_path)
    assert job.write() == tmp_path / "job.json"
    assert Job.read(tmp_path / "job.json") == job


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("seed"), "missing required key 'seed'"),
    (lambda d: d.update(seed="1"), "'seed' must be an integer, got '1'"),
    (lambda d: d.update(seed=1.5), "'seed' must be an integer, got 1.5"),
    (lambda d: d.update(batch_size=True), "'batch_size' must be an integer, got True"),
    (lambda d: d.update(sandbox=1), "'sandbox' must be true or false, got 1"),
    (lambda d: d["model_config"].pop("arch"), "missing required key 'model_config.arch'"),
    (lambda d: d["model_config"].update(num_classes=10.0), "'model_config.num_classes' must be an integer, got 10.0"),
    (lambda d: d.update(model_config=None), "'model_config' must be an object, got None"),
    (lambda d: d.update(extra=1), "unknown top-level key(s) ['extra']"),
])
def test_a_bad_job_is_refused_naming_the_field(tmp_path, change, words):
    data = asdict(a_job(tmp_path))
    change(data)
    (tmp_path / "job.json").write_text(json.dumps(data))
    with pytest.raises(JobError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Job.read(tmp_path / "job.json")


def test_stages_are_read_only_when_they_exist():
    assert stage_of({"stage": "return"}) is Stage.RETURN
    assert stage_of({"stage": "elsewhere"}) is None and stage_of({"stage": ["x"]}) is None and stage_of({}) is None
    assert parse('{"event": "done"}') == {"event": "done"} and parse("[1]") == {} and parse("not json") == {}


LIMITS = RunLimits(Clock.WALL, 10.0, wall_limit=20.0, cpu_limit=None)


@pytest.mark.parametrize("message, timed_out, status, text", [
    ({"event": "done"}, "", RunStatus.OK, ""),
    ({"event": "done"}, "wall", RunStatus.TIMEOUT, "killed after 21.0 s: past the hard limit of 20.0 s per run"),
    ({"event": "error", "stage": "return", "message": "TypeError: no"}, "", RunStatus.BAD_OUTPUT,
     "TypeError: no (with what unlearning() returned)"),
    ({"event": "error", "stage": "import", "message": "SyntaxError: x"}, "", RunStatus.CRASHED,
     "SyntaxError: x (while importing unlearning.py)"),
    ({"event": "error", "stage": "nowhere"}, "", RunStatus.CRASHED, "error ()"),
    ({}, "", RunStatus.CRASHED, "the worker process ended without finishing the run (signal 9)"),
])
def test_a_runs_last_message_maps_to_one_status(message, timed_out, status, text):
    record = conclude(RunRecord(index=0, seed=1, seconds=21.0), message, timed_out, LIMITS, exit_code=-9)
    assert (record.status, record.message) == (status, text)


def test_the_wall_backstop_of_a_cpu_budget_says_how_much_cpu_the_run_had():
    limits = RunLimits(Clock.CPU, 10.0, wall_limit=45.0, cpu_limit=15.0)
    record = conclude(RunRecord(index=0, seed=1, seconds=45.2, cpu_seconds=6.5), {}, "wall", limits, exit_code=-9)
    assert record.status is RunStatus.TIMEOUT
    assert record.message == (
        "killed after 45.2 s: past the hard limit of 45.0 s per run (the wall-clock backstop, 3 times the hard "
        "limit of 15.0 CPU seconds; the run had used 6.5 CPU seconds: it slept, or the machine was too busy to "
        "give it a fair share of a core)")


def test_a_job_file_that_is_no_object_is_refused(tmp_path):
    (tmp_path / "job.json").write_text("[1]")
    with pytest.raises(JobError, match=r"job file .*job.json: the top level must be an object, got \[1\]"):
        Job.read(tmp_path / "job.json")
