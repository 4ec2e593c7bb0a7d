"""The perfect-unlearner ceiling and the bootstrap interval of the score, on synthetic confidences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from unlearning_challenge.artifacts import IngestionManifest, ModelFamily, ReferenceManifest
from unlearning_challenge.metric import final_score, forget_quality
from unlearning_challenge.scoring.program import add_statistics, compute_scores
from unlearning_challenge.scoring.result import ScoringInputs
from unlearning_challenge.scoring.statistics import (
    MAX_RESAMPLES,
    MIN_RESAMPLES,
    FamilySample,
    bootstrap_interval,
    bootstrap_scores,
    default_num_resamples,
    perfect_unlearner_quality,
    score_statistics,
)

E = 20


def confidences(n: int, seed: int, shift: float = 0.0, e: int = E) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, e)) + np.linspace(-2, 2, e) + shift


def accuracies(n: int, seed: int, level: float = 0.8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(level - 0.02, level + 0.02, n)


def sample(conf, retain_accuracy, test_accuracy, name: str = "family") -> FamilySample:
    return FamilySample.of(conf, retain_accuracy, test_accuracy, name=name)


def interval(unlearned, retrained, ra_u, ra_r, ta_u, ta_r, **kwargs) -> tuple[float, float]:
    result = bootstrap_interval(sample(unlearned, ra_u, ta_u), sample(retrained, ra_r, ta_r), **kwargs)
    return result.low, result.high


def resampled(unlearned, retrained, ra_u, ra_r, ta_u, ta_r, **kwargs) -> np.ndarray:
    return bootstrap_scores(sample(unlearned, ra_u, ta_u), sample(retrained, ra_r, ta_r), **kwargs)


# ----------------------------------------------------------------------------- perfect unlearner

def test_perfect_unlearner_is_comparable_to_an_independent_family_of_half_the_size():
    retrained = confidences(16, seed=1)
    perfect = perfect_unlearner_quality(retrained, seed=0)
    assert perfect.num_models == 8 and perfect.num_models_full == 16
    assert perfect.num_splits == 5 and len(perfect.values) == 5
    assert 0.0 < perfect.min <= perfect.forget_quality <= perfect.max <= 1.0
    # Two independent half-size families from the same distribution.
    independent = [forget_quality(confidences(8, seed=10 + k), confidences(8, seed=20 + k)) for k in range(4)]
    assert perfect.forget_quality > 0.05
    assert abs(perfect.forget_quality - float(np.mean(independent))) < 0.12
    assert "N//2" in perfect.caveat


def test_separated_families_score_far_below_the_perfect_unlearner():
    retrained = confidences(16, seed=1)
    unlearned = confidences(16, seed=2, shift=8.0)
    perfect = perfect_unlearner_quality(retrained).forget_quality
    acc = accuracies(16, 3)
    low, high = interval(unlearned, retrained, acc, acc, acc, acc, num_resamples=12)
    assert forget_quality(unlearned, retrained) == 0.0
    assert high < 0.5 * perfect


def test_perfect_unlearner_is_deterministic_and_depends_on_the_seed():
    retrained = confidences(12, seed=4)
    assert perfect_unlearner_quality(retrained, seed=3) == perfect_unlearner_quality(retrained, seed=3)
    assert perfect_unlearner_quality(retrained, seed=3).values != perfect_unlearner_quality(retrained, seed=4).values


def test_perfect_unlearner_with_too_few_models_is_nan_with_a_reason():
    result = perfect_unlearner_quality(confidences(3, seed=0))
    assert math.isnan(result.forget_quality) and result.values == ()
    assert "cannot be split" in result.caveat


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_perfect_unlearner_rejects_a_bad_number_of_splits(bad):
    with pytest.raises(ValueError, match="num_splits"):
        perfect_unlearner_quality(confidences(8, seed=0), num_splits=bad)


def test_perfect_unlearner_rejects_a_non_matrix():
    with pytest.raises(ValueError, match=r"conf_retrained must be a \[N, E\] array"):
        perfect_unlearner_quality(np.zeros(5))


# ----------------------------------------------------------------------------- bootstrap

def test_interval_contains_the_score_for_a_typical_case():
    unlearned, retrained = confidences(12, seed=5, shift=0.3), confidences(12, seed=6)
    ra_u, ra_r, ta_u, ta_r = accuracies(12, 1), accuracies(12, 2), accuracies(12, 3, 0.6), accuracies(12, 4, 0.6)
    score = final_score(forget_quality(unlearned, retrained), ra_u, ra_r, ta_u, ta_r)
    low, high = interval(unlearned, retrained, ra_u, ra_r, ta_u, ta_r, num_resamples=15)
    assert 0.0 <= low <= score <= high
    assert high > low


def test_centered_interval_corrects_the_resampling_offset():
    # Same distribution on both sides: resampled F sits below the observed F, the plain
    # percentile interval misses it, the centered one brackets it with the same width.
    unlearned, retrained = confidences(12, seed=7), confidences(12, seed=8)
    acc = np.full(12, 0.8)
    score = forget_quality(unlearned, retrained)
    samples = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=15)
    assert np.median(samples) < score
    plain = interval(unlearned, retrained, acc, acc, acc, acc, num_resamples=15, method="percentile")
    centered = interval(unlearned, retrained, acc, acc, acc, acc, num_resamples=15, observed_score=score)
    assert centered[0] <= score <= centered[1]
    assert centered[1] - centered[0] == pytest.approx(plain[1] - plain[0], abs=1e-12) or centered[0] == 0.0
    assert plain[0] == pytest.approx(float(np.quantile(samples, 0.05)))


def test_bootstrap_is_deterministic_with_a_seed_and_prefix_stable():
    unlearned, retrained = confidences(8, seed=9, shift=0.5), confidences(8, seed=10)
    acc = accuracies(8, 0)
    first = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=6, seed=1)
    again = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=6, seed=1)
    longer = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=8, seed=1)
    other = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=6, seed=2)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, longer[:6])
    assert not np.array_equal(first, other)
    assert interval(unlearned, retrained, acc, acc, acc, acc, num_resamples=6, seed=1) == \
        interval(unlearned, retrained, acc, acc, acc, acc, num_resamples=6, seed=1)


def test_bootstrap_stops_at_the_time_guard_after_the_minimum():
    unlearned, retrained = confidences(6, seed=11, e=6), confidences(6, seed=12, e=6)
    acc = accuracies(6, 0)
    samples = resampled(unlearned, retrained, acc, acc, acc, acc, num_resamples=MIN_RESAMPLES + 20,
                               max_seconds=0.0)
    assert samples.size == MIN_RESAMPLES


def test_default_number_of_resamples_follows_the_work_budget():
    assert default_num_resamples(16, 40) == MAX_RESAMPLES
    assert default_num_resamples(32, 60) == MAX_RESAMPLES
    assert default_num_resamples(512, 1000) == MIN_RESAMPLES
    assert default_num_resamples(512, 1_000_000) == MIN_RESAMPLES
    assert MIN_RESAMPLES < default_num_resamples(128, 1000) < MAX_RESAMPLES


def test_bootstrap_accepts_scalar_accuracies():
    unlearned, retrained = confidences(6, seed=13, e=6), confidences(6, seed=14, e=6)
    low, high = interval(unlearned, retrained, 0.8, 0.8, 0.6, 0.6, num_resamples=5)
    assert 0.0 <= low <= high <= 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_resamples": 0}, "num_resamples must be a positive integer"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"method": "bca"}, "method must be one of"),
    ],
)
def test_bootstrap_rejects_bad_options(kwargs, message):
    conf, acc = confidences(4, seed=0, e=4), np.full(4, 0.5)
    with pytest.raises(ValueError, match=message):
        interval(conf, conf, acc, acc, acc, acc, **{"num_resamples": 3, **kwargs})


def test_bootstrap_rejects_inconsistent_inputs():
    acc = np.full(4, 0.5)
    with pytest.raises(ValueError, match="inconsistent numbers of forget examples: the unlearned confidences have 4, "
                                         "the retrained ones 5"):
        resampled(confidences(4, 0, e=4), confidences(4, 1, e=5), acc, acc, acc, acc, num_resamples=2)
    with pytest.raises(ValueError, match=r"unlearned retain_accuracy must hold one value per model: "
                                         r"expected shape \(4,\), got \(3,\)"):
        sample(confidences(4, 0, e=4), acc[:3], acc, name="unlearned")
    with pytest.raises(ValueError, match=r"retrained confidences must be a \[N, E\] array of confidences"):
        sample(np.zeros(4), acc, acc, name="retrained")


# ----------------------------------------------------------------------------- statistics of a score

def _family(rng: np.random.Generator, n: int, e: int, labels: np.ndarray, shift: float) -> ModelFamily:
    logits = rng.normal(size=(n, e, 5)).astype(np.float32)
    logits[:, np.arange(e), labels] += np.float32(1.5 + shift)
    return ModelFamily(logits, labels, np.arange(e, dtype=np.int64), rng.uniform(0.8, 0.9, n),
                       rng.uniform(0.6, 0.7, n), rng.uniform(0.5, 0.7, n), rng.uniform(1, 2, n),
                       np.arange(n, dtype=np.int64))


def _inputs(n: int, e: int, seed: int = 0) -> ScoringInputs:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, e)
    return ScoringInputs(_family(rng, n, e, labels, 0.3), _family(rng, n, e, labels, 0.0),
                         IngestionManifest(status="ok", time_budget_seconds=3.0),
                         ReferenceManifest(phase="check", config_fingerprint="0" * 64, split_fingerprint="0" * 64,
                                           num_models=n), False)


def test_statistics_give_flat_json_numbers_and_details():
    inputs = _inputs(8, 10)
    result = add_statistics(compute_scores(inputs), num_resamples=6)
    stats = result.statistics
    flat = stats.numbers()
    assert set(flat) == {
        "forget_quality_perfect", "forget_quality_perfect_min", "forget_quality_perfect_max",
        "forget_quality_perfect_num_models", "score_ci_low", "score_ci_high", "score_ci_confidence",
        "score_ci_resamples",
    }
    json.dumps(flat, allow_nan=False)
    assert all(isinstance(v, (int, float)) for v in flat.values())
    assert flat["forget_quality_perfect_num_models"] == 4 and flat["score_ci_resamples"] == 6
    assert flat["score_ci_low"] <= result.score <= flat["score_ci_high"]
    assert stats.bootstrap.scores.shape == (6,) and stats.bootstrap.method == "centered"
    assert stats.perfect.forget_quality == flat["forget_quality_perfect"]
    assert add_statistics(result, num_resamples=6).statistics.numbers() == flat
    numbers = result.numbers()
    assert list(numbers)[-len(flat):] == list(flat)  # scores.json: the statistics follow the score's numbers


def test_statistics_use_the_scores_rate_estimate():
    inputs = _inputs(8, 10, seed=3)
    empirical = add_statistics(compute_scores(inputs), num_resamples=4)
    bounded = add_statistics(compute_scores(inputs, bounds="clopper-pearson", alpha=0.1), num_resamples=4)
    expected = perfect_unlearner_quality(bounded.retrained.confidences, bounds="clopper-pearson", alpha=0.1)
    assert bounded.statistics.perfect == expected
    assert bounded.statistics.perfect.forget_quality >= empirical.statistics.perfect.forget_quality


def test_statistics_with_two_models_leave_out_the_perfect_unlearner():
    inputs = _inputs(2, 4, seed=2)
    stats = add_statistics(compute_scores(inputs), num_resamples=3).statistics
    assert "forget_quality_perfect" not in stats.numbers()
    assert stats.numbers()["score_ci_resamples"] == 3
    assert "cannot be split" in stats.perfect.caveat
    json.dumps(stats.numbers(), allow_nan=False)


def test_statistics_with_one_model_skip_the_bootstrap_and_say_why():
    one = sample(confidences(1, seed=0, e=4), 0.8, 0.6)
    stats = score_statistics(one, sample(confidences(4, seed=1, e=4), 0.8, 0.6))
    assert stats.bootstrap is None and stats.bootstrap_skipped == "resampling needs at least 2 models on each side"
    assert set(stats.numbers()) == {"forget_quality_perfect", "forget_quality_perfect_min", "forget_quality_perfect_max",
                                    "forget_quality_perfect_num_models"}
