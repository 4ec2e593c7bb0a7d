"""No orphan, ever: when the trusted process that owns a run dies (SIGKILL of the ingestion or of
``evaluate``; of a Ray run slot: test_evaluate), nothing of the run lives on and no ``unlearning-runs-*``
folder is left; SIGTERM stops ``evaluate`` as Ctrl-C does; the guardian, the parent-death signals and the CPU rlimit on their own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import ROOT
from unlearning_challenge.reference.calibration import Clock
from unlearning_challenge.runner.isolation import WorkerCaps, WorkerIdentity, worker_limits
from unlearning_challenge.runner.limits import RunLimits

LOOPS = ROOT / "tests" / "hostile" / "endless_loop"
WORKER_NAME = "unlearning-run"
# What must be gone once the trusted process is killed.
CLEANUP_SECONDS = 10.0


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _looping_worker(process: subprocess.Popen, log: Path, timeout: float = 300) -> psutil.Process:
    """The run's worker below ``process`` once it has spent 2 CPU seconds (its setup takes far less: it
    loops in the submission's ``unlearning``)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if child.name() == WORKER_NAME and sum(child.cpu_times()[:2]) >= 2.0:
                    return child
            except psutil.Error:
                pass
        time.sleep(0.2)


def _left_over(tree: list[psutil.Process], worker_user: str) -> list[str]:
    """What still lives of the killed process's tree: any of its processes (the fork server, the guardian,
    the worker) and any process named like a worker, of the worker's user, in the session of one of them."""
    left = [f"{p.pid} {p.name()}" for p in tree if _alive(p)]
    sessions = {p.pid for p in tree}
    for p in psutil.process_iter(["name", "username"]):
        try:
            if (p.info["name"] == WORKER_NAME and p.info["username"] == worker_user and os.getsid(p.pid) in sessions
                    and _alive(p)):
                left.append(f"{p.pid} {WORKER_NAME} ({worker_user})")
        except (psutil.Error, OSError):
            pass
    return left


def _own_folders(tmp: Path) -> list[str]:
    return sorted(path.name for path in tmp.iterdir() if path.name.startswith(("unlearning-runs-", "forkserver-")))


def _guardian_said(log: Path) -> bool:
    return bool(re.search(r"unlearning-wdog: the trusted process \d+ died; the processes of its runs were killed "
                          r"and their folders removed", log.read_text()))


def _nothing_left(tree: list[psutil.Process], worker_user: str, tmp: Path, log: Path | None = None) -> None:
    """Within CLEANUP_SECONDS: nothing of ``tree`` lives, no folder is left in ``tmp`` and, with ``log``, the
    guardian said what it did there."""
    deadline = time.monotonic() + CLEANUP_SECONDS
    while _left_over(tree, worker_user) or _own_folders(tmp) or (log is not None and not _guardian_said(log)):
        if time.monotonic() > deadline:
            _kill_all(tree)  # nothing of this test outlives it either
            pytest.fail(f"{CLEANUP_SECONDS:.0f} s after the kill: processes {_left_over(tree, worker_user)}, "
                        f"folders {_own_folders(tmp)}; log:\n{log.read_text() if log else ''}")
        time.sleep(0.1)


def _start(argv: list[str], tmp_path: Path, env: dict | None = None) -> tuple[subprocess.Popen, Path, Path]:
    """``python -m argv`` with a private TMPDIR (only this test's folders are looked at)."""
    tmp, log = tmp_path / "tmp", tmp_path / "log.txt"
    tmp.mkdir()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", *map(str, argv)], stdout=out, stderr=subprocess.STDOUT,
                                   cwd=ROOT, env={**(env or os.environ), "TMPDIR": str(tmp)})
    return process, tmp, log


def _kill_while_looping(process: subprocess.Popen, log: Path, signum: int) -> tuple[list[psutil.Process], str]:
    """Send ``signum`` to ``process`` while its run loops; (its tree just before, the worker's user)."""
    try:
        worker = _looping_worker(process, log)
        user = worker.username()
        tree = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return tree, user


def test_sigkill_of_the_ingestion_leaves_no_process_and_no_folder(tiny_phase, tmp_path):
    process, tmp, log = _start(["unlearning_challenge.ingestion", "--input", tiny_phase[0], "--submission", LOOPS,
                                "--output", tmp_path / "res", "--no-time-limit", "--num-models", "1"], tmp_path)
    tree, user = _kill_while_looping(process, log, signal.SIGKILL)
    _nothing_left(tree, user, tmp, log)


