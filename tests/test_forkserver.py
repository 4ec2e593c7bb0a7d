"""The fork server: workers forked from it behave like new processes, and its loss is not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unlearning_challenge.artifacts import ORIGINAL_WEIGHTS
from unlearning_challenge.config import IngestionConfig
from unlearning_challenge.judged import load_input
from unlearning_challenge.reference.calibration import Clock
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner import forkserver
from unlearning_challenge.runner.environment import worker_env
from unlearning_challenge.runner.forkserver import participant_preload, start_early, take_early
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.artifacts import RunStatus
from unlearning_challenge.runner.isolation import WorkerCaps
from unlearning_challenge.runner.session import RunSession

from conftest import ROOT

DO_NOTHING = ROOT / "starting_kit" / "baselines" / "do_nothing"


def folders_for(tiny_phase, workspace) -> RunFolders:
    config, _, dataset, splits = load_input(tiny_phase[0])
    workspace.mkdir()
    return RunFolders(workspace, config, DO_NOTHING, "cpu", tiny_phase[0] / ORIGINAL_WEIGHTS, dataset, splits)


@pytest.fixture()
def session():
    """A session with a fork server (this process becomes the subreaper its workers need)."""
    with RunSession(RunLimits(Clock.WALL, None, wall_limit=120, cpu_limit=None), fork_server=True,
                    caps=WorkerCaps(processes=IngestionConfig().max_processes)) as session:
        assert session.fork_server is not None
        yield session


@pytest.mark.ingestion
def test_a_forked_worker_runs_and_is_waited_for_by_the_ingestion(tiny_phase, session, tmp_path):
    folders = folders_for(tiny_phase, tmp_path / "runs")
    record = session.run(folders.prepare(0))
    assert record.status == RunStatus.OK, record
    assert record.exit_code in (0, None)  # it exits, or is stopped after reporting done
    assert session.worker_start == "forked from a server with torch imported"


@pytest.mark.ingestion
def test_losing_the_fork_server_falls_back_to_new_processes(tiny_phase, session, tmp_path):
    session.fork_server.wait_ready()
    session.fork_server.process.kill()
    session.fork_server.process.wait()
    folders = folders_for(tiny_phase, tmp_path / "runs")
    record = session.run(folders.prepare(0))
    assert record.status == RunStatus.OK, record
    assert session.worker_start.startswith("new Python process per run (the fork server stopped answering")


@pytest.mark.ingestion
def test_a_fork_server_started_early_is_taken_once_by_a_session_it_suits_or_closed():
    env = worker_env(Path("/"))
    start_early(env, DO_NOTHING)
    unsuited = forkserver._early
    assert take_early(env, ("pandas",)) is None  # started for other preloads: closed, its folder removed
    assert unsuited.process.poll() is not None and not Path(unsuited.matplotlib_dir).exists()
    start_early(env, DO_NOTHING)
    early = forkserver._early
    with RunSession(RunLimits(Clock.WALL, None, wall_limit=120, cpu_limit=None), fork_server=True,
                    caps=WorkerCaps(processes=IngestionConfig().max_processes),
                    preload=participant_preload(DO_NOTHING)) as session:
        assert session.fork_server is early and early.pid in session.own_processes
        assert take_early(env, ()) is None  # taken once
    assert early.process.poll() is not None and not Path(early.matplotlib_dir).exists()


def test_missing_capabilities_reads_the_effective_set(tmp_path):
    from unlearning_challenge.runner.isolation import missing_capabilities

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nCapEff:\t00000000a80425fb\n")  # docker's default set: both present
    assert missing_capabilities(status) == []
    status.write_text("Name:\tpython\nCapEff:\t0000000000000000\n")  # Codabench: cap_drop ALL
    assert missing_capabilities(status) == ["CAP_SETUID", "CAP_SETGID"]
    assert missing_capabilities(tmp_path / "absent") == []


def test_root_without_setuid_keeps_its_user_and_says_why(monkeypatch):
    from unlearning_challenge.runner import isolation

    monkeypatch.setattr(isolation.os, "geteuid", lambda: 0)
    monkeypatch.setattr(isolation, "missing_capabilities", lambda: ["CAP_SETUID", "CAP_SETGID"])
    identity, warning = isolation.worker_identity({})
    assert not identity.dropped
    assert warning.startswith("running as root without CAP_SETUID and CAP_SETGID (a container started with its "
                              "capabilities dropped, as Codabench's workers do)")


def test_the_fork_server_preloads_only_the_participant_libraries_a_submission_names(tmp_path):
    submission = tmp_path / "submission"
    (submission / "helpers").mkdir(parents=True)
    (submission / "unlearning.py").write_text("import torch\nfrom helpers.plots import show\n")
    (submission / "helpers" / "plots.py").write_text("import seaborn as sns  # and pandas, in a comment\n")
    (submission / "notes.txt").write_text("sklearn\n")  # not Python: not read
    (tmp_path / "outside.py").write_text("import scipy.stats\n")
    (submission / "linked.py").symlink_to(tmp_path / "outside.py")  # never followed
    os.mkfifo(submission / "pipe.py")  # not a regular file: never opened for reading
    assert participant_preload(submission) == ("pandas", "seaborn")
    assert participant_preload(ROOT / "starting_kit" / "sample_submission") == ()
