"""``unlearning-challenge evaluate``: several submissions on the tiny phase, locally and on a Ray cluster that
loses a node."""

from __future__ import annotations

import csv
import json
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
import torch

import test_orphans as orphans
from conftest import ROOT, SUBMISSIONS, remove_the_node_running, run_module, run_scoring, with_phase_settings
from unlearning_challenge.artifacts import RunRecord, RunStatus
from unlearning_challenge.cli import main as cli_main
from unlearning_challenge.evaluation.driver import evaluate as run_evaluate
from unlearning_challenge.evaluation.leaderboard import (
    Entry,
    Outcome,
    leaderboard_csv,
    leaderboard_note,
    leaderboard_rows,
)
from unlearning_challenge.evaluation.options import EvaluationError, EvaluationOptions
from unlearning_challenge.evaluation.work import EvaluationWork, RunResult, to_run
from unlearning_challenge.reference.evaluation import ModelOutputs
from unlearning_challenge.scoring.ranking import Rank, Ranking

SAMPLE = ROOT / "starting_kit" / "sample_submission"
FAILING = SUBMISSIONS / "raises_on_second_run"
ATTACKER = ROOT / "tests" / "hostile" / "attacks_other_slot"


def evaluate(tiny_phase, output: Path, *submissions, env: dict | None = None, timeout: float = 900):
    """The command on the tiny phase, with no time limit (its budget is a fraction of a second)."""
    input_dir, reference_dir, _ = tiny_phase
    return run_module("unlearning_challenge", "evaluate", *submissions, "--output", output, "--input-data", input_dir,
                      "--reference-data", reference_dir, "--no-time-limit", env=env, timeout=timeout)


def numbers(scores_dir: Path) -> dict:
    """scores.json without its times."""
    scores = json.loads((scores_dir / "scores.json").read_text())
    return {key: value for key, value in scores.items() if "seconds" not in key}


@pytest.fixture(scope="module")
def evaluated(tiny_phase, tmp_path_factory):
    """(the finished command, its output folder): sample, do_nothing and a submission failing in its second run."""
    out = tmp_path_factory.mktemp("evaluated")
    done = evaluate(tiny_phase, out, SAMPLE, SUBMISSIONS / "do_nothing", FAILING)
    return done, out


