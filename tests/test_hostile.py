"""Hostile and runaway submissions: each ends in a clear, bounded, honest result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_module, with_phase_settings
from unlearning_challenge.runner.proccap import NETWORK_FILTER
from pathlib import Path

HOSTILE = Path(__file__).resolve().parent / "hostile"


def ingest(tiny_phase, out, name, *extra):
    """Run ingestion on a hostile submission; without a --time-budget, with no time limit
    (the tiny phase's budget is a fraction of a second, and the point here is not speed)."""
    input_dir = tiny_phase[0]
    if "--time-budget" not in extra:
        extra = (*extra, "--no-time-limit")
    done = run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", out,
                      "--submission", HOSTILE / name, *extra)
    manifest = json.loads((out / "ingestion.json").read_text())
    return done, manifest


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_endless_loop_is_killed_at_the_hard_limit(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "endless_loop", "--time-budget", "0.5")
    run = manifest["runs"][0]
    assert done.returncode == 1
    assert run["status"] == "timeout"
    if "CPU seconds" in run["message"]:
        assert "past the hard limit of 1.5 CPU seconds per run" in run["message"]
        assert 1.5 <= run["cpu_seconds"] < 3
    else:  # a machine so busy that the loop got under a third of a core: the wall backstop, 3x the CPU limit
        assert "past the hard limit of 4.5 s per run" in run["message"]
        assert 4.5 <= run["seconds"] < 9


