"""``logit_scaled_confidence`` against a direct formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearning_challenge.metric import logit_scaled_confidence


def direct(logits, labels):
    """One example at a time, with Python floats: log(p) - log(sum of the other probabilities)."""
    out = []
    for row, label in zip(np.asarray(logits, dtype=np.float64), labels):
        top = max(row)
        weights = [math.exp(v - top) for v in row]
        total = math.fsum(weights)
        p = weights[label] / total
        q = math.fsum(w for k, w in enumerate(weights) if k != label) / total
        out.append(math.log(p + 1e-45) - math.log(q + 1e-45))
    return np.array(out)


def test_every_label_position_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (40, 10))
    for label in range(10):
        labels = np.full(40, label)
        np.testing.assert_allclose(logit_scaled_confidence(logits, labels), direct(logits, labels), rtol=1e-12, atol=1e-12)


def test_exact_against_zeroing_the_correct_class_in_float64():
    """The published computation: max-shifted softmax, q summed with the correct entry set to 0."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (64, 37))
    labels = rng.integers(0, 37, 64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs = probs / probs.sum(axis=1, keepdims=True)
    p = probs[np.arange(64), labels].copy()
    probs[np.arange(64), labels] = 0
    expected = np.log(p + 1e-45) - np.log(probs.sum(axis=1) + 1e-45)
    assert np.array_equal(logit_scaled_confidence(logits, labels), expected)


def test_huge_logits_stay_finite_and_bounded():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [800.0, 799.0, -5.0]])
    labels = np.array([0, 0, 2, 1])
    conf = logit_scaled_confidence(logits, labels)
    assert np.all(np.isfinite(conf))
    assert conf[0] == pytest.approx(math.log(1 + 1e-45) - math.log(1e-45))  # p = 1, q = 0: about +103.6
    assert conf[1] == pytest.approx(math.log(1e-45) - math.log(1 + 1e-45))
    assert conf[2] == pytest.approx(math.log(1 / 3) - math.log(2 / 3))
    np.testing.assert_allclose(conf[3], direct(logits[3:], labels[3:])[0], rtol=1e-12)


def test_float32_input_follows_the_published_dtypes_and_is_not_modified():
    """The published code shifts and exponentiates in the logits' dtype, then normalises in float64."""
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 5, (20, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 20)
    before = logits.copy()
    conf = logit_scaled_confidence(logits, labels)
    assert conf.dtype == np.float64
    assert np.array_equal(logits, before)
    shifted = logits - logits.max(axis=1, keepdims=True)  # float32
    probs = np.array(np.exp(shifted), dtype=np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    p = probs[np.arange(20), labels].copy()
    probs[np.arange(20), labels] = 0
    assert np.array_equal(conf, np.log(p + 1e-45) - np.log(probs.sum(axis=1) + 1e-45))
    np.testing.assert_allclose(conf, direct(logits, labels), rtol=1e-5, atol=1e-5)


def test_float64_input_is_not_modified():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 5, (3, 20, 6))
    before = logits.copy()
    logit_scaled_confidence(logits, rng.integers(0, 6, 20))
    assert np.array_equal(logits, before)


def test_leading_model_axis_equals_one_call_per_model():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (5, 30, 12))
    labels = rng.integers(0, 12, 30)
    conf = logit_scaled_confidence(logits, labels)
    assert conf.shape == (5, 30)
    for m in range(5):
        assert np.array_equal(conf[m], logit_scaled_confidence(logits[m], labels))
    # Non-contiguous input gives the same values.
    assert np.array_equal(logit_scaled_confidence(np.asfortranarray(logits[0]), labels), conf[0])


def test_single_class_and_no_examples():
    assert logit_scaled_confidence(np.zeros((3, 1)), np.zeros(3, dtype=int)) == pytest.approx(
        math.log(1 + 1e-45) - math.log(1e-45)
    )
    assert logit_scaled_confidence(np.zeros((0, 4)), np.zeros(0, dtype=int)).shape == (0,)


def test_non_finite_logits_give_non_finite_confidences():
    conf = logit_scaled_confidence(np.array([[np.inf, 0.0], [np.nan, 0.0], [1.0, 0.0]]), np.array([0, 0, 0]))
    assert not np.isfinite(conf[0]) and not np.isfinite(conf[1]) and np.isfinite(conf[2])
