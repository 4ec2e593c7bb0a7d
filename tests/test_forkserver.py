"""The fork server: workers forked from it behave like new processes, and its loss is not fatal."""

from __future__ import annotations

import shutil

import pytest
import torch

from unlearning_challenge.artifacts import ORIGINAL_WEIGHTS
from unlearning_challenge.ingestion import RunPlan, load_input, start_fork_server
from unlearning_challenge.runner.isolation import WorkerIdentity
from unlearning_challenge.runner.session import become_subreaper, kill_leftovers, own_children

from conftest import ROOT

DO_NOTHING = ROOT / "starting_kit" / "baselines" / "do_nothing"


def plan_for(tiny_phase, workspace, server) -> RunPlan:
    config, _, dataset, splits = load_input(tiny_phase[0])
    workspace.mkdir()
    return RunPlan(workspace, config, DO_NOTHING, torch.device("cpu"), tiny_phase[0] / ORIGINAL_WEIGHTS,
                   dataset, splits, 0, WorkerIdentity(), server)


def start_and_finish(plan: RunPlan, index: int) -> tuple[dict, int | None]:
    worker = plan.start(index)
    ready = worker.wait_ready()
    reply = worker.go(wall_limit=120).message
    code = worker.stop()
    shutil.rmtree(plan.run_dir(index))
    assert ready.get("event") == "ready", worker.output.tail()
    return reply, code


@pytest.fixture()
def fork_server(tiny_phase):
    """A fork server for the tiny phase, with this process as the subreaper its workers need."""
    assert become_subreaper()
    keep = own_children()
    server = start_fork_server(load_input(tiny_phase[0])[0], subreaper=True)
    yield server
    server.close()
    kill_leftovers(keep)


def test_a_forked_worker_runs_and_is_waited_for_by_the_ingestion(tiny_phase, fork_server, tmp_path):
    plan = plan_for(tiny_phase, tmp_path / "runs", fork_server)
    reply, code = start_and_finish(plan, 0)
    assert reply.get("event") == "done" and code in (0, -9)  # it exits, or is stopped after reporting done
    assert plan.worker_start() == "forked from a server with torch imported"


def test_losing_the_fork_server_falls_back_to_new_processes(tiny_phase, fork_server, tmp_path):
    fork_server.wait_ready()
    fork_server.process.kill()
    fork_server.process.wait()
    plan = plan_for(tiny_phase, tmp_path / "runs", fork_server)
    reply, _ = start_and_finish(plan, 0)
    assert reply.get("event") == "done"
    assert plan.worker_start().startswith("new Python process per run (the fork server stopped answering")


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
