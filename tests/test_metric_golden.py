"""The metric against outputs of the published scoring code (tests/data/metric_reference_public.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearning_challenge.metric import example_points, forget_quality, per_example_epsilons

GOLDEN = np.load(Path(__file__).resolve().parent / "data" / "metric_reference_public.npz")
CASES = sorted({key.split("__")[0] for key in GOLDEN.files})


def test_golden_file_has_the_documented_cases():
    assert set(CASES) >= {
        "few_models_64", "peaky_unlearned", "perfect_separation", "same_distribution",
        "shifted_normals", "skewed_lognormal", "ties_rounded", "wide_unlearned",
    }


@pytest.mark.parametrize("case", CASES)
def test_epsilons_equal_the_published_code_bit_for_bit(case):
    unlearned, retrained = GOLDEN[f"{case}__unlearned"], GOLDEN[f"{case}__retrained"]
    eps = per_example_epsilons(unlearned, retrained)
    assert eps.dtype == np.float64 and eps.shape == (unlearned.shape[1],)
    assert np.array_equal(eps, GOLDEN[f"{case}__eps"])


@pytest.mark.parametrize("case", CASES)
def test_forget_quality_equals_the_published_score_exactly(case):
    unlearned, retrained = GOLDEN[f"{case}__unlearned"], GOLDEN[f"{case}__retrained"]
    score = forget_quality(unlearned, retrained)
    assert isinstance(score, float)
    assert score == GOLDEN[f"{case}__score"]
    assert np.mean(example_points(GOLDEN[f"{case}__eps"], unlearned.shape[0])) == GOLDEN[f"{case}__score"]


@pytest.mark.parametrize("case", ["same_distribution", "few_models_64"])
def test_float32_and_fortran_inputs_give_the_float64_result(case):
    unlearned, retrained = GOLDEN[f"{case}__unlearned"], GOLDEN[f"{case}__retrained"]
    eps = per_example_epsilons(np.asfortranarray(unlearned), np.asfortranarray(retrained))
    assert np.array_equal(eps, GOLDEN[f"{case}__eps"])
    u32, r32 = unlearned.astype(np.float32), retrained.astype(np.float32)
    assert np.array_equal(
        per_example_epsilons(u32, r32), per_example_epsilons(u32.astype(np.float64), r32.astype(np.float64))
    )


def test_examples_are_independent_of_their_neighbours():
    unlearned, retrained = GOLDEN["shifted_normals__unlearned"], GOLDEN["shifted_normals__retrained"]
    expected = GOLDEN["shifted_normals__eps"]
    order = np.array([3, 0, 5, 1])
    assert np.array_equal(per_example_epsilons(unlearned[:, order], retrained[:, order]), expected[order])
    assert np.array_equal(per_example_epsilons(unlearned[:, 2:3], retrained[:, 2:3]), expected[2:3])


def test_inputs_are_not_modified():
    unlearned, retrained = GOLDEN["ties_rounded__unlearned"].copy(), GOLDEN["ties_rounded__retrained"].copy()
    per_example_epsilons(unlearned, retrained)
    forget_quality(unlearned, retrained)
    assert np.array_equal(unlearned, GOLDEN["ties_rounded__unlearned"])
    assert np.array_equal(retrained, GOLDEN["ties_rounded__retrained"])
