"""End to end in the competition image: build it, rehearse the sample as each platform's worker runs it.

Tens of minutes the first time (the image is several GB), so only when asked:

    make docker-test [LOCAL_BASE=1]        # DOCKER_E2E=1 pytest tests/test_docker_e2e.py

`make test` (and CI) leave it out. The engine is the one DOCKER_HOST names or
an isolated dockerd this test starts under work/dockerd/ and stops by its pid
(see docker_daemon.py). LOCAL_BASE=1 builds the image without Docker Hub.

Each platform runs the Check phase's first NUM_MODELS models of the sample
submission; the scores must equal bare-metal ingestion and scoring with the
same seeds (the run times aside), and every run must be confined by Landlock.
One test runs the whole Check phase (32 runs) of a method that uses its whole
per-run budget under Codabench's 600 s: the runs that fit are scored.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import docker_daemon
from unlearning_challenge.runner.proccap import NETWORK_FILTER

ROOT = Path(__file__).resolve().parents[1]
COMPETITION = Path("competition.yaml")
SAMPLE = ROOT / "starting_kit" / "sample_submission"
NUM_MODELS = 2
TIMED = ("mean_run_seconds",)  # scores that measure time, not the models

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("DOCKER_E2E"), reason="set DOCKER_E2E=1 (make docker-test): builds a GB image"),
]


@pytest.fixture(scope="module")
def engine():
    reason = docker_daemon.why_not()
    if reason:
        pytest.skip(reason)
    daemon = docker_daemon.start(ROOT / "work" / "dockerd")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = daemon.host
    yield daemon
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous
    docker_daemon.stop(daemon)


@pytest.fixture(scope="module")
def bare_metal_scores(tmp_path_factory) -> dict:
    """Ingestion and scoring on this machine, as `make local-score NUM_MODELS=...` runs them."""
    out = tmp_path_factory.mktemp("bare_metal")
    for argv in (
        ["-m", "unlearning_challenge.ingestion", "--input", "input_data", "--output", str(out / "res"),
         "--submission", str(SAMPLE), "--num-models", str(NUM_MODELS)],
        ["-m", "unlearning_challenge.scoring", "--res", str(out / "res"), "--ref", "reference_data",
         "--output", str(out / "scores"), "--num-models", str(NUM_MODELS)],
    ):
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "scores" / "scores.json").read_text())


def _same(got, expected) -> bool:
    """Equal, floats (also in lists) up to the last bits."""
    if isinstance(expected, float) or (isinstance(expected, list) and all(isinstance(v, float) for v in expected)):
        return got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    return got == expected


def _scores_txt(text: str) -> dict[str, float]:
    scores = {}
    for line in text.splitlines():
        label, _, value = line.partition(": ")
        scores[label] = float(value)
    return scores


@pytest.mark.parametrize("platform", ["codabench", "codalab"])
def test_sample_rehearses_in_the_image(engine, bare_metal_scores, platform, tmp_path, capsys):
    from unlearning_challenge.platforms.docker_rehearse import rehearse

    outcome = rehearse(platform, SAMPLE, root=ROOT, competition=COMPETITION, num_models=NUM_MODELS,
                       local_base=bool(os.environ.get("LOCAL_BASE")), output=tmp_path / "rehearsal")
    printed = capsys.readouterr().out
    assert outcome.ok, (outcome.problems, printed)
    assert outcome.ingestion.status == "ok"
    runs = outcome.ingestion.runs
    assert len(runs) == NUM_MODELS
    confined = f"landlock; {NETWORK_FILTER}"  # Landlock, and no socket but AF_UNIX for root with no capability
    assert [run.confinement for run in runs] == [confined] * NUM_MODELS, [run.confinement for run in runs]
    assert all(run.process_cap.startswith("seccomp supervisor") for run in runs), [r.process_cap for r in runs]
    assert all(step.seconds < step.limit for step in outcome.steps)
    scores = _scores_txt(outcome.scores_txt)
    assert scores["num_models"] == NUM_MODELS
    assert outcome.scores_txt.rstrip("\n") in printed  # the score lines, as local-score prints them
    assert f"{NUM_MODELS} of {NUM_MODELS} runs: landlock" in printed
    differing = {key: (outcome.scores.get(key), value) for key, value in bare_metal_scores.items()
                 if key not in TIMED and not _same(outcome.scores.get(key), value)}
    assert not differing, f"(in the image, bare metal) differ: {differing}"


@pytest.mark.parametrize("platform", ["codabench", "codalab"])
def test_a_fork_bomb_is_held_at_the_cap_in_the_image(engine, platform, tmp_path, capsys):
    """Root in a Codabench container without capabilities, uid 1000 or root on CodaLab: the cap holds."""
    from unlearning_challenge.platforms.docker_rehearse import rehearse
    from unlearning_challenge.config import IngestionConfig

    cap = IngestionConfig().max_processes  # the Check phase's
    outcome = rehearse(platform, ROOT / "tests" / "hostile" / "fork_bomb", root=ROOT, competition=COMPETITION,
                       num_models=1, local_base=bool(os.environ.get("LOCAL_BASE")), output=tmp_path / "rehearsal")
    printed = capsys.readouterr().out
    (run,) = outcome.ingestion.runs
    assert run.ok, (run, printed)
    assert run.process_cap.startswith(f"seccomp supervisor: at most {cap} live processes")
    held = int(run.output_tail.split("held ")[1].split()[0])
    assert held < cap, run.output_tail  # one forking process: the count is exact
    assert "process cap: 1 of 1 runs: seccomp supervisor" in printed


@pytest.mark.parametrize("platform", ["codabench", "codalab"])
def test_a_hidden_phase_leaks_nothing_a_run_controls_in_the_image(engine, platform, tmp_path, capsys):
    """The exfiltrating submission under hidden participant output, as each worker runs it: the marker it
    prints, writes to stderr and raises (with a class named after it) is in no file and no log of either step."""
    from unlearning_challenge.platforms.docker_rehearse import rehearse

    submission = tmp_path / "submission"
    shutil.copytree(ROOT / "tests" / "hostile" / "exfiltrates", submission)
    (submission / "listeners.json").write_text(json.dumps({"tcp": 9, "udp": 9, "udp6": 9}))
    (submission / "ending.txt").write_text("raise")
    outcome = rehearse(platform, submission, root=ROOT, competition=COMPETITION, num_models=1,
                       local_base=bool(os.environ.get("LOCAL_BASE")), output=tmp_path / "rehearsal",
                       participant_output="hidden")
    printed = capsys.readouterr()
    (run,) = outcome.ingestion.runs
    assert (run.status, run.failure, run.confinement) == ("crashed", "raised_in_call", f"landlock; {NETWORK_FILTER}")
    marker = re.compile(r"LEAKMARK\d")  # the marker as the run builds it (its source only names the prefix)
    leaks = [str(path) for path in (tmp_path / "rehearsal").rglob("*")
             if marker.search(path.name) or (path.is_file() and marker.search(path.read_bytes().decode("latin-1")))]
    assert not leaks and not marker.search(printed.out + printed.err), leaks


def test_a_method_using_its_whole_budget_scores_the_runs_that_fit_in_codabenchs_600_s(engine, tmp_path, capsys):
    """The full Check phase (32 runs, no NUM_MODELS) of the sample at 6 retain epochs, its whole per-run budget,
    as Codabench's default queue runs it: the ingestion reads the phase's 600 s from step_time_limit.json in its
    input data, starts no run that would end past it and writes a partial output before the platform kills it;
    the Check phase's scoring (scoring.partial_output: score) prints a score on the k runs that fit.
    On 2 cores 27 of the 32 runs fit at about 20 s a run; the budget counts CPU seconds, so a host whose
    torch spreads a run over more cores may fit all 32: then the output is complete, scored as usual."""
    from unlearning_challenge.platforms.docker_rehearse import rehearse

    source = (SAMPLE / "unlearning.py").read_text()
    assert source.count("epochs = 1\n") == 1, "the sample no longer sets `epochs = 1`"
    submission = tmp_path / "six_epochs"
    submission.mkdir()
    (submission / "unlearning.py").write_text(source.replace("epochs = 1\n", "epochs = 6\n"))

    folder = tmp_path / "rehearsal"
    outcome = rehearse("codabench", submission, root=ROOT, competition=COMPETITION,
                       local_base=bool(os.environ.get("LOCAL_BASE")), output=folder)
    printed = capsys.readouterr().out
    assert outcome.ok, (outcome.problems, printed)
    limit = json.loads((folder / "prediction" / "input_data" / "step_time_limit.json").read_text())
    assert limit["execution_time_limit_seconds"] == 600, limit
    ingestion_step, scoring_step = outcome.steps
    assert ingestion_step.limit == 600 and not ingestion_step.timed_out and ingestion_step.seconds < 600, \
        ingestion_step.line()
    assert scoring_step.ok and scoring_step.seconds < scoring_step.limit, scoring_step.line()

    manifest = outcome.ingestion
    scores = _scores_txt(outcome.scores_txt)
    assert math.isfinite(scores["score"]) and scores["score"] >= 0, scores
    if manifest.status == "ok":  # every run fit on this host
        assert scores["num_models"] == 32 and all(run.ok for run in manifest.runs), manifest.message
        return
    assert manifest.status == "partial", (manifest.status, manifest.message)
    k = manifest.num_models
    assert 4 <= k < 32 and manifest.num_models_asked == 32, (k, manifest.num_models_asked)
    assert manifest.step_time_limit_seconds == 600
    found = re.fullmatch(rf"{k} of 32 runs fit in the phase's 600 s: this method takes about (\d+) s a run "
                         r"on this worker", manifest.message)
    assert found, manifest.message
    seconds_a_run = int(found.group(1))
    done = [run for run in manifest.runs if run.ok]
    assert len(done) == k and [run.index for run in done] == list(range(k))
    assert all(run.status.value == "stopped" for run in manifest.runs if not run.ok), manifest.runs
    assert len(manifest.runs) <= k + 1  # at most one run started and stopped at the deadline
    mean_run = sum(run.seconds for run in done) / k
    assert mean_run - 1 <= seconds_a_run and k * seconds_a_run <= 600, (mean_run, seconds_a_run, k)

    assert scores["num_models"] == k, scores
    assert outcome.scores["partial_output"] == manifest.message
    assert outcome.scores_txt.rstrip("\n") in printed
    assert f"partial output: {manifest.message}" in printed
    scoring_log = (folder / "scoring.log").read_text()
    assert f"partial output: {manifest.message}; scoring those {k} runs" in scoring_log, scoring_log[-3000:]
    assert f"score: {scores['score']:.6f}" in scoring_log
    print(f"{k} of 32 runs fit, about {seconds_a_run} s a run; score {scores['score']:.4f}; "
          f"ingestion {ingestion_step.seconds:.0f} s, scoring {scoring_step.seconds:.0f} s", file=sys.stderr)
