"""The 2023 kit's membership-inference attack, the losses in the model outputs, and how scoring reports it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import linear_model, model_selection

from unlearning_challenge.artifacts import (
    ArtifactError,
    IngestionManifest,
    ModelFamily,
    ReferenceManifest,
    read_family,
    write_family,
    write_manifest,
)
from unlearning_challenge.config import ConfigError, config_from_dict
from unlearning_challenge.scoring.mia import (
    MiaUnavailable,
    balanced_samples,
    family_mia,
    membership_inference,
    model_mia_accuracy,
    simple_mia,
)
from unlearning_challenge.quick_check import summary_lines
from unlearning_challenge.scoring.report import detailed_results_html
from unlearning_challenge.scoring.program import add_statistics, compute_scores
from unlearning_challenge.scoring.result import ScoreResult, ScoringInputs, scores_txt


def test_simple_mia_runs_the_kits_cross_validation():
    rng = np.random.default_rng(0)
    losses = np.r_[rng.exponential(1.0, 40), rng.exponential(0.3, 40)].reshape(-1, 1)
    members = np.r_[np.zeros(40, int), np.ones(40, int)]
    cv = model_selection.StratifiedShuffleSplit(n_splits=10, random_state=0)
    expected = model_selection.cross_val_score(linear_model.LogisticRegression(), losses, members, cv=cv,
                                               scoring="accuracy")
    scores = simple_mia(losses, members)
    assert scores.shape == (10,)
    np.testing.assert_array_equal(scores, expected)
    with pytest.raises(ValueError, match=r"members must hold both 0 \(test\) and 1 \(forget\)"):
        simple_mia(losses, np.ones(80, int))


@pytest.mark.parametrize("num_forget, num_test", [(8, 50), (50, 8), (20, 20)])
def test_the_larger_group_is_subsampled_to_the_smaller(num_forget, num_test):
    forget, test = np.arange(num_forget) + 1000.0, np.arange(num_test) * 1.0
    samples, members = balanced_samples(forget, test, np.random.default_rng(1))
    m = min(num_forget, num_test)
    assert samples.shape == (2 * m, 1) and members.tolist() == [0] * m + [1] * m
    drawn_test, drawn_forget = samples[:m, 0], samples[m:, 0]
    assert set(drawn_test) <= set(test) and len(set(drawn_test)) == m  # without replacement
    assert set(drawn_forget) <= set(forget) and len(set(drawn_forget)) == m


def test_separable_losses_are_always_told_apart_and_equal_ones_are_a_coin():
    rng = np.random.default_rng(2)
    assert model_mia_accuracy(rng.uniform(0, 0.1, 30), rng.uniform(2, 3, 300)) == 1.0
    same = family_mia(rng.exponential(1, (40, 30)), rng.exponential(1, (40, 300)))
    assert 0.4 < same.mean < 0.6


def test_a_run_is_reproducible_from_its_seed():
    rng = np.random.default_rng(3)
    forget, test = rng.exponential(0.8, 31), rng.exponential(1.0, 500)
    assert model_mia_accuracy(forget, test, seed=5) == model_mia_accuracy(forget, test, seed=5)


def test_too_few_examples_or_non_finite_losses_make_the_attack_unavailable():
    with pytest.raises(MiaUnavailable, match="needs at least 6 forget and 6 test examples; got 5 forget and 40 test"):
        model_mia_accuracy(np.ones(5), np.ones(40))
    with pytest.raises(MiaUnavailable, match="NaN or infinite losses"):
        model_mia_accuracy(np.r_[np.ones(9), np.nan], np.ones(40))


def test_family_mia_leaves_out_models_with_non_finite_losses():
    rng = np.random.default_rng(4)
    forget, test = rng.exponential(0.5, (4, 12)), rng.exponential(1.0, (4, 60))
    forget[2, 3] = np.inf
    result = family_mia(forget, test)
    assert np.isnan(result.accuracies[2]) and np.isfinite(result.accuracies[[0, 1, 3]]).all()
    assert result.num_models == 3 and result.skipped == 1
    assert result.mean == pytest.approx(np.nanmean(result.accuracies))
    assert result.std == pytest.approx(np.nanstd(result.accuracies))
    with pytest.raises(ValueError, match=r"must be 2-D with the same N; got shapes \(4, 12\) and \(3, 60\)"):
        family_mia(forget, test[:3])
    with pytest.raises(MiaUnavailable, match="got 3 forget"):
        family_mia(forget[:, :3], test)


# ----------------------------------------------------------------------------- stored losses

def _family(rng, n=4, e=12, t=40, *, losses=True, shift=0.0, labels=None) -> ModelFamily:
    labels = rng.integers(0, 5, e) if labels is None else labels
    logits = rng.normal(size=(n, e, 5)).astype(np.float32)
    logits[:, np.arange(e), labels] += np.float32(1.5 + shift)
    return ModelFamily(
        logits, labels, np.arange(e, dtype=np.int64), rng.uniform(0.8, 0.9, n), rng.uniform(0.6, 0.7, n),
        rng.uniform(0.5, 0.7, n), rng.uniform(1, 2, n), np.arange(n, dtype=np.int64),
        rng.exponential(0.5, (n, e)).astype(np.float32) if losses else None,
        rng.exponential(1.0, (n, t)).astype(np.float32) if losses else None,
    )


def test_losses_round_trip_and_older_files_without_them_still_read(tmp_path):
    rng = np.random.default_rng(5)
    family = _family(rng)
    sha = write_family(tmp_path / "new.npz", family)
    back = read_family(tmp_path / "new.npz", expected_sha256=sha, what="test")
    np.testing.assert_array_equal(back.forget_losses, family.forget_losses)
    np.testing.assert_array_equal(back.test_losses, family.test_losses)
    assert back.first(2).forget_losses.shape == (2, 12) and back.first(2).test_losses.shape == (2, 40)
    older = _family(rng, losses=False)
    write_family(tmp_path / "old.npz", older)
    with np.load(tmp_path / "old.npz") as f:
        assert "forget_losses" not in f.files
    old = read_family(tmp_path / "old.npz", expected_sha256=None, what="test")
    assert old.forget_losses is None and old.test_losses is None and not old.has_losses
    unavailable = membership_inference(old)
    assert not unavailable.available and "no per-example losses" in unavailable.unavailable


def test_inconsistent_losses_are_refused(tmp_path):
    rng = np.random.default_rng(6)
    family = _family(rng)
    arrays = {k: v for k, v in family.arrays().items() if k != "test_losses"}
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.raises(ArtifactError, match=r"holds \['forget_losses'\] without \['test_losses'\]"):
        read_family(tmp_path / "half.npz", expected_sha256=None, what="ingestion output")
    arrays = {**family.arrays(), "forget_losses": family.forget_losses[:, :5]}
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ArtifactError, match=r"forget_losses has shape \(4, 5\), expected \(4, 12\)"):
        read_family(tmp_path / "shape.npz", expected_sha256=None, what="ingestion output")
    arrays = {**family.arrays(), "test_losses": family.test_losses.astype(np.float64)}
    np.savez(tmp_path / "dtype.npz", **arrays)
    with pytest.raises(ArtifactError, match="'test_losses' has dtype float64, expected float32"):
        read_family(tmp_path / "dtype.npz", expected_sha256=None, what="ingestion output")


# ----------------------------------------------------------------------------- scoring and the page

def _inputs(*, losses: bool) -> ScoringInputs:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, 12)
    unlearned = _family(rng, n=6, losses=losses, shift=0.3, labels=labels)
    retrained = _family(rng, n=6, losses=False, labels=labels)
    reference = ReferenceManifest(phase="check", config_fingerprint="0" * 64, split_fingerprint="0" * 64, num_models=6)
    return ScoringInputs(unlearned, retrained, IngestionManifest(status="ok", time_budget_seconds=3.0), reference, False)


def _scores(inputs: ScoringInputs, **kwargs) -> ScoreResult:
    return add_statistics(compute_scores(inputs, **kwargs), num_resamples=3)


def test_scoring_reports_the_attack_beside_the_score():
    inputs = _inputs(losses=True)
    result = _scores(inputs)
    scores = result.numbers()
    expected = family_mia(inputs.unlearned.forget_losses, inputs.unlearned.test_losses)
    assert scores["mia_accuracy"] == expected.mean and scores["mia_accuracy_std"] == expected.std
    assert scores["mia_models"] == 6
    lines = dict(line.split(": ") for line in scores_txt(result).splitlines())
    assert float(lines["mia_accuracy"]) == pytest.approx(expected.mean, abs=1e-6)
    assert "mia_accuracy_std" in lines and "bounds" not in lines
    html = detailed_results_html(result, inputs)
    assert "Membership inference (the 2023 starting kit's attack)" in html
    assert f"{expected.mean:.4f}" in html
    assert "F under Clopper-Pearson bounds" in html and "uses the empirical rates" in html


def test_scoring_without_losses_reports_the_attack_unavailable():
    inputs = _inputs(losses=False)
    result = _scores(inputs)
    scores = result.numbers()
    assert scores["mia_accuracy"] is None
    assert "no per-example losses" in scores["mia_unavailable"]
    assert "mia_accuracy" not in scores_txt(result)
    json.dumps(result.to_json(quick_check=False), allow_nan=False)
    assert "Not available:" in detailed_results_html(result, inputs)


def test_scoring_with_clopper_pearson_bounds():
    inputs = _inputs(losses=True)
    empirical = compute_scores(inputs)
    bounded = compute_scores(inputs, bounds="clopper-pearson", alpha=0.1)
    assert bounded.bounds == "clopper-pearson" and bounded.clopper_pearson_alpha == 0.1
    assert bounded.forget_quality == bounded.forget_quality_clopper_pearson
    assert bounded.forget_quality_empirical == empirical.forget_quality == empirical.forget_quality_empirical
    assert bounded.forget_quality >= empirical.forget_quality
    with pytest.raises(ValueError, match=r"bounds must be one of \['empirical', 'clopper-pearson'\]; got 'exact'"):
        compute_scores(inputs, bounds="exact")


def test_the_phase_config_chooses_the_bounds_without_changing_the_fingerprint():
    base = {"name": "x"}
    plain = config_from_dict(base)
    chosen = config_from_dict({**base, "scoring": {"bounds": "clopper-pearson", "alpha": 0.01}})
    assert plain.scoring.bounds == "empirical" and plain.scoring.alpha == 0.05
    assert chosen.scoring.bounds == "clopper-pearson" and chosen.scoring.alpha == 0.01
    assert chosen.fingerprint() == plain.fingerprint()
    with pytest.raises(ConfigError, match="'scoring.bounds' must be empirical or clopper-pearson, got 'wilson'"):
        config_from_dict({**base, "scoring": {"bounds": "wilson"}})
    with pytest.raises(ConfigError, match=r"'scoring.alpha' must be in \(0, 1\), got 1.0"):
        config_from_dict({**base, "scoring": {"alpha": 1}})


def test_quick_check_summary_of_an_older_output_without_losses(tmp_path):
    rng = np.random.default_rng(8)
    family = _family(rng, n=1, losses=False)
    sha = write_family(tmp_path / "unlearned.npz", family)
    write_manifest(tmp_path, {"format": "unlearning-challenge/ingestion", "format_version": 1, "status": "ok",
                              "arrays_sha256": sha, "time_budget_seconds": 2.0,
                              "runs": [{"index": 0, "status": "ok", "seconds": 1.25}]}, name="ingestion.json")
    lines, ok = summary_lines(tmp_path)
    assert ok
    values = dict(line.split(": ", 1) for line in lines)
    assert values["mia_accuracy"].startswith("n/a (the model outputs hold no per-example losses")
    assert values["run_seconds"] == "1.250" and values["time_budget_seconds"] == "2.000"
    assert values["within_budget"] == "yes"
    assert float(values["retain_accuracy"]) == pytest.approx(family.retain_accuracy[0], abs=1e-6)


def test_scores_txt_writes_only_the_keys_a_leaderboard_may_name():
    from unlearning_challenge.scoring.result import SAMPLE_NUMBER_KEYS, SCORES_TXT_KEYS

    result = _scores(_inputs(losses=True))
    written = [line.split(": ")[0] for line in scores_txt(result).splitlines()]
    assert set(written) <= SCORES_TXT_KEYS
    # every key but the attack on the retrained models (this reference holds no losses) and the numbers on
    # the retain/validation samples (these families hold none) is written here
    assert SCORES_TXT_KEYS - set(written) == {"mia_accuracy_retrained", *SAMPLE_NUMBER_KEYS}
