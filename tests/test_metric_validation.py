"""Error messages at the boundary of the metric's public functions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from unlearning_challenge.metric import (
    bucket_points,
    example_points,
    final_score,
    forget_quality,
    logit_scaled_confidence,
    per_example_epsilons,
)

GOOD = np.zeros((8, 3))


@pytest.mark.parametrize(
    "unlearned, retrained, error, message",
    [
        (np.zeros(8), GOOD, ValueError, "unlearned must be a 2-D array [num_models, num_examples]; got 1-D shape (8,)"),
        (GOOD, np.zeros((8, 3, 1)), ValueError, "retrained must be a 2-D array [num_models, num_examples]; got 3-D shape (8, 3, 1)"),
        (np.zeros((64, 3)), np.zeros((512, 3)), ValueError, "unlearned has 64 models but retrained has 512"),
        (np.zeros((8, 10)), np.zeros((8, 12)), ValueError, "unlearned has 10 examples but retrained has 12"),
        (np.zeros((1, 3)), np.zeros((1, 3)), ValueError, "at least 2 models per family are needed; got 1"),
        (np.zeros((8, 0)), np.zeros((8, 0)), ValueError, "unlearned and retrained have 0 examples"),
        (np.full((8, 3), "a"), GOOD, TypeError, "unlearned must hold real numbers (integer or floating dtype); got dtype <U1"),
        (GOOD, np.zeros((8, 3), dtype=bool), TypeError, "retrained must hold real numbers (integer or floating dtype); got dtype bool"),
        (GOOD, np.zeros((8, 3), dtype=complex), TypeError, "got dtype complex128"),
        (np.full((8, 3), 2e4), GOOD, ValueError, "unlearned holds a value of magnitude 20000; confidences must lie within +-10000"),
    ],
)
def test_bad_confidences_are_refused(unlearned, retrained, error, message):
    with pytest.raises(error, match=re.escape(message)):
        per_example_epsilons(unlearned, retrained)
    with pytest.raises(error, match=re.escape(message)):
        forget_quality(unlearned, retrained)


def test_integer_confidences_are_accepted():
    unlearned = np.arange(24).reshape(8, 3)
    assert np.array_equal(per_example_epsilons(unlearned, unlearned + 1), per_example_epsilons(unlearned * 1.0, unlearned + 1.0))


@pytest.mark.parametrize(
    "delta, error, message",
    [
        (1.0, ValueError, "delta must be in [0, 1); got 1.0"),
        (-1e-5, ValueError, "delta must be in [0, 1); got -1e-05"),
        ("small", TypeError, "delta must be a real number; got 'small' of type str"),
    ],
)
def test_bad_delta_is_refused(delta, error, message):
    with pytest.raises(error, match=re.escape(message)):
        per_example_epsilons(GOOD, GOOD, delta=delta)


def test_delta_is_keyword_only():
    with pytest.raises(TypeError):
        per_example_epsilons(GOOD, GOOD, 1e-5)


@pytest.mark.parametrize(
    "logits, labels, error, message",
    [
        (np.zeros(5), np.zeros(5, dtype=int), ValueError, "logits must be a 2-D array [num_examples, num_classes] or 3-D [num_models, num_examples, num_classes]; got 1-D shape (5,)"),
        (np.zeros((5, 3)), np.zeros(4, dtype=int), ValueError, "labels must have shape (5,) to match logits of shape (5, 3); got shape (4,)"),
        (np.zeros((2, 5, 3)), np.zeros((2, 5), dtype=int), ValueError, "labels must have shape (5,) to match logits of shape (2, 5, 3); got shape (2, 5)"),
        (np.zeros((5, 3)), np.array([0, 1, 2, 3, 0]), ValueError, "labels must lie in [0, 3) for logits with 3 classes; got values from 0 to 3"),
        (np.zeros((5, 3)), np.array([0, -1, 2, 1, 0]), ValueError, "labels must lie in [0, 3) for logits with 3 classes; got values from -1 to 2"),
        (np.zeros((5, 3)), np.zeros(5), TypeError, "labels must hold integers; got dtype float64"),
        (np.zeros((5, 3), dtype=object), np.zeros(5, dtype=int), TypeError, "logits must hold real numbers (integer or floating dtype); got dtype object"),
        (np.zeros((5, 0)), np.zeros(5, dtype=int), ValueError, "logits must have at least 1 class (last axis); got shape (5, 0)"),
    ],
)
def test_bad_logits_or_labels_are_refused(logits, labels, error, message):
    with pytest.raises(error, match=re.escape(message)):
        logit_scaled_confidence(logits, labels)


@pytest.mark.parametrize(
    "num_models, error, message",
    [
        (1, ValueError, "num_models must be at least 2; got 1"),
        (2.0, TypeError, "num_models must be an integer; got 2.0 of type float"),
        (True, TypeError, "num_models must be an integer; got True of type bool"),
    ],
)
def test_bad_num_models_is_refused(num_models, error, message):
    with pytest.raises(error, match=re.escape(message)):
        bucket_points(num_models)
    with pytest.raises(error, match=re.escape(message)):
        example_points([0.0], num_models)


def test_bad_eps_is_refused():
    with pytest.raises(ValueError, match=re.escape("eps must be a 1-D array [num_examples]; got 2-D shape (2, 2)")):
        example_points(np.zeros((2, 2)), 512)


@pytest.mark.parametrize(
    "args, message",
    [
        ((0.5, 0.9, 0.0, 0.8, 0.8), "retain_acc_retrained must be positive (it divides the score); got 0.0"),
        ((0.5, 0.9, 0.9, 0.8, [0.0, 0.0]), "test_acc_retrained must be positive (it divides the score); got 0.0"),
        ((np.nan, 0.9, 0.9, 0.8, 0.8), "forget_quality must be finite; got mean nan"),
        ((0.5, [], 0.9, 0.8, 0.8), "retain_acc_unlearned is empty; give a scalar or at least one per-model accuracy"),
        ((0.5, np.ones((2, 2)), 0.9, 0.8, 0.8), "retain_acc_unlearned must be a scalar or a 1-D array of per-model accuracies; got shape (2, 2)"),
    ],
)
def test_bad_accuracies_are_refused(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        final_score(*args)
