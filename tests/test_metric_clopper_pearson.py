"""The Clopper-Pearson option of the metric against a literal implementation, and its guarantees.

The brute force tiles every threshold against every model (the tiling of
``test_metric_bruteforce``), turns each threshold's error counts into one-sided
upper bounds with ``scipy.stats.binomtest`` (root finding, not the beta quantile the
fast code uses) and applies the epsilon formula and the discard rule on counts.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from scipy import stats

from test_metric_bruteforce import KINDS, _double_threshold_rates, _families, _single_threshold_rates
from unlearning_challenge.metric import forget_quality, per_example_epsilons

DELTA = 1e-5


@functools.lru_cache(maxsize=None)
def _upper_bound(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) upper confidence bound of k successes in n trials."""
    test = stats.binomtest(k, n, alternative="less")
    return float(test.proportion_ci(confidence_level=1 - alpha, method="exact").high)


def _cp_threshold_epsilons(fpr, fnr, n, alpha):
    """Epsilon per threshold from the empirical rates' counts; NaN marks a discarded threshold."""
    fp = np.rint(fpr.astype(np.float64) * n).astype(int)
    fn = np.rint(fnr.astype(np.float64) * n).astype(int)
    kept = ((fp == 0) & (fn == 0)) | ((fp != 0) & (fn != 0))
    upper_fp = np.array([_upper_bound(int(k), n, alpha) for k in fp[kept]], dtype=np.float32)
    upper_fn = np.array([_upper_bound(int(k), n, alpha) for k in fn[kept]], dtype=np.float32)
    eps = np.full(fp.shape, np.nan, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = np.log(1 - DELTA - upper_fp) - np.log(upper_fn)
        second = np.log(1 - DELTA - upper_fn) - np.log(upper_fp)
        eps[kept] = np.clip(np.nanmax(np.stack([first, second]), axis=0), 0, None)
    return eps


def brute_force_cp_epsilons(unlearned, retrained, alpha=0.05):
    n = unlearned.shape[0]
    out = []
    for e in range(unlearned.shape[1]):
        u, r = unlearned[:, e], retrained[:, e]
        pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        ranges = sorted([pos.max() - pos.min(), neg.max() - neg.min()])
        if ranges[1] > 0 and ranges[0] / ranges[1] < 0.01:
            out.append(50.0)
            continue
        eps = []
        for rates in (_single_threshold_rates(pos, neg), _double_threshold_rates(pos, neg)):
            _, fnr, fpr, _ = rates
            eps.append(_cp_threshold_epsilons(fpr, fnr, n, alpha))
        eps = np.concatenate(eps)
        eps = eps[~np.isnan(eps)]
        out.append(float(np.clip(eps.max(), 0, 50)) if eps.size else 0.0)
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("kind", ["shifted", "ties_half", "shared_values", "separated", "overlap"])
def test_clopper_pearson_equals_brute_force_on_random_families_with_ties(kind):
    unlearned, retrained = _families(kind, 16, 4, 500 + KINDS.index(kind))
    fast = per_example_epsilons(unlearned, retrained, bounds="clopper-pearson")
    np.testing.assert_allclose(fast, brute_force_cp_epsilons(unlearned, retrained), rtol=1e-6, atol=1e-6)


def test_clopper_pearson_equals_brute_force_with_another_alpha():
    unlearned, retrained = _families("ties_quarter", 12, 4, 77)
    fast = per_example_epsilons(unlearned, retrained, bounds="clopper-pearson", alpha=0.2)
    np.testing.assert_allclose(fast, brute_force_cp_epsilons(unlearned, retrained, alpha=0.2), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_models, alpha", [(12, 0.05), (32, 0.05), (512, 0.01)])
def test_perfect_separation_has_the_closed_form(num_models, alpha):
    """0 errors in n: the upper bound is 1 - alpha^(1/n) for both rates."""
    unlearned = np.linspace(5, 6, num_models)[:, None]
    retrained = np.linspace(0, 1, num_models)[:, None]
    eps = per_example_epsilons(unlearned, retrained, bounds="clopper-pearson", alpha=alpha)
    upper = np.float32(1 - alpha ** (1 / num_models))
    expected = np.log(np.float32(1 - DELTA - upper)) - np.log(upper)
    assert np.isfinite(eps[0]) and eps[0] < 50
    assert eps[0] == pytest.approx(float(expected), rel=1e-6)
    assert per_example_epsilons(unlearned, retrained)[0] == 50.0


@pytest.mark.parametrize("kind", KINDS)
def test_never_above_the_empirical_epsilon_and_f_never_below(kind):
    for num_models in (8, 33, 64):
        unlearned, retrained = _families(kind, num_models, 20, 900 + num_models + KINDS.index(kind))
        empirical = per_example_epsilons(unlearned, retrained)
        bounded = per_example_epsilons(unlearned, retrained, bounds="clopper-pearson")
        assert np.all(bounded <= empirical)
        assert np.all(np.isfinite(bounded))
        assert forget_quality(unlearned, retrained, bounds="clopper-pearson") >= forget_quality(unlearned, retrained)


def test_the_default_is_the_published_rule():
    unlearned, retrained = _families("ties_half", 33, 8, 3)
    default = per_example_epsilons(unlearned, retrained)
    assert np.array_equal(per_example_epsilons(unlearned, retrained, bounds="empirical"), default)
    assert np.array_equal(per_example_epsilons(unlearned, retrained, bounds="empirical", alpha=0.3), default)
    assert forget_quality(unlearned, retrained, bounds="empirical") == forget_quality(unlearned, retrained)


def test_peaky_and_non_finite_examples_keep_the_cap():
    n = 16
    spread = np.random.default_rng(1).normal(0, 1, n)
    unlearned = np.stack([np.full(n, 1.0), spread, spread], axis=1)
    retrained = np.stack([spread, spread + 0.1, spread], axis=1)
    unlearned[0, 2] = np.nan
    eps = per_example_epsilons(unlearned, retrained, bounds="clopper-pearson")
    assert eps[0] == 50.0 and eps[2] == 50.0 and eps[1] < 50.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"bounds": "wilson"}, ValueError, r"bounds must be one of \['empirical', 'clopper-pearson'\]; got 'wilson'"),
        ({"bounds": None}, ValueError, "bounds must be one of"),
        ({"bounds": "clopper-pearson", "alpha": 0.0}, ValueError, r"alpha must be in \(0, 1\)"),
        ({"bounds": "clopper-pearson", "alpha": 1.5}, ValueError, r"alpha must be in \(0, 1\)"),
        ({"bounds": "clopper-pearson", "alpha": "0.05"}, TypeError, "alpha must be a real number"),
    ],
)
def test_bad_bounds_or_alpha_are_refused(kwargs, error, message):
    unlearned, retrained = _families("shifted", 8, 2, 0)
    with pytest.raises(error, match=message):
        per_example_epsilons(unlearned, retrained, **kwargs)
    with pytest.raises(error, match=message):
        forget_quality(unlearned, retrained, **kwargs)
