"""The retain and validation samples: families and manifests carry them, assemble and the ingestion fill
them, scoring reports F and KLoM on them (or n/a with the reason)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from unlearning_challenge.artifacts import (
    REFERENCE_ARRAYS,
    ArtifactError,
    IngestionManifest,
    InputManifest,
    ModelFamily,
    ReferenceManifest,
    RunRecord,
    SampleRecord,
    read_family,
    read_input_manifest,
    read_reference_manifest,
    write_family,
    write_manifest,
)
from unlearning_challenge.atomic import write_json, write_npz
from unlearning_challenge.data import EvaluationSamples, evaluation_samples
from unlearning_challenge.ingestion import family_of
from unlearning_challenge.judged import trusted_samples
from unlearning_challenge.reference.evaluation import ModelOutputs
from unlearning_challenge.reference.generate import assemble, prepare_data
from unlearning_challenge.reference.work import WorkFolder, _outputs_record
from unlearning_challenge.scoring.program import compute_scores
from unlearning_challenge.scoring.report import detailed_results_html
from unlearning_challenge.scoring.result import SAMPLE_NUMBER_KEYS, SCORES_TXT_KEYS, ScoringInputs, scores_txt

C, E, R, V = 10, 12, 9, 7
NO_REFERENCE_SAMPLES = "the reference data hold no retain/validation samples; regenerate it with this version to get them"


def _family(rng: np.random.Generator, n: int, *, shift: float = 0.0, samples: bool = True,
            retain_indices: np.ndarray | None = None) -> ModelFamily:
    """N models on E forget examples, and on R retain and V validation examples when ``samples``."""
    def logits(k: int, labels: np.ndarray) -> np.ndarray:
        z = rng.normal(size=(n, k, C)).astype(np.float32)
        z[:, np.arange(k), labels] += np.float32(2.0 + shift)
        return z

    labels = np.arange(E, dtype=np.int64) % C
    family = ModelFamily(logits(E, labels), labels, np.arange(E, dtype=np.int64) + 100, rng.uniform(0.8, 0.9, n),
                         rng.uniform(0.6, 0.7, n), rng.uniform(0.5, 0.7, n), rng.uniform(0.5, 1.5, n),
                         np.arange(n, dtype=np.int64))
    if not samples:
        return family
    retain = np.arange(R, dtype=np.int64) * 3 if retain_indices is None else retain_indices
    validation = np.arange(V, dtype=np.int64) + 500
    retain_labels, validation_labels = retain % C, validation % C
    return dataclasses.replace(
        family, retain_sample_logits=logits(R, retain_labels), validation_sample_logits=logits(V, validation_labels),
        retain_sample_indices=retain, validation_sample_indices=validation,
        retain_sample_labels=retain_labels, validation_sample_labels=validation_labels)


def _inputs(unlearned: ModelFamily, retrained: ModelFamily) -> ScoringInputs:
    n = unlearned.num_models
    runs = tuple(RunRecord(index=i, seed=i, status="ok", seconds=1.0) for i in range(n))
    ingestion = IngestionManifest(status="ok", message="ok", phase="check", device="cpu", time_budget_seconds=2.0,
                                  time_limit_enforced=True, runs=runs)
    reference = ReferenceManifest(phase="check", config_fingerprint="0" * 64, split_fingerprint="0" * 64,
                                  num_models=retrained.num_models, mean_retrain_seconds=6.0)
    return ScoringInputs(unlearned, retrained, ingestion, reference, False)


def _assert_same(a: ModelFamily, b: ModelFamily) -> None:
    for f in dataclasses.fields(ModelFamily):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x is None) == (y is None), f.name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=f.name)


# --------------------------------------------------------------------------- families


@pytest.mark.parametrize("samples", [True, False])
def test_a_family_round_trips_with_and_without_samples(tmp_path, samples):
    family = _family(np.random.default_rng(0), 4, samples=samples)
    sha = write_family(tmp_path / "f.npz", family)
    read = read_family(tmp_path / "f.npz", expected_sha256=sha, what="test")
    _assert_same(read, family)
    assert read.has_samples is samples
    first = read.first(2)
    assert first.num_models == 2 and first.forget_losses is None
    if samples:
        assert first.retain_sample_logits.shape == (2, R, C) and first.validation_sample_logits.shape == (2, V, C)
        np.testing.assert_array_equal(first.retain_sample_indices, family.retain_sample_indices)
    else:
        assert first.retain_sample_logits is None and first.retain_sample_indices is None


def test_a_family_file_written_before_the_samples_still_loads(tmp_path):
    family = _family(np.random.default_rng(1), 3, samples=False)
    arrays = {name: getattr(family, name) for name in ("forget_logits", "forget_labels", "forget_image_ids",
                                                        "retain_accuracy", "test_accuracy", "forget_accuracy",
                                                        "seconds", "seeds")}
    np.savez(tmp_path / "old.npz", **arrays)  # the keys an older program wrote, nothing more
    read = read_family(tmp_path / "old.npz", expected_sha256=None, what="reference data")
    assert not read.has_samples and read.retain_sample_logits is None


def test_a_family_with_part_of_the_samples_is_refused(tmp_path):
    family = _family(np.random.default_rng(2), 3)
    arrays = {k: v for k, v in family.arrays().items() if k != "validation_sample_labels"}
    np.savez(tmp_path / "part.npz", **arrays)
    with pytest.raises(ArtifactError, match=r"reference data: part.npz holds \['retain_sample_logits', "
                       r"'validation_sample_logits', 'retain_sample_indices', 'validation_sample_indices', "
                       r"'retain_sample_labels'\] without \['validation_sample_labels'\]"):
        read_family(tmp_path / "part.npz", expected_sha256=None, what="reference data")


@pytest.mark.parametrize("change, message", [
    (lambda f: {"retain_sample_logits": f.retain_sample_logits[:2]},
     rf"test: f.npz: retain_sample_logits has shape \(2, {R}, {C}\), expected \(3, R, {C}\) "
     r"\(models, sampled examples, classes\)"),
    (lambda f: {"validation_sample_logits": f.validation_sample_logits[:, :, :4]},
     rf"test: f.npz: validation_sample_logits has shape \(3, {V}, 4\), expected \(3, V, {C}\)"),
    (lambda f: {"retain_sample_indices": f.retain_sample_indices[:-1]},
     rf"test: f.npz: retain_sample_indices has shape \({R - 1},\), expected \({R},\) "
     r"\(one per example of retain_sample_logits\)"),
    (lambda f: {"validation_sample_labels": f.validation_sample_labels + C},
     rf"test: f.npz: validation_sample_labels outside 0..{C - 1}"),
    (lambda f: {"retain_sample_indices": f.retain_sample_indices - 100},
     r"test: f.npz: retain_sample_indices holds negative dataset indices"),
])
def test_sample_arrays_of_the_wrong_shape_are_refused(tmp_path, change, message):
    family = _family(np.random.default_rng(3), 3)
    sha = write_family(tmp_path / "f.npz", dataclasses.replace(family, **change(family)))
    with pytest.raises(ArtifactError, match=message):
        read_family(tmp_path / "f.npz", expected_sha256=sha, what="test")


# --------------------------------------------------------------------------- manifests


def _manifest(cls, samples: SampleRecord | None):
    extra = {"time_budget_seconds": 1.0} if cls is InputManifest else {}
    return cls(phase="p", config_fingerprint="a" * 64, split_fingerprint="b" * 64, num_models=3,
               evaluation_samples=samples, **extra)


@pytest.mark.parametrize("cls, read", [(InputManifest, read_input_manifest),
                                       (ReferenceManifest, read_reference_manifest)])
def test_manifests_record_the_sampled_examples_and_older_ones_still_load(tmp_path, cls, read):
    record = SampleRecord.of(EvaluationSamples(np.array([4, 9]), np.array([1, 2, 3])), size=2, seed=7)
    write_manifest(tmp_path, _manifest(cls, record))
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["evaluation_samples"] == {"size": 2, "seed": 7, "retain_indices": [4, 9], "validation_indices": [1, 2, 3]}
    assert read(tmp_path).evaluation_samples == record
    del raw["evaluation_samples"]  # as written before the samples existed
    write_json(tmp_path / "manifest.json", raw)
    assert read(tmp_path).evaluation_samples is None


def test_a_bad_sample_record_is_named(tmp_path):
    data = _manifest(ReferenceManifest, None).to_json()
    data["evaluation_samples"] = {"size": 2, "seed": 0, "retain_indices": [1, "x"], "validation_indices": []}
    write_json(tmp_path / "manifest.json", data)
    with pytest.raises(ArtifactError, match=r"reference data: manifest.json: 'evaluation_samples.retain_indices\[1\]' "
                                            r"must be an integer, got 'x'"):
        read_reference_manifest(tmp_path)


# --------------------------------------------------------------------------- scoring


def test_scoring_reports_f_and_klom_on_both_samples():
    rng = np.random.default_rng(4)
    unlearned, retrained = _family(rng, 6, shift=0.3), _family(rng, 8)
    result = compute_scores(_inputs(unlearned, retrained.first(6)))
    numbers = result.numbers()
    for key in SAMPLE_NUMBER_KEYS:
        assert isinstance(numbers[key], float) and key in SCORES_TXT_KEYS
    assert 0.0 <= result.forget_quality_retain_sample <= 1.0 and 0.0 <= result.forget_quality_validation_sample <= 1.0
    assert result.klom_retain_p95 >= 0.0 and result.klom_validation_p95 >= 0.0
    assert numbers["samples_unavailable"] is None
    assert f"klom_retain_p95: {result.klom_retain_p95:.6f}\n" in scores_txt(result)
    # The same computation as on the forget set: the retain sample put in the forget set's place gives its F.
    swapped = dataclasses.replace(unlearned, forget_logits=unlearned.retain_sample_logits,
                                  forget_labels=unlearned.retain_sample_labels,
                                  forget_image_ids=unlearned.retain_sample_indices)
    swapped_r = dataclasses.replace(retrained.first(6), forget_logits=retrained.first(6).retain_sample_logits,
                                    forget_labels=retrained.retain_sample_labels,
                                    forget_image_ids=retrained.retain_sample_indices)
    other = compute_scores(_inputs(swapped, swapped_r))
    assert result.forget_quality_retain_sample == other.forget_quality
    assert result.klom_retain_p95 == other.klom_forget_p95
    page = detailed_results_html(result, _inputs(unlearned, retrained.first(6)))
    assert "F on the retain sample" in page and f"{result.klom_validation_p95:.4f}" in page
    assert f"{R} retain examples" in page and "samples: n/a" not in page


def test_a_quick_check_reads_the_first_k_reference_models_on_the_samples_too():
    rng = np.random.default_rng(5)
    unlearned, retrained = _family(rng, 8, shift=0.3), _family(rng, 8)
    quick = compute_scores(_inputs(unlearned.first(4), retrained.first(4)))
    cut = dataclasses.replace(retrained, retain_sample_logits=retrained.retain_sample_logits[:4],
                              validation_sample_logits=retrained.validation_sample_logits[:4],
                              forget_logits=retrained.forget_logits[:4], retain_accuracy=retrained.retain_accuracy[:4],
                              test_accuracy=retrained.test_accuracy[:4], forget_accuracy=retrained.forget_accuracy[:4],
                              seconds=retrained.seconds[:4], seeds=retrained.seeds[:4])
    assert quick.klom_retain_p95 == compute_scores(_inputs(unlearned.first(4), cut)).klom_retain_p95


@pytest.mark.parametrize("unlearned_samples, retrained_samples, other_indices, reason", [
    (True, False, False, NO_REFERENCE_SAMPLES),
    (False, True, False, "the ingestion output holds no retain/validation samples; run the submission with this "
                         "version's ingestion program to get them"),
    (True, True, True, "the ingestion output and the reference data hold logits on different retain examples "
                       "(retain_sample_indices differ); run the ingestion on the input data made with this reference"),
])
def test_without_matching_samples_the_numbers_are_null_with_the_reason(unlearned_samples, retrained_samples,
                                                                       other_indices, reason):
    rng = np.random.default_rng(6)
    unlearned = _family(rng, 4, samples=unlearned_samples,
                        retain_indices=np.arange(R, dtype=np.int64) * 5 if other_indices else None)
    inputs = _inputs(unlearned, _family(rng, 4, samples=retrained_samples))
    result = compute_scores(inputs)
    data = result.to_json(quick_check=False)
    assert all(data[key] is None for key in SAMPLE_NUMBER_KEYS)
    assert data["samples_unavailable"] == reason
    json.dumps(data, allow_nan=False)
    text = scores_txt(result)
    assert not any(key in text for key in SAMPLE_NUMBER_KEYS) and "samples_unavailable" not in text
    page = detailed_results_html(result, inputs)
    assert "F and KLoM on the retain and validation samples: n/a (" in page
    assert reason.split(";")[0].replace("'", "&#39;") in page


# --------------------------------------------------------------------------- assemble and ingestion


def _outputs(rng: np.random.Generator, num_forget: int, samples: EvaluationSamples | None) -> ModelOutputs:
    logits = lambda k: rng.normal(size=(k, C)).astype(np.float32)  # noqa: E731
    sampled = {} if samples is None else {"retain_sample_logits": logits(samples.retain.size),
                                          "validation_sample_logits": logits(samples.validation.size)}
    return ModelOutputs(forget_logits=logits(num_forget), retain_accuracy=0.8, test_accuracy=0.6,
                        forget_accuracy=0.7, forget_losses=np.zeros(num_forget, np.float32),
                        test_losses=np.zeros(3, np.float32), **sampled)


def _work(tmp_path: Path, config, *, sampled: tuple[bool, ...]):
    """A work folder with one fake record per model (``sampled[i]``: whether record i holds samples)."""
    work = WorkFolder(tmp_path / "work")
    work.root.mkdir()
    dataset, splits, fingerprint = prepare_data(config, work)
    samples = evaluation_samples(splits, config.reference.sample_size, config.split.seed)
    rng = np.random.default_rng(7)
    records = []
    for seed, with_samples in zip(range(config.reference.num_models), sampled):
        outputs = _outputs(rng, len(splits.forget), samples if with_samples else None)
        records.append(_outputs_record(outputs, 2.0, 0.01, seed, fingerprint, samples))
        write_npz(work.retrained(seed), records[-1])
    work.original.write_bytes(b"weights")
    write_json(work.original_info, {"retain_accuracy": 0.9, "test_accuracy": 0.6, "forget_accuracy": 0.9, "seconds": 3.0})
    return work, dataset, splits, samples, records


def _assemble(tmp_path: Path, config, work: WorkFolder) -> tuple[Path, Path]:
    input_dir, reference_dir = tmp_path / "input_data", tmp_path / "reference_data"
    assemble(config, work, input_dir, reference_dir, torch.device("cpu"))
    return input_dir, reference_dir


def test_assemble_carries_the_samples_of_the_work_records(tmp_path):
    config = tiny_config(num_models=3)
    config = dataclasses.replace(config, reference=dataclasses.replace(config.reference, sample_size=5))
    work, dataset, splits, samples, records = _work(tmp_path, config, sampled=(True, True, True))
    input_dir, reference_dir = _assemble(tmp_path, config, work)
    manifest = read_reference_manifest(reference_dir)
    family = read_family(reference_dir / REFERENCE_ARRAYS, expected_sha256=manifest.arrays_sha256, what="reference")
    assert family.has_samples and samples.retain.size == 5 and samples.validation.size == 5
    np.testing.assert_array_equal(family.retain_sample_logits, np.stack([r["retain_sample_logits"] for r in records]))
    np.testing.assert_array_equal(family.validation_sample_indices, samples.validation)
    np.testing.assert_array_equal(family.retain_sample_labels, dataset.age_group[samples.retain])
    np.testing.assert_array_equal(family.validation_sample_labels, dataset.age_group[samples.validation])
    expected = SampleRecord.of(samples, size=5, seed=config.split.seed)
    assert manifest.evaluation_samples == expected
    assert read_input_manifest(input_dir).evaluation_samples == expected


def test_assemble_without_samples_in_some_records_gives_a_family_without_them(tmp_path):
    config = tiny_config(num_models=2)
    work, *_ = _work(tmp_path, config, sampled=(True, False))
    _, reference_dir = _assemble(tmp_path, config, work)
    family = read_family(reference_dir / REFERENCE_ARRAYS, expected_sha256=None, what="reference")
    assert not family.has_samples
    assert read_reference_manifest(reference_dir).evaluation_samples is None


def test_assemble_refuses_records_that_sampled_other_examples(tmp_path):
    config = tiny_config(num_models=2)
    work, _, _, samples, records = _work(tmp_path, config, sampled=(True, True))
    write_npz(work.retrained(1), {**records[1], "validation_sample_indices": samples.validation[::-1].copy()})
    with pytest.raises(ArtifactError, match=r"seed_00001.npz was evaluated on other validation examples than "
                                            r".*seed_00000.npz \(validation_sample_indices differ\): delete the "
                                            r"records that differ and rerun `reference`"):
        _assemble(tmp_path, config, work)
    smaller = dataclasses.replace(config, reference=dataclasses.replace(config.reference, sample_size=4))
    write_npz(work.retrained(1), records[1])
    with pytest.raises(ArtifactError, match=r"the work records were evaluated on other retain examples than "
                                            r"reference.sample_size 4 with split.seed \d+ draws"):
        _assemble(tmp_path, smaller, work)


def test_the_ingestion_uses_the_recorded_samples_and_its_family_carries_them(tmp_path):
    config = tiny_config(num_models=2)
    work, dataset, splits, samples, _ = _work(tmp_path, config, sampled=(True, True))
    manifest = InputManifest(phase="tiny", config_fingerprint="a", split_fingerprint="b", num_models=2,
                             time_budget_seconds=1.0)
    drawn = trusted_samples(config, manifest, splits)
    np.testing.assert_array_equal(drawn.retain, samples.retain)  # an older manifest: the config's draw
    recorded = EvaluationSamples(samples.retain[:3], samples.validation[:2])
    manifest = dataclasses.replace(manifest, evaluation_samples=SampleRecord.of(recorded, size=3, seed=0))
    np.testing.assert_array_equal(trusted_samples(config, manifest, splits).validation, recorded.validation)
    outside = SampleRecord.of(EvaluationSamples(splits.forget[:2], recorded.validation), size=3, seed=0)
    with pytest.raises(ArtifactError, match="input data: manifest.json's evaluation_samples name examples outside "
                                            "the retain or validation split; regenerate the input data"):
        trusted_samples(config, dataclasses.replace(manifest, evaluation_samples=outside), splits)
    none = dataclasses.replace(config, reference=dataclasses.replace(config.reference, sample_size=0))
    assert trusted_samples(none, dataclasses.replace(manifest, evaluation_samples=None), splits) is None

    rng = np.random.default_rng(8)
    outputs = [_outputs(rng, len(splits.forget), recorded) for _ in range(2)]
    runs = [RunRecord(index=i, seed=i, status="ok", seconds=1.0) for i in range(2)]
    family = family_of(outputs, runs, dataset, splits, recorded)
    assert family.has_samples and family.validation_sample_logits.shape == (2, 2, C)
    np.testing.assert_array_equal(family.retain_sample_labels, dataset.age_group[recorded.retain])
    assert not family_of(outputs, runs, dataset, splits).has_samples


def test_timing_from_keeps_an_earlier_assemblys_budget_of_the_same_phase_only():
    from conftest import ROOT
    from unlearning_challenge.artifacts import ArtifactError, read_input_manifest
    from unlearning_challenge.config import load_config
    from unlearning_challenge.reference.generate import kept_timing

    config = load_config(ROOT / "phases" / "default.yaml")
    earlier = read_input_manifest(ROOT / "input_data")
    assert kept_timing(config, earlier.split_fingerprint, ROOT / "input_data") == (
        earlier.mean_retrain_seconds, earlier.calibration_step_seconds, earlier.timing_source)
    with pytest.raises(ArtifactError, match="--timing-from .*: its config or split differs from this phase's"):
        kept_timing(config, "another split", ROOT / "input_data")
    with pytest.raises(ArtifactError, match="its config or split differs"):
        kept_timing(tiny_config(), earlier.split_fingerprint, ROOT / "input_data")