def leaderboard(out: Path) -> list[dict]:
    with open(out / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.ingestion
def test_local_backend_gives_the_ingestion_and_scoring_programs_numbers(evaluated, ingested, tiny_phase, tmp_path):
    done, out = evaluated
    assert done.returncode == 0, done.stderr
    rows = leaderboard(out)
    # The two scored ones by score (on the tiny phase either may lead), then the failed one.
    assert {row["submission"] for row in rows[:2]} == {"sample_submission", "do_nothing"}
    assert float(rows[0]["score"]) >= float(rows[1]["score"])
    assert [row["submission"] for row in rows[2:]] == ["raises_on_second_run"]
    assert [row["rank"] for row in rows] == ["1", "2", ""]
    assert rows[0]["rank_low"] and rows[0]["p_first"]  # two scored: rank intervals
    failed = rows[2]
    assert failed["status"] == "failed" and failed["message"].startswith("run 1 (seed 1000001) crashed")
    assert "raises_on_second_run" in (out / "leaderboard.html").read_text()

    ingestion, res = ingested(SAMPLE)
    assert ingestion.returncode == 0, ingestion.stderr
    scored = run_scoring("--res", res, "--ref", tiny_phase[1], "--output", tmp_path / "scores")
    assert scored.returncode == 0, scored.stderr
    assert numbers(out / "sample_submission" / "scores") == numbers(tmp_path / "scores")
    ours = json.loads((out / "sample_submission" / "res" / "ingestion.json").read_text())
    theirs = json.loads((res / "ingestion.json").read_text())
    assert sorted(ours) == sorted(theirs)
    assert [r["seed"] for r in ours["runs"]] == [r["seed"] for r in theirs["runs"]]
    assert float(json.loads((out / "do_nothing" / "scores" / "scores.json").read_text())["score"]) == 0.0
    manifest = json.loads((out / "raises_on_second_run" / "res" / "ingestion.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["ok", "crashed"]
    assert not (out / "raises_on_second_run" / "scores").exists()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.mark.ingestion
def test_a_killed_evaluation_resumes_without_redoing_finished_runs(evaluated, tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    command = [sys.executable, "-m", "unlearning_challenge", "evaluate", str(SAMPLE), "--output", str(tmp_path),
               "--input-data", str(input_dir), "--reference-data", str(reference_dir), "--no-time-limit"]
    first = tmp_path / "work" / "sample_submission" / "runs" / "run_00000.json"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while not first.exists():
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
                time.sleep(0.2)
            spawned = _descendants(process.pid)
            process.kill()  # its runs' guardian kills the rest and removes the runs' folder
            _, alive = psutil.wait_procs(spawned, timeout=10)
            for child in alive:
                child.kill()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    finished = {path.name: path.stat().st_mtime_ns for path in first.parent.iterdir()}
    kept = len([name for name in finished if name.endswith(".json")])
    assert 1 <= kept < 3
    done = run_module(*command[2:])
    assert done.returncode == 0, done.stderr
    assert f"{3 - kept} run(s) to do (local backend)" in done.stderr
    for name, mtime in finished.items():
        assert (first.parent / name).stat().st_mtime_ns == mtime, name  # not redone
    assert numbers(tmp_path / "sample_submission" / "scores") == numbers(evaluated[1] / "sample_submission" / "scores")


@pytest.fixture
def two_node_cluster(tmp_path):
    """A Ray cluster of a head with no CPUs and two worker nodes of this process's torch threads each (the
    local runs' threads: then the same numbers); yields (the cluster, the runs' TMPDIR)."""
    from ray.cluster_utils import Cluster

    threads = torch.get_num_threads()
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    runs_tmp = tmp_path / "tmp"
    runs_tmp.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(runs_tmp))  # the nodes' processes, the slots' runs among them, inherit it
        patch.setenv("RAY_TMPDIR", str(ray_tmp))
        patch.delenv("RAY_ADDRESS", raising=False)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=threads, memory=2 * 2**30)
            cluster.wait_for_nodes()
            yield cluster, runs_tmp
        finally:
            cluster.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    torch.set_num_threads(threads)


@pytest.mark.ray
@pytest.mark.ingestion
def test_a_node_lost_while_it_holds_a_run_costs_only_that_run(evaluated, tiny_phase, two_node_cluster, tmp_path):
    cluster, runs_tmp = two_node_cluster
    removed, lines = [], []
    holds_a_run = lambda process: process.name() == "unlearning-run"  # noqa: E731
    remover = threading.Thread(target=remove_the_node_running, args=(cluster, holds_a_run, removed), daemon=True)
    remover.start()
    options = EvaluationOptions(submissions=(SAMPLE, FAILING), output=tmp_path / "out", input_data=tiny_phase[0],
                                reference_data=tiny_phase[1], no_time_limit=True, backend="ray",
                                ray_address=cluster.address, cpus_per_run=torch.get_num_threads(), memory_per_run=1)
    code = run_evaluate(options, log=lines.append)
    remover.join(timeout=10)
    text = "\n".join(lines)
    assert code == 0 and len(removed) == 1, text
    assert f"each run on cpu with {torch.get_num_threads()} CPU" in text
    assert len(re.findall(r"run \d: lost with run slot \d \(\w+\); it is redone", text)) == 1, text
    assert "ray: 1 run(s) redone after their slot was lost" in text
    assert numbers(tmp_path / "out" / "sample_submission" / "scores") == numbers(
        evaluated[1] / "sample_submission" / "scores")
    rows = leaderboard(tmp_path / "out")
    assert [row["status"] for row in rows] == ["scored", "failed"]
    assert rows[1]["message"].startswith("run 1 (seed 1000001) crashed")
    manifest = json.loads((tmp_path / "out" / "sample_submission" / "res" / "ingestion.json").read_text())
    assert sorted(i for node in manifest["run_budgets"] for i in node["runs"]) == [0, 1, 2]  # each run once
    assert all(len(node["ray_node_id"]) == 56 and node["budget_seconds"] is None for node in manifest["run_budgets"])
    deadline = time.monotonic() + 10
    while any(path.name.startswith(("unlearning-runs-", "forkserver-")) for path in runs_tmp.iterdir()) or any(
            p.info["name"] in ("unlearning-run", "unlearning-wdog") for p in psutil.process_iter(["name"])
            if runs_tmp.as_posix() in (p.environ().get("TMPDIR", "") if _readable(p) else "")):
        assert time.monotonic() < deadline, sorted(path.name for path in runs_tmp.iterdir())
        time.sleep(0.1)


def _slot_user_can_start(python: str, env: dict[str, str]) -> tuple[bool, str]:
    """Whether run slot 0's user (made when missing) can start ``python`` and import the package from the
    copy slots give their workers; the warning when not. Asked of ``python`` itself, as a slot would."""
    probe = ("import json, pathlib\n"
             "from unlearning_challenge.evaluation.slots import readable_package\n"
             "from unlearning_challenge.runner.environment import import_package_from, worker_env\n"
             "from unlearning_challenge.runner.isolation import slot_identity\n"
             "import_package_from(readable_package())\n"
             "identity, warning = slot_identity(0, worker_env(pathlib.Path('/')))\n"
             "print(json.dumps([identity.dropped, warning]))\n")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, env={**os.environ, **env},
                          cwd=ROOT, timeout=300)
    if done.returncode != 0:
        return False, done.stderr.strip()[-500:]
    dropped, warning = json.loads(done.stdout.splitlines()[-1])
    return dropped, warning


def _open_copy_of_this_python(folder: Path) -> tuple[str, dict[str, str]]:
    """This virtual environment and its base interpreter hard-linked (no data copied) into ``folder``, open to
    every user, as a node's shared Python is: ``(python, env)`` to start it with."""
    base, venv = folder / "base", folder / "venv"
    folder.chmod(0o755)
    for source, target in ((Path(sys.base_prefix), base), (Path(sys.prefix), venv)):
        subprocess.run(["cp", "-al", str(source), str(target)], check=True, capture_output=True, timeout=300)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    config = venv / "pyvenv.cfg"  # replaced, not written through: its inode is the original's
    text = config.read_text().replace(str(Path(sys.base_prefix) / "bin"), str(base / "bin"))
    config.unlink()
    config.write_text(text)
    for name in ("python", "python3", version):
        (venv / "bin" / name).unlink(missing_ok=True)
        (venv / "bin" / name).symlink_to(base / "bin" / version)
    # The base interpreter's run path names its original folder; the loader reads the copy's first.
    env = {"LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(base / "lib"), os.environ.get("LD_LIBRARY_PATH")]))}
    return str(venv / "bin" / "python"), env


def _open_to_others(path: Path) -> bool:
    """Whether every user can reach ``path`` (each folder on the way searchable by others) and list it."""
    path = path.resolve()
    return all(os.stat(folder).st_mode & 0o001 for folder in [path, *path.parents]) and bool(
        os.stat(path).st_mode & 0o004)


@pytest.fixture(scope="module")
def slot_python():
    """An interpreter (and its environment variables) whose workers each run slot can start as its own user:
    this one, or, where its folders are closed to other users (a Python under /root, a clone in a private
    folder), an open hard-linked copy of it. Skips where there is no way (not root, no ``useradd``, too few
    CPUs for two slots side by side, a copy across file systems)."""
    threads = torch.get_num_threads()
    if os.geteuid() != 0:
        pytest.skip("only root can run each slot's workers as a user of its own")
    if (os.cpu_count() or 1) < 2 * threads:
        pytest.skip(f"two slots of {threads} CPU(s) side by side need {2 * threads} CPUs")
    folder = Path(tempfile.mkdtemp(prefix="open-python-", dir="/tmp"))
    try:
        python, env = sys.executable, {}
        if not all(_open_to_others(Path(prefix)) for prefix in (sys.base_prefix, sys.prefix)):
            try:
                python, env = _open_copy_of_this_python(folder)
            except subprocess.CalledProcessError as exc:
                pytest.skip("this Python is closed to other users and cannot be hard-linked into an open folder: "
                            f"{exc.stderr.decode(errors='replace').strip()}")
        dropped, warning = _slot_user_can_start(python, env)
        if not dropped:
            pytest.skip(f"the run slots share a user here: {warning}")
        yield python, env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.ingestion
def test_runs_of_two_slots_on_one_node_cannot_reach_each_other(slot_python, evaluated, tiny_phase, tmp_path):
    threads = torch.get_num_threads()
    python, python_env = slot_python
    # Landlock off: only the slots' users keep the runs apart (no signal scoping, no filesystem rule).
    input_dir = with_phase_settings(tiny_phase[0], tmp_path / "input_data", filesystem_sandbox=False)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # its own cluster; short: Ray's socket paths
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **python_env, "RAY_TMPDIR": ray_tmp}
    try:
        done = subprocess.run(
            [python, "-m", "unlearning_challenge", "evaluate", str(SAMPLE), str(ATTACKER), "--output",
             str(tmp_path / "out"), "--input-data", str(input_dir), "--reference-data", str(tiny_phase[1]),
             "--no-time-limit", "--participant-output", "shown", "--backend", "ray", "--cpus-per-run", str(threads),
             "--memory-per-run", "1"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert "ray: 2 run slot(s)" in done.stderr
    assert numbers(tmp_path / "out" / "sample_submission" / "scores") == numbers(
        evaluated[1] / "sample_submission" / "scores")
    attacks = json.loads((tmp_path / "out" / "attacks_other_slot" / "res" / "ingestion.json").read_text())
    assert [run["output_tail"].strip() for run in attacks["runs"]] == ["nothing reached"] * 3
    users = {json.loads(path.read_text())["context"]["worker_user"]
             for path in (tmp_path / "out" / "work").glob("*/runs/run_*.json")}
    assert users == {"unlearning-slot0", "unlearning-slot1"}


@pytest.mark.ray
@pytest.mark.ingestion
def test_slots_killed_for_memory_end_the_evaluation_and_say_what_to_do(tiny_phase, tmp_path):
    """Ray's memory monitor told that the node is always short of memory kills every slot, before or while
    it holds a run: the evaluation ends (nothing retried forever), each run is failed as out of memory or
    listed as not run, and the log names the setting to change."""
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": ray_tmp,
           "RAY_memory_usage_threshold": "0.01", "RAY_memory_monitor_refresh_ms": "100"}
    try:
        done = evaluate(tiny_phase, tmp_path / "out", SAMPLE, "--backend", "ray", "--cpus-per-run", "1",
                        "--memory-per-run", "1", env=env, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert "killed for memory" in done.stderr and "--memory-per-run" in done.stderr, done.stderr
    assert "Refer to the documentation" not in done.stderr  # Ray's advice to its own users stays out
    records = [json.loads(path.read_text())["record"]
               for path in (tmp_path / "out" / "work" / "sample_submission" / "runs").glob("run_*.json")]
    if records:  # a slot held a run when it was killed: that run failed, which stops the submission
        assert [record["failure"] for record in records] == ["out_of_memory"], records
    else:  # every slot was killed while starting: the runs are left for a rerun
        not_run = {int(index) for line in re.findall(r"not run: sample_submission runs ([\d, ]+):", done.stderr)
                   for index in line.split(",")}
        assert not_run == {0, 1, 2}
        assert re.search(r"no run slot is left to run them \(\d+ killed for memory\)", done.stderr), done.stderr
        assert done.returncode == 1 and "unfinished" in done.stderr, done.stderr


def _readable(process: psutil.Process) -> bool:
    try:
        process.environ()
        return True
    except psutil.Error:
        return False


@pytest.mark.ray
@pytest.mark.ingestion
def test_a_killed_run_slot_leaves_nothing_its_run_is_redone_and_sigterm_stops_the_cluster(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(ray_tmp)}
    process, tmp, log = orphans._start(
        ["unlearning_challenge", "evaluate", orphans.LOOPS, "--output", tmp_path / "out", "--input-data", input_dir,
         "--reference-data", reference_dir, "--no-time-limit", "--backend", "ray", "--cpus-per-run",
         str(os.cpu_count()), "--memory-per-run", "1"], tmp_path, env)
    tree = []
    try:
        worker = orphans._looping_worker(process, log, timeout=600)
        slot = worker.parent()
        assert slot.name().startswith("ray::") or "RunSlot" in " ".join(slot.cmdline()), slot.cmdline()
        user, held = worker.username(), orphans._own_folders(tmp)
        slot.kill()  # the run slot's actor, as Ray's memory monitor or a lost node would
        deadline = time.monotonic() + orphans.CLEANUP_SECONDS
        while orphans._alive(worker) or set(held) & set(orphans._own_folders(tmp)):
            assert time.monotonic() < deadline, (worker, orphans._own_folders(tmp), log.read_text())
            time.sleep(0.1)
        again = orphans._looping_worker(process, log, timeout=600)  # the slot restarted and redoes the run
        assert again.pid != worker.pid
        assert "endless_loop run 0: lost with run slot 0 (" in log.read_text()
        tree = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)  # as Ctrl-C: the slots stopped, the cluster started here too
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert process.returncode == 130, log.read_text()
    orphans._nothing_left(tree, user, tmp)


# --------------------------------------------------------------------------- no runs


def _options(tmp_path: Path, **changes) -> EvaluationOptions:
    for name in ("input_data", "reference_data", "sub"):
        (tmp_path / name).mkdir(exist_ok=True)
    values = dict(submissions=(tmp_path / "sub",), output=tmp_path / "out", input_data=tmp_path / "input_data",
                  reference_data=tmp_path / "reference_data")
    return EvaluationOptions(**{**values, **changes})


@pytest.mark.parametrize("changes, message", [
    (dict(gpus_per_run=0.5), "--gpus-per-run 0.5: with a time limit each run holds whole GPUs (runs sharing a GPU "
                             "slow each other down, and each is judged by its own time); give a whole number, or "
                             "--no-time-limit to let runs share GPUs"),
    (dict(gpus_per_run=1.5, no_time_limit=True), "--gpus-per-run must be a fraction in (0, 1] or a whole number, got 1.5"),
    (dict(backend="spark"), "unknown backend 'spark'; valid: local, ray"),
    (dict(submissions=(Path("/nonexistent/sub"),)),
     "submission /nonexistent/sub does not exist: give a folder holding unlearning.py, or its zip"),
    (dict(num_models=1), "--num-models must be at least 2 to be scored, got 1"),
    (dict(memory_per_run=0), "--memory-per-run must be a positive number of GiB, got 0"),
    (dict(output="{tmp}/sub/out"), "--output {tmp}/sub/out is inside submission {tmp}/sub: choose a folder outside "
                                   "every submission"),
    (dict(work="{tmp}/sub"), "--work {tmp}/sub is inside submission {tmp}/sub: choose a folder outside every "
                             "submission"),
    (dict(output="{tmp}"), "submission {tmp}/sub is inside --output {tmp}: keep submissions out of the trusted "
                           "folders"),
    (dict(submissions=("{tmp}/sub", "{tmp}/other/sub")),
     "submissions {tmp}/sub and {tmp}/other/sub have the same name 'sub': rename one (each submission's "
     "results are kept under its name)"),
])
def test_options_that_cannot_work_are_refused(tmp_path, changes, message):
    (tmp_path / "other" / "sub").mkdir(parents=True)
    changes = {key: tuple(Path(v.format(tmp=tmp_path)) for v in value) if isinstance(value, tuple) and
               isinstance(value[0], str) else Path(value.format(tmp=tmp_path)) if isinstance(value, str) and
               "{tmp}" in value else value for key, value in changes.items()}
    with pytest.raises(EvaluationError) as refused:
        _options(tmp_path, **changes).check()
    assert str(refused.value) == message.format(tmp=tmp_path)


def test_a_submission_that_links_to_a_trusted_folder_is_refused(tmp_path):
    options = _options(tmp_path)
    (tmp_path / "linked").symlink_to(tmp_path / "reference_data")
    with pytest.raises(EvaluationError) as refused:
        replace(options, submissions=(tmp_path / "linked",)).check()
    assert str(refused.value) == (f"--reference-data {tmp_path}/reference_data is inside submission {tmp_path}/linked "
                                  f"(a link to {tmp_path}/reference_data): choose a folder outside every submission")


def test_shared_gpus_are_allowed_without_a_time_limit(tmp_path):
    _options(tmp_path, gpus_per_run=0.25, no_time_limit=True).check()


def test_the_command_refuses_a_gpu_fraction_before_any_work(tmp_path, capsys):
    options = _options(tmp_path)
    code = cli_main(["evaluate", str(options.submissions[0]), "--output", str(tmp_path / "out"), "--input-data",
                     str(options.input_data), "--reference-data", str(options.reference_data), "--gpus-per-run", "0.5"])
    assert code == 2
    assert "evaluate: --gpus-per-run 0.5: with a time limit each run holds whole GPUs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_leaderboard_rows_scored_by_score_then_the_others():
    entries = [Entry("b", Outcome.SCORED, score=0.2), Entry("z", Outcome.FAILED, message="run 1 (seed 1) crashed"),
               Entry("a", Outcome.SCORED, score=0.5), Entry("c", Outcome.INCOMPLETE, message="1 of 4 run(s) not run")]
    ranking = Ranking((Rank("a", 0.5, 0.4, 0.6, 1, 1, 0.97), Rank("b", 0.2, 0.1, 0.3, 2, 2, 0.03)), 4, 200, 0)
    rows = leaderboard_rows(entries, ranking)
    assert [(r.rank, r.submission, r.status) for r in rows] == [
        (1, "a", "scored"), (2, "b", "scored"), (None, "z", "failed"), (None, "c", "incomplete")]
    assert (rows[0].score_low, rows[0].rank_high, rows[0].p_first) == (0.4, 1, 0.97)
    text = leaderboard_csv(rows).splitlines()
    assert text[0] == "rank,submission,score,score_low,score_high,rank_low,rank_high,p_first,status,message"
    assert text[1] == "1,a,0.5,0.4,0.6,1,1,0.97,scored,"
    assert text[3] == ",z,,,,,,,failed,run 1 (seed 1) crashed"
    assert leaderboard_rows(entries)[0].score_low is None  # no ranking: no intervals
    assert "joint resamples of models and forget examples, the same" in leaderboard_note(ranking, 4)
    two_levels = replace(ranking, num_originals=2)
    assert ("joint resamples of the 2 original models, the runs from each, the retrained models and the forget "
            "examples (so the intervals are over trained models too)") in leaderboard_note(two_levels, 4)


def _result(index: int, ok: bool) -> RunResult:
    record = RunRecord(index=index, seed=1_000_000 + index, status=RunStatus.OK if ok else RunStatus.CRASHED,
                       seconds=1.5, message="" if ok else "boom")
    output = ModelOutputs(forget_logits=np.arange(6, dtype=np.float32).reshape(3, 2), retain_accuracy=0.1 + index,
                          test_accuracy=1 / 3, forget_accuracy=0.25, forget_losses=np.ones(3, np.float32),
                          test_losses=np.zeros(4, np.float32)) if ok else None
    return RunResult(record, {"budget": None, "device": "cpu"}, output)


def test_finished_runs_are_kept_exactly_and_only_missing_ones_run(tmp_path):
    work = EvaluationWork(tmp_path)
    for result in (_result(0, True), _result(2, False), _result(3, True)):
        work.save("s", result)
    loaded = work.load("s")
    assert sorted(loaded) == [0, 2, 3]
    assert loaded[0].record == _result(0, True).record and loaded[2].output is None
    for key, value in vars(_result(0, True).output).items():
        assert np.array_equal(getattr(loaded[0].output, key), value) if value is not None else True, key
    assert loaded[0].output.test_accuracy == 1 / 3  # floats exactly
    assert to_run(loaded, 5) == [1]  # below the first failed run only
    assert to_run({0: loaded[0]}, 3) == [1, 2]


def test_a_zip_and_its_folder_hold_the_same_submission_and_a_changed_one_is_refused(tmp_path):
    from unlearning_challenge.platforms.submission_zip import pack_submission

    packed = pack_submission(SAMPLE, tmp_path / "zips" / "sample_submission.zip")
    folder = tmp_path / "sample_submission"
    shutil.copytree(SAMPLE, folder)
    (folder / "metadata").write_text("description: another\n")
    work = EvaluationWork(tmp_path / "work")
    from_zip = work.add(packed.path)
    assert (from_zip.folder / "unlearning.py").read_bytes() == (SAMPLE / "unlearning.py").read_bytes()
    assert work.add(packed.path).sha256 == from_zip.sha256  # the same files: accepted again
    with pytest.raises(EvaluationError, match="its files differ from those of"):
        work.add(folder)  # same name, other files (another metadata)
