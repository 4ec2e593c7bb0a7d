"""Several original models (``reference.num_originals: K``): the config's checks, the reference's
originals, the ingestion's checks of them, and a tiny phase with K = 2 run end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import ROOT, built_once, run_module, run_scoring, shared_folder
from unlearning_challenge.artifacts import (
    ArtifactError,
    IngestionManifest,
    RunRecord,
    original_weights_name,
    read_ingestion_manifest,
    read_input_manifest,
    sha256_file,
    write_manifest,
)
from unlearning_challenge.config import ConfigError, config_from_dict, dump_config, load_config
from unlearning_challenge.ingestion import IngestionError, check_original_asked
from unlearning_challenge.judged import load_input, original_weights
from unlearning_challenge.runner.folders import RunFolders

SAMPLE = ROOT / "starting_kit" / "sample_submission"


def _reference(**reference) -> dict:
    return {"name": "x", "reference": reference}


@pytest.mark.parametrize("reference, message", [
    ({"num_originals": 0}, "x.yaml: 'reference.num_originals' must be at least 1, got 0: set it to 1"),
    ({"num_originals": 5, "num_models": 4},
     r"x.yaml: 'reference.num_originals' \(K = 5\) is more than 'reference.num_models' \(N = 4\): every original "
     r"needs at least one run; set K to a divisor of N \(1, 2, 4\) or raise N"),
    ({"num_originals": 3, "num_models": 10},
     r"x.yaml: 'reference.num_models' \(N = 10\) is not a multiple of 'reference.num_originals' \(K = 3\): every "
     r"original starts N/K runs; with K = 3 set N to a multiple of 3 \(e.g. 9 or 12\), or with N = 10 set K to "
     r"one of 1, 2, 5, 10"),
    ({"num_originals": 2, "num_models": 4, "seed_start": 12346},
     r"include 12346, a retrained model's seed .* move 'reference.original_seed' or 'reference.seed_start' apart"),
], ids=["k_below_1", "k_above_n", "n_not_a_multiple_of_k", "seeds_clash"])
def test_a_bad_number_of_originals_is_refused_naming_what_works(reference, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_reference(**reference), "x.yaml")


def test_one_original_changes_neither_the_phase_file_nor_the_fingerprint():
    config = load_config(ROOT / "phases" / "default.yaml")
    assert config.reference.num_originals == 1
    assert "num_originals" not in dump_config(config)
    assert config.fingerprint() == read_input_manifest(ROOT / "input_data").config_fingerprint
    four = replace(config, reference=replace(config.reference, num_originals=4))
    assert "num_originals: 4" in dump_config(four)
    # Original k is fixed by its seed whatever K is, and the retrained models do not depend on K.
    assert four.fingerprint() == config.fingerprint()
    assert four.reference.original_seeds() == [12345, 12346, 12347, 12348]
    assert config_from_dict(json.loads(json.dumps(four.to_dict()))) == four


def test_the_seeds_phase_is_the_check_phase_with_four_originals():
    check, seeds = load_config(ROOT / "phases" / "default.yaml"), load_config(ROOT / "phases" / "seeds.yaml")
    assert seeds.reference.num_originals == 4
    assert replace(seeds, description=check.description, reference=replace(seeds.reference, num_originals=1)) == check
    # Same retrained models: its outputs are scored against the Check phase's reference data.
    assert seeds.fingerprint() == read_input_manifest(ROOT / "input_data").config_fingerprint


def test_original_asked_must_exist():
    config = config_from_dict(_reference(num_originals=2, num_models=4))
    check_original_asked(1, config)
    with pytest.raises(IngestionError, match=r"--original 2: the input data hold 2 original model\(s\) "
                                             r"\(reference.num_originals\); choose one of originals 0 .. 1"):
        check_original_asked(2, config)


@pytest.fixture(scope="session")
def two_originals(tiny_phase, tmp_path_factory):
    """(input_dir, reference_dir, config) of the tiny phase grown to N = 4 runs from K = 2 originals.

    Its work folder is copied (K is not part of the fingerprint: original 0 and the retrained models are
    the tiny phase's), so only original 1 trains. The fourth retrained model's record is a copy of the
    third's: these tests check which original each run starts from, not the reference, and a retrained
    model would cost four times the original's training in calibration timing.
    """
    from unlearning_challenge.reference.generate import generate_reference
    from unlearning_challenge.reference.models import pick_device
    from unlearning_challenge.reference.work import WorkFolder

    config = replace(tiny_phase[2], reference=replace(tiny_phase[2].reference, num_models=4, num_originals=2))

    def build(root: Path) -> None:
        work = WorkFolder(root / "work")
        shutil.copytree(tiny_phase[0].parent / "work", work.root)
        shutil.copy(work.retrained(2), work.retrained(3))
        generate_reference(config, work_dir=work.root, input_dir=root / "input_data",
                           reference_dir=root / "reference_data", device=pick_device("cpu"), log=lambda _: None)

    root = built_once(shared_folder(tmp_path_factory, "two_originals"), build)
    return root / "input_data", root / "reference_data", config


def test_the_reference_stores_each_original_with_its_seed_and_sha256(two_originals, tiny_phase):
    input_dir, reference_dir, config = two_originals
    manifest = read_input_manifest(input_dir)
    assert manifest.num_originals == 2
    assert [(o.file, o.seed) for o in manifest.originals] == [("original.safetensors", 12345),
                                                              ("original_1.safetensors", 12346)]
    for record in manifest.originals:
        assert record.sha256 == sha256_file(input_dir / record.file)
        assert 0 <= record.test_accuracy <= 1 and record.seconds > 0
    assert manifest.original == read_input_manifest(tiny_phase[0]).original  # original 0 is the tiny phase's
    assert (input_dir / "original.safetensors").read_bytes() == (tiny_phase[0] / "original.safetensors").read_bytes()
    assert manifest.originals[0].sha256 != manifest.originals[1].sha256
    assert original_weights(input_dir, config) == [input_dir / original_weights_name(k) for k in (0, 1)]


def _copy(input_dir: Path, target: Path) -> Path:
    shutil.copytree(input_dir, target)
    return target


def test_input_data_missing_an_original_is_refused_before_any_run(two_originals, tmp_path):
    from unlearning_challenge.ingestion import run_ingestion

    inputs = _copy(two_originals[0], tmp_path / "input_data")
    (inputs / "original_1.safetensors").unlink()
    message = (r"input data: manifest.json lists 2 original models but .*input_data lacks original_1.safetensors: "
               r"copy the phase's whole input data folder again, or regenerate it with `make reference`")
    with pytest.raises(ArtifactError, match=message):
        run_ingestion(input_dir=inputs, output_dir=tmp_path / "res", submission=SAMPLE, no_time_limit=True,
                      log=lambda _: None)
    assert not (tmp_path / "res" / "ingestion.json").exists()


def test_an_original_that_differs_from_its_sha256_is_refused(two_originals, tmp_path):
    inputs = _copy(two_originals[0], tmp_path / "input_data")
    shutil.copy(inputs / "original.safetensors", inputs / "original_1.safetensors")
    with pytest.raises(ArtifactError, match=r"input data: original_1.safetensors \(original 1\) does not match its "
                                            r"sha256 in manifest.json \(truncated, corrupt or another model\)"):
        load_input(inputs)


def test_a_phase_file_whose_k_differs_from_the_manifest_is_refused(two_originals, tmp_path):
    inputs = _copy(two_originals[0], tmp_path / "input_data")
    config = two_originals[2]
    (inputs / "phase.yaml").write_text(dump_config(replace(config, reference=replace(config.reference,
                                                                                     num_originals=4))))
    with pytest.raises(ArtifactError, match=r"input data: phase.yaml has reference.num_originals 4 but manifest.json "
                                            r"lists 2 original model\(s\)"):
        load_input(inputs)


@pytest.mark.ingestion
def test_runs_alternate_originals_and_scoring_splits_them(two_originals, tmp_path):
    input_dir, reference_dir, _ = two_originals
    done = run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", tmp_path / "res",
                      "--submission", SAMPLE, "--no-time-limit")
    assert done.returncode == 0, done.stderr
    assert "run i from original i mod 2" in done.stderr
    manifest = read_ingestion_manifest(tmp_path / "res")
    assert [(r.index, r.original) for r in manifest.runs] == [(0, 0), (1, 1), (2, 0), (3, 1)]
    assert all(r.ok for r in manifest.runs)
    if importlib.util.find_spec("unlearning_challenge.scoring.originals") is None:
        pytest.skip("scoring does not report per-original results yet")
    scored = run_scoring("--res", tmp_path / "res", "--ref", reference_dir, "--output", tmp_path / "scores")
    assert scored.returncode == 0, scored.stderr
    originals = json.loads((tmp_path / "scores" / "scores.json").read_text())["originals"]
    assert originals["num_originals"] == 2 and len(originals["per_original"]) == 2
    assert {"retain_accuracy", "test_accuracy", "forget_confidence"} <= set(originals["training_seed_share"])


def test_each_run_folder_holds_its_original(two_originals, tmp_path):
    input_dir, _, config = two_originals
    _, _, dataset, splits = load_input(input_dir)
    paths = original_weights(input_dir, config)
    spread = RunFolders(tmp_path / "spread", config, SAMPLE, "cpu", paths, dataset, splits)
    fixed = RunFolders(tmp_path / "fixed", config, SAMPLE, "cpu", paths, dataset, splits, start_from=1)
    for index in range(4):
        for folders, original in ((spread, index % 2), (fixed, 1)):
            assert folders.original_of(index) == original
            job = folders.prepare(index)
            assert Path(job.model).read_bytes() == paths[original].read_bytes()
            folders.remove(index)
    single = RunFolders(tmp_path / "single", config, SAMPLE, "cpu", paths[0], dataset, splits)
    assert single.original_of(3) is None  # one original: the records stay as they were


def test_quick_check_passes_the_original_and_prints_it(monkeypatch, tmp_path, capsys):
    from unlearning_challenge import quick_check

    commands = []

    def ingestion(command):
        commands.append(command)
        record = RunRecord(index=0, status="crashed", original=1, message="stopped here")
        write_manifest(tmp_path / "quick", IngestionManifest(status="failed", message="x", runs=(record,)))
        return 1

    monkeypatch.setattr(quick_check, "call_tied", ingestion)
    assert quick_check.run_quick_check(SAMPLE, tmp_path / "inputs", tmp_path / "quick", original=1) == 1
    assert commands[0][-2:] == ["--original", "1"]
    assert "original: 1\n" in capsys.readouterr().out
