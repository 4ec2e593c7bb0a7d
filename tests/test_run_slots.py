"""The Ray backend's parts that need no cluster: how many slots fit, what a slot reserves, each node's
budget recorded once, a slot's shared memory and users, the trusted folders' modes, the runs' budgets in
the ingestion output, a slot lost for memory."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
import ray.exceptions
import torch

from conftest import ROOT
from unlearning_challenge.artifacts import RunRecord
from unlearning_challenge.evaluation.driver import run_budgets
from unlearning_challenge.evaluation.ray_runs import _out_of_memory, slot_count
from unlearning_challenge.evaluation.runs import Budget, Phase
from unlearning_challenge.evaluation.slots import CALIBRATION_FOLDER, node_budget, slot_memory_bytes
from unlearning_challenge.evaluation.work import RunResult
from unlearning_challenge.failures import Failure
from unlearning_challenge.runner import shared_memory
from unlearning_challenge.runner.isolation import (
    MAX_SLOTS,
    SLOT_UID_BASE,
    close_to_workers,
    folder_modes,
    slot_identity,
)

GIB = 2**30


@pytest.mark.parametrize("request_, nodes, runs, slots", [
    ({"CPU": 1, "memory": 2 * GIB}, [{"CPU": 2, "memory": 8 * GIB}, {"CPU": 4, "memory": 3 * GIB}], 100, 3),
    ({"CPU": 2}, [{"CPU": 2}, {"CPU": 5}], 100, 3),
    ({"CPU": 1, "GPU": 1}, [{"CPU": 16, "GPU": 8}, {"CPU": 8, "GPU": 0}], 100, 8),
    ({"CPU": 1}, [{"CPU": 16}], 4, 4),  # no more slots than runs
    ({"CPU": 4}, [{"CPU": 2}], 10, 1),  # at least one (the cluster check refused what cannot run at all)
])
def test_slots_are_what_each_node_holds_side_by_side(request_, nodes, runs, slots):
    assert slot_count(request_, nodes, runs) == slots


def test_a_slot_reserves_the_runs_cap_and_its_own_memory_unless_told():
    assert slot_memory_bytes(0.0, None) == int(6 * GIB)  # 4 GiB for a run without a cap, 2 for the slot
    assert slot_memory_bytes(16.0, None) == int(18 * GIB)
    assert slot_memory_bytes(16.0, 3.5) == int(3.5 * GIB)


def test_a_slot_killed_for_memory_is_told_from_a_lost_one():
    assert _out_of_memory(ray, ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on "
                                                                "memory."))
    assert _out_of_memory(ray, ray.exceptions.RayActorError(error_msg="The actor died because its worker was "
                                                                      "killed by the memory monitor."))
    assert not _out_of_memory(ray, ray.exceptions.RayActorError(error_msg="The actor died because its node died."))
    assert "--memory-per-run" in Failure.OUT_OF_MEMORY.sentence


def test_each_nodes_budget_and_runs_are_in_the_ingestion_output():
    def result(index: int, node: str, budget: float, ratio: float) -> RunResult:
        return RunResult(RunRecord(index=index), {"node": "host", "ray_node_id": node, "budget": budget,
                                                  "timing": {"speed_ratio": ratio}})

    results = [result(0, "a" * 56, 20.0, 1.0), result(1, "b" * 56, 30.0, 1.5), result(2, "a" * 56, 20.0, 1.0)]
    assert run_budgets(results) == (
        {"node": "host", "ray_node_id": "a" * 56, "budget_seconds": 20.0, "speed_ratio": 1.0, "runs": [0, 2]},
        {"node": "host", "ray_node_id": "b" * 56, "budget_seconds": 30.0, "speed_ratio": 1.5, "runs": [1]},
    )


def test_the_first_slot_of_a_node_calibrates_and_the_others_read_its_record(tmp_path, monkeypatch):
    phase = Phase.load(ROOT / "input_data")  # the Check phase
    calibrations = []
    calibrate = Budget.calibrate.__func__
    monkeypatch.setattr(Budget, "calibrate", classmethod(lambda cls, *a, **k: calibrations.append(1) or
                                                         calibrate(cls, *a, **k)))
    budgets = []

    def slot() -> None:
        budgets.append(node_budget(phase, tmp_path, "node-1", torch.device("cpu"), 1, no_time_limit=False))

    threads = [threading.Thread(target=slot) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calibrations) == 1 and len(budgets) == 3
    assert len({(b.seconds, b.timing["speed_ratio"], b.limits) for b in budgets}) == 1
    record = json.loads((tmp_path / CALIBRATION_FOLDER / "node-1-cpu-1t.json").read_text())
    assert record["budget_seconds"] == budgets[0].seconds > 0 and record["ray_node_id"] == "node-1"
    assert "scaled by" in record["timing"]["explanation"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_a_slot_clears_only_its_own_users_shared_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_memory, "SHARED_MEMORY", str(tmp_path))
    before = shared_memory.shared_memory_entries()
    for name, uid in (("mine", SLOT_UID_BASE + 1), ("theirs", SLOT_UID_BASE + 2)):
        (tmp_path / name).write_bytes(b"x")
        os.chown(tmp_path / name, uid, uid)
    shared_memory.clear_shared_memory(before, owner=SLOT_UID_BASE + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]
    shared_memory.clear_shared_memory(before)  # a session of the trusted user's own workers: everything new
    assert not list(tmp_path.iterdir())


def test_slots_close_the_trusted_folders_for_good_and_the_evaluation_restores_them(tmp_path):
    folders = [tmp_path / "input_data", tmp_path / "work"]
    for folder in folders:
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    with folder_modes(folders):
        assert close_to_workers(folders) == []
        assert close_to_workers(folders) == []  # a second slot of the node: nothing to undo when the first ends
        assert {stat.S_IMODE(f.stat().st_mode) for f in folders} == {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for f in folders} == {0o755}
    assert close_to_workers([tmp_path / "missing"])[0].startswith(f"could not restrict access to {tmp_path}/missing")


def test_slot_users_are_a_documented_range():
    with pytest.raises(ValueError, match=f"run slot {MAX_SLOTS} outside 0..{MAX_SLOTS - 1}"):
        slot_identity(MAX_SLOTS, {})
    if os.geteuid() != 0:  # an ordinary user: every slot keeps it
        identity, warning = slot_identity(0, {})
        assert not identity.dropped and warning == ""
