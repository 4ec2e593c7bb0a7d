"""The typed manifests: the committed files load and are rewritten byte for byte; errors name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearning_challenge.artifacts import (
    ArtifactError,
    IngestionManifest,
    InputManifest,
    ReferenceManifest,
    RunRecord,
    RunStatus,
    read_ingestion_manifest,
    read_input_manifest,
    read_reference_manifest,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder, read", [("input_data", read_input_manifest),
                                          ("reference_data", read_reference_manifest)])
def test_committed_manifests_load_and_are_rewritten_identically(folder, read, tmp_path):
    source = ROOT / folder / "manifest.json"
    if not source.is_file():
        pytest.skip(f"{folder}/manifest.json is not committed here")
    manifest = read(ROOT / folder)
    assert manifest.num_models >= 2 and len(manifest.config_fingerprint) == 64
    write_manifest(tmp_path, manifest)
    assert (tmp_path / "manifest.json").read_bytes() == source.read_bytes()


def test_input_manifest_fields_are_attributes():
    manifest = read_input_manifest(ROOT / "input_data")
    assert manifest.time_budget_seconds == pytest.approx(manifest.time_fraction * manifest.mean_retrain_seconds)
    assert 0 <= manifest.original.retain_accuracy <= 1


def _write_raw(folder: Path, data: dict, name: str = "manifest.json") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


REFERENCE = {"format": "unlearning-challenge/reference", "format_version": 1, "phase": "check",
             "config_fingerprint": "a" * 64, "split_fingerprint": "b" * 64, "num_models": 4}


def test_a_missing_key_is_named(tmp_path):
    _write_raw(tmp_path, {k: v for k, v in REFERENCE.items() if k != "num_models"})
    with pytest.raises(ArtifactError, match="reference data: manifest.json: missing required key 'num_models'"):
        read_reference_manifest(tmp_path)


def test_a_key_of_the_wrong_kind_is_named(tmp_path):
    _write_raw(tmp_path, {**REFERENCE, "num_models": "4"})
    with pytest.raises(ArtifactError, match=r"manifest.json: 'num_models' must be an integer, got '4'"):
        read_reference_manifest(tmp_path)
    _write_raw(tmp_path, {**REFERENCE, "num_models": True})
    with pytest.raises(ArtifactError, match="'num_models' must be an integer, got True"):
        read_reference_manifest(tmp_path)
    _write_raw(tmp_path, {**REFERENCE, "num_models": 4.5})
    with pytest.raises(ArtifactError, match="manifest.json: 'num_models' must be an integer, got 4.5"):
        read_reference_manifest(tmp_path)
    _write_raw(tmp_path, {**REFERENCE, "retrained": {"retain_accuracy": 0.5, "test_accuracy": 0.5}})
    with pytest.raises(ArtifactError, match="manifest.json: missing required key 'retrained.forget_accuracy'"):
        read_reference_manifest(tmp_path)


def test_format_and_version_are_checked(tmp_path):
    _write_raw(tmp_path, {**REFERENCE, "format_version": 2})
    with pytest.raises(ArtifactError, match="has format version 2, this program reads 1"):
        read_reference_manifest(tmp_path)
    _write_raw(tmp_path, REFERENCE)
    with pytest.raises(ArtifactError, match="is not a unlearning-challenge/input manifest"):
        read_input_manifest(tmp_path)


def test_absent_optional_keys_stay_absent_when_rewritten(tmp_path):
    _write_raw(tmp_path / "in", REFERENCE)
    manifest = read_reference_manifest(tmp_path / "in")
    assert manifest.arrays_sha256 is None and manifest.retrained is None
    assert manifest.to_json() == REFERENCE


def test_ingestion_manifest_short_and_full_forms(tmp_path):
    write_manifest(tmp_path, IngestionManifest(status="failed", message="no input"))
    assert json.loads((tmp_path / "ingestion.json").read_text()) == {
        "format": "unlearning-challenge/ingestion", "format_version": 1, "status": "failed",
        "message": "no input", "runs": []}
    full = IngestionManifest(status="ok", message="1 run(s) completed", phase="check", config_fingerprint="a",
                             split_fingerprint="b", num_models=1, num_models_reference=4, time_budget_seconds=None,
                             budget_clock="wall", time_limit_enforced=False, device="cpu", package_version="0",
                             arrays_sha256="c", timing={"clock": "wall"}, worker_user="nobody",
                             isolation_warning=None, runs=(RunRecord(index=0, status="ok", cpu_seconds=1.5),))
    write_manifest(tmp_path, full)
    data = json.loads((tmp_path / "ingestion.json").read_text())
    assert data["time_budget_seconds"] is None and data["isolation_warning"] is None
    assert "worker_start" not in data
    assert read_ingestion_manifest(tmp_path) == full


def test_a_runners_record_is_written_and_read_back_unchanged(tmp_path):
    record = RunRecord(index=3, seed=7, status=RunStatus.TIMEOUT, seconds=2.5, cpu_seconds=None,
                       message="past the budget", output_tail="hello\n", output_bytes=6, exit_code=-9,
                       confinement="landlock", process_cap="RLIMIT_NPROC", extra={"note": 1})
    write_manifest(tmp_path, IngestionManifest(status="failed", message="m", runs=(record,)))
    (written,) = json.loads((tmp_path / "ingestion.json").read_text())["runs"]
    assert written == {"index": 3, "seed": 7, "status": "timeout", "seconds": 2.5, "cpu_seconds": None,
                       "message": "past the budget", "traceback_tail": "", "output_tail": "hello\n",
                       "output_bytes": 6, "exit_code": -9, "confinement": "landlock", "process_cap": "RLIMIT_NPROC",
                       "extra": {"note": 1}}
    (run,) = read_ingestion_manifest(tmp_path).runs
    assert run == record and run.status is RunStatus.TIMEOUT and not run.ok and run.message == "past the budget"


def test_a_run_record_takes_only_known_statuses_and_failures():
    assert RunRecord(index=0, status="ok").status is RunStatus.OK
    assert RunRecord(index=0, failure="exited").failure.sentence.startswith("the worker process ended")
    with pytest.raises(ValueError, match="'fine' is not a valid RunStatus"):
        RunRecord(index=0, status="fine")


@pytest.mark.parametrize("runs, message", [
    ([3], r"'runs\[0\]' must be an object, got 3"),
    ([{"index": 0, "status": "ok"}, {"index": 1}], r"missing required key 'runs\[1\].status'"),
    ([{"index": 0, "status": "ok", "seconds": "fast"}], r"'runs\[0\].seconds' must be a number \(seconds\), got 'fast'"),
    ([{"index": 0, "status": "fine"}], r"'runs\[0\].status' must be ok, timeout, crashed, bad_output or stopped, got 'fine'"),
    ([{"index": 1.0, "status": "ok"}], r"ingestion.json: 'runs\[0\].index' must be an integer, got 1.0"),
    ([{"index": 0, "status": None}], r"'runs\[0\].status' must be ok, timeout, crashed, bad_output or stopped, got None"),
    ({"index": 0}, r"'runs' must be a list, got \{'index': 0\}"),
])
def test_a_bad_run_entry_is_named(tmp_path, runs, message):
    (tmp_path / "ingestion.json").write_text(json.dumps({
        "format": "unlearning-challenge/ingestion", "format_version": 1, "status": "failed", "runs": runs}))
    with pytest.raises(ArtifactError, match=message):
        read_ingestion_manifest(tmp_path)


def test_typed_manifests_are_frozen():
    manifest = ReferenceManifest(phase="p", config_fingerprint="a", split_fingerprint="b", num_models=2)
    with pytest.raises(AttributeError):
        manifest.num_models = 3  # type: ignore[misc]
    assert isinstance(InputManifest.FORMAT, str)


def test_unknown_keys_are_ignored_and_an_integer_is_a_number(tmp_path):
    _write_raw(tmp_path, {**REFERENCE, "written_by_a_newer_program": 1,
                          "retrained": {"retain_accuracy": 1, "test_accuracy": 0.5, "forget_accuracy": 0.5}})
    manifest = read_reference_manifest(tmp_path)
    assert manifest.retrained.retain_accuracy == 1.0 and isinstance(manifest.retrained.retain_accuracy, float)