def test_thread_sleeping_forever_does_not_hang_the_worker(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "thread_sleeps_forever", "--num-models", "2")
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("sys_exit", "SystemExit: 0 (inside unlearning())"),
        ("kills_itself", "the worker process ended without finishing the run (signal 9)"),
    ],
)
def test_runs_that_end_the_process_are_reported(tiny_phase, tmp_path, name, message):
    done, manifest = ingest(tiny_phase, tmp_path / "res", name)
    assert done.returncode == 1
    assert manifest["runs"][0]["status"] == "crashed"
    assert message in manifest["message"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_demanding_cuda_without_a_gpu_is_a_clear_crash(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "demands_cuda")
    assert done.returncode == 1
    assert manifest["runs"][0]["status"] == "crashed"
    assert "inside unlearning()" in manifest["message"]
    assert "CUDA" in manifest["message"] or "NVIDIA" in manifest["message"]


def test_memory_hog_hits_the_cap(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "allocates_too_much", "--memory-limit-gib", "3")
    assert done.returncode == 1
    assert manifest["runs"][0]["status"] == "crashed"
    assert "MemoryError" in manifest["message"]


def test_output_flood_is_bounded(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "floods_output", "--num-models", "1")
    assert done.returncode == 0, done.stderr
    run = manifest["runs"][0]
    assert run["output_bytes"] > 40_000_000
    assert len(run["output_tail"].encode()) <= 32 * 1024
    assert "last line of the flood" in run["output_tail"]
    assert (tmp_path / "res" / "ingestion.json").stat().st_size < 200_000


def test_tampered_clocks_do_not_fool_the_timer(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "tampers_clocks", "--num-models", "1")
    assert done.returncode == 0, done.stderr
    assert manifest["runs"][0]["seconds"] >= 2.0


ESCAPE_MARKER = "unlearning-escape-marker"


def test_escaped_processes_are_killed_and_threads_and_subprocesses_work_under_the_cap(tiny_phase, tmp_path):
    """One run of a submission that starts threads and processes, some meant to outlive the run."""
    assert not processes_with(ESCAPE_MARKER)
    done, manifest = ingest(tiny_phase, tmp_path / "res", "escapes_processes", "--num-models", "1")
    assert done.returncode == 0, done.stderr
    assert processes_with(ESCAPE_MARKER) == []
    assert manifest["runs"][0]["process_cap"].startswith("seccomp supervisor")


def test_planted_result_files_change_nothing(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    before = {p: sha(p) for d in (input_dir, reference_dir) for p in d.iterdir()}
    done, manifest = ingest(tiny_phase, tmp_path / "res", "plants_result_files", "--num-models", "1")
    assert done.returncode == 0, done.stderr
    assert manifest["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["ingestion.json", "unlearned.npz"]
    assert {p: sha(p) for d in (input_dir, reference_dir) for p in d.iterdir()} == before
    assert not (tmp_path / "scores.txt").exists() and not Path("/tmp/scores.txt").exists()
    assert manifest["runs"][0]["confinement"] == f"landlock; {NETWORK_FILTER}"


def test_trusted_files_are_out_of_reach(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "reads_trusted_files", "--num-models", "1")
    assert done.returncode == 0, done.stderr
    tail = manifest["runs"][0]["output_tail"]
    assert "blocked" in tail and str(tiny_phase[0]) in tail
    assert "READ " not in tail


def test_the_original_model_cannot_be_changed_for_later_runs(tiny_phase, tmp_path):
    original = tiny_phase[0] / "original.safetensors"
    before = sha(original)
    done, manifest = ingest(tiny_phase, tmp_path / "res", "tampers_original_model", "--num-models", "3")
    assert done.returncode == 0, manifest["message"]
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok", "ok"]
    assert sha(original) == before


def test_no_state_passes_from_one_run_to_the_next(tiny_phase, tmp_path):
    done, manifest = ingest(tiny_phase, tmp_path / "res", "passes_state_between_runs", "--num-models", "2")
    assert done.returncode == 0, manifest["message"]
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok"]
    assert not os.path.exists("/dev/shm/unlearning-stash-marker")


def test_forked_workers_start_as_fresh_as_new_processes(tiny_phase, tmp_path):
    facts, starts = [], []
    exec_input = with_phase_settings(tiny_phase[0], tmp_path / "in", fork_server=False)  # a new Python per run
    for mode, input_dir in (("fork", tiny_phase[0]), ("exec", exec_input)):
        done, manifest = ingest((input_dir,), tmp_path / mode, "reports_its_process", "--num-models", "1")
        assert done.returncode == 0, manifest["message"]
        tail = manifest["runs"][0]["output_tail"]
        assert tail.endswith("unbuffered")
        facts.append(json.loads(tail.split("FACTS ", 1)[1].splitlines()[0]))
        starts.append(manifest["worker_start"])
    assert starts == ["forked from a server with torch imported", "new Python process per run"]
    assert facts[0] == facts[1]
    assert facts[0]["own_session"] and facts[0]["parent_is_ingestion"] and facts[0]["cwd_is_home"]
    assert facts[0]["stdin"] == "/dev/null" and facts[0]["dont_write_bytecode"]


# The fork bombs run with a smaller cap than the phases' 512: each process they hold is a copy of a worker
# with torch loaded, and forking, then killing, 512 of those costs tens of seconds of kernel time.
FORK_BOMB_CAP = 64


def assert_fork_bomb_held(done, manifest):
    run = manifest["runs"][0]
    assert done.returncode == 0, done.stderr
    assert run["process_cap"].startswith(f"seccomp supervisor: at most {FORK_BOMB_CAP} live processes")
    held = int(run["output_tail"].split("held ")[1].split()[0])
    # One process forks here, so the count is exact: the worker and what it holds stay under the cap.
    assert FORK_BOMB_CAP // 2 <= held < FORK_BOMB_CAP
    assert run["extra"]["refused_process_creations"] >= 50
    assert run["extra"]["killed_leftover_processes"] >= held - 1


def test_fork_bomb_holds_a_bounded_number_of_processes(tiny_phase, tmp_path):
    """Whatever user the worker keeps (root here, where the drop to nobody may fail), the
    seccomp supervisor refuses process creation past the phase's cap, as RLIMIT_NPROC would."""
    input_dir = with_phase_settings(tiny_phase[0], tmp_path / "in", max_processes=FORK_BOMB_CAP)
    assert_fork_bomb_held(*ingest((input_dir,), tmp_path / "res", "fork_bomb", "--num-models", "1"))


def test_fork_bomb_is_held_when_the_ingestion_is_pid_1(tiny_phase, tmp_path):
    """A container started without an init runs the ingestion as pid 1 of its own pid namespace
    (Codabench's workers do): the cap still counts every process below it."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare(1) to make a pid namespace")
    out = tmp_path / "res"
    input_dir = with_phase_settings(tiny_phase[0], tmp_path / "in", max_processes=FORK_BOMB_CAP)
    args = ["--input", input_dir, "--output", out, "--submission", HOSTILE / "fork_bomb",
            "--num-models", "1", "--no-time-limit"]
    command = [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c",
               "import os, runpy, sys; assert os.getpid() == 1, os.getpid(); "
               "sys.argv[0] = 'ingestion'; runpy.run_module('unlearning_challenge.ingestion', run_name='__main__')",
               *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if "unshare failed" in done.stderr:
        pytest.skip(f"no pid namespace here: {done.stderr.strip()}")
    assert_fork_bomb_held(done, json.loads((out / "ingestion.json").read_text()))