def test_sigkill_of_local_score_takes_its_ingestion_and_runs_along(tiny_phase, tmp_path):
    """The command's ingestion program dies with it (a parent-death signal), and the guardian then cleans up."""
    input_dir, reference_dir, _ = tiny_phase
    process, tmp, log = _start(["unlearning_challenge", "local-score", "--submission", LOOPS, "--input-data",
                                input_dir, "--reference-data", reference_dir, "--output", tmp_path / "out",
                                "--no-time-limit"], tmp_path)
    tree, user = _kill_while_looping(process, log, signal.SIGKILL)
    _nothing_left(tree, user, tmp, log)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_or_stopped_evaluate_leaves_no_process_and_no_folder(tiny_phase, tmp_path, signum):
    input_dir, reference_dir, _ = tiny_phase
    process, tmp, log = _start(["unlearning_challenge", "evaluate", LOOPS, "--output", tmp_path / "out",
                                "--input-data", input_dir, "--reference-data", reference_dir, "--no-time-limit"],
                               tmp_path)  # its first run never ends
    tree, user = _kill_while_looping(process, log, signum)
    if signum == signal.SIGTERM:  # as Ctrl-C: the runs stopped, the command says so
        assert process.returncode == 130, log.read_text()
        assert "evaluate: interrupted; the finished runs stay in" in log.read_text()
    _nothing_left(tree, user, tmp, log if signum == signal.SIGKILL else None)


# A trusted process holding a guardian: a subreaper (as a session makes it) with a "worker" in a session of
# its own and an orphan that left it (reparented here), then nothing; the test kills it.
TRUSTED = textwrap.dedent("""
    import os, subprocess, sys, time
    from unlearning_challenge.runner.guardian import Guardian
    from unlearning_challenge.runner.reaping import become_subreaper

    assert become_subreaper()
    guardian = Guardian(spared=set())
    worker = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    guardian.worker(worker.pid)
    guardian.folder(sys.argv[1])
    if os.fork() == 0:  # an orphan in a session of its own, reparented to this process
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "1001"])
        os._exit(0)
    time.sleep(1.5)  # the guardian notes the orphan
    if sys.argv[2] == "bye":
        guardian.close()
        print("closed", flush=True)
    print(guardian.pid, flush=True)
    time.sleep(1000)
""")


def _trusted_process(tmp_path: Path, how: str) -> tuple[subprocess.Popen, list[psutil.Process], int]:
    """The trusted process, its tree and its guardian's pid (the guardian is detached: not in the tree)."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    process = subprocess.Popen([sys.executable, "-c", TRUSTED, str(folder), how], stdout=subprocess.PIPE, text=True,
                               cwd=ROOT)
    if how == "bye":
        assert process.stdout.readline().strip() == "closed"
    guardian = int(process.stdout.readline())
    tree = psutil.Process(process.pid).children(recursive=True)
    return process, tree, guardian


def _kill_all(tree: list[psutil.Process]) -> None:
    for p in tree:
        try:
            p.kill()
        except psutil.Error:
            pass


def test_the_guardian_kills_the_runs_and_removes_the_folders_of_a_dead_trusted_process(tmp_path):
    process, tree, guardian = _trusted_process(tmp_path, "die")
    try:
        sleeps = [p for p in tree if p.name() == "sleep"]
        assert len(sleeps) == 2 and psutil.Process(guardian).name() == "unlearning-wdog", tree
        assert psutil.Process(guardian).ppid() != process.pid  # detached: a runtime killing the children spares it
        tree.append(psutil.Process(guardian))
        process.kill()
        process.wait()
        deadline = time.monotonic() + CLEANUP_SECONDS
        while any(_alive(p) for p in tree) or (tmp_path / "workspace").exists():
            assert time.monotonic() < deadline, [p for p in tree if _alive(p)]
            time.sleep(0.05)
    finally:
        _kill_all(tree)


def test_a_guardian_told_bye_leaves_everything_as_it_is(tmp_path):
    process, tree, guardian = _trusted_process(tmp_path, "bye")
    try:
        assert not psutil.pid_exists(guardian) or psutil.Process(guardian).status() == psutil.STATUS_ZOMBIE
        process.kill()
        process.wait()
        time.sleep(1.0)
        assert all(_alive(p) for p in tree if p.name() == "sleep") and (tmp_path / "workspace").is_dir()
    finally:
        _kill_all(tree)


def test_the_cpu_rlimit_is_a_little_above_the_cpu_hard_limit_or_what_the_cores_spend_in_the_wall_limit():
    assert RunLimits(Clock.CPU, 10.0, wall_limit=90.0, cpu_limit=30.0).cpu_backstop_seconds(4) == 98
    assert RunLimits(Clock.WALL, None, wall_limit=600.0, cpu_limit=None).cpu_backstop_seconds(2) == 1560
    limits = subprocess.run(["sh", "-c", "ulimit -St; ulimit -Ht"], capture_output=True, text=True, check=True,
                            preexec_fn=worker_limits(WorkerCaps(processes=64, cpu_seconds=98), WorkerIdentity()))
    assert limits.stdout.split() == ["98", "98"]

