"""Buckets, points, forgetting quality and the final score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearning_challenge.metric import bucket_points, example_points, final_score, forget_quality, per_example_epsilons


def literal_forget_score(eps, num_models):
    """The bucket rule written out: buckets of 0.5 while the end is at most ceil(log(N - 1))."""
    top = math.ceil(math.log(num_models - 1))
    buckets = []
    start = 0.0
    while start + 0.5 <= top:
        buckets.append(start)
        start += 0.5
    total = 0.0
    for e in eps:
        for k, lower in enumerate(buckets):
            if e < lower + 0.5:
                total += 0.5**k
                break
    return total / len(eps)


def test_buckets_for_512_models():
    lower, points = bucket_points(512)
    assert lower.dtype == points.dtype == np.float64
    assert len(lower) == 14
    assert np.array_equal(lower, np.arange(14) * 0.5)
    assert np.array_equal(points, 0.5 ** np.arange(14))


@pytest.mark.parametrize("num_models, count", [(2, 0), (3, 2), (4, 4), (8, 4), (64, 10), (100, 10), (1000, 14)])
def test_buckets_for_other_model_counts(num_models, count):
    lower, points = bucket_points(num_models)
    assert len(lower) == len(points) == count
    assert count * 0.5 <= math.ceil(math.log(num_models - 1)) < (count + 1) * 0.5


def test_points_at_the_bucket_edges():
    eps = np.array([0.0, 0.25, 0.4999999, 0.5, 1.0, 6.49, 6.5, 6.9999, 7.0, 7.5, 50.0, np.nan, np.inf])
    expected = [1, 1, 1, 0.5, 0.25, 0.5**12, 0.5**13, 0.5**13, 0, 0, 0, 0, 0]
    assert np.array_equal(example_points(eps, 512), expected)
    assert example_points([0.0, 3.0], 2).tolist() == [0.0, 0.0]  # N = 2 has no bucket


@pytest.mark.parametrize("num_models", [3, 8, 64, 512])
def test_mean_points_equal_the_literal_rule_exactly(num_models):
    rng = np.random.default_rng(num_models)
    eps = np.concatenate([rng.uniform(0, 8, 500), np.round(rng.uniform(0, 8, 200) * 2) / 2, [50.0, 0.0]])
    assert float(np.mean(example_points(eps, num_models))) == literal_forget_score(eps, num_models)


def test_forget_quality_is_the_mean_of_example_points():
    rng = np.random.default_rng(8)
    unlearned = rng.normal(0, 1, (16, 9))
    retrained = rng.normal(0.3, 1, (16, 9))
    eps = per_example_epsilons(unlearned, retrained)
    assert forget_quality(unlearned, retrained) == float(np.mean(example_points(eps, 16)))
    assert 0.0 <= forget_quality(unlearned, retrained) <= 1.0


def test_final_score_weights_by_relative_accuracies():
    assert final_score(0.5, 0.9, 0.9, 0.8, 0.8) == 0.5
    assert final_score(0.5, 0.45, 0.9, 0.8, 0.4) == pytest.approx(0.5 * 0.5 * 2.0)
    score = final_score(0.25, [0.8, 0.9], np.array([0.9, 0.95, 1.0]), np.array([0.6]), 0.75)
    assert score == pytest.approx(0.25 * (0.85 / 0.95) * (0.6 / 0.75))
    assert isinstance(score, float)
