"""The fast per-example epsilons against a slow, literal implementation of the same rules.

The brute force tiles every threshold against every model, as the published code
does, computes the four rates in float32 and the epsilon of every threshold with the
float32 numpy formula; nothing is shared with the fast implementation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import unlearning_challenge.metric._epsilon as epsilon_module
from unlearning_challenge.metric import per_example_epsilons


def _rates(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of models predicted positive / negative per threshold, in float32. ``inside``: [N, T] bool."""
    n = np.float32(inside.shape[0])
    positive = inside.sum(axis=0).astype(np.float32) / n
    negative = (~inside).sum(axis=0).astype(np.float32) / n
    return positive, negative


def _single_threshold_rates(pos, neg):
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    num = int(np.ceil((hi - lo) * 100))
    thresholds = torch.linspace(torch.tensor(lo), torch.tensor(hi), num).numpy()  # float32 by default
    assert thresholds.dtype == np.float32
    t = thresholds.astype(np.float64)[None, :]
    tpr, fnr = _rates(pos[:, None] >= t)
    fpr, tnr = _rates(neg[:, None] >= t)
    return tpr, fnr, fpr, tnr


def _double_threshold_rates(pos, neg):
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    if pos_range >= neg_range:
        peaky, other = neg, pos
    else:
        peaky, other = pos, neg
    width = peaky.max() - peaky.min()
    lo, hi = peaky.min() + width - 2.0, peaky.max() + 2.0
    rights = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    lefts = np.stack([np.linspace(r - width - 2.0, r - width + 2.0, 400) for r in rights]).reshape(-1)
    rights = np.repeat(rights, 400)
    tpr, fnr = _rates((lefts[None, :] <= peaky[:, None]) & (peaky[:, None] <= rights[None, :]))
    fpr, tnr = _rates((lefts[None, :] <= other[:, None]) & (other[:, None] <= rights[None, :]))
    return tpr, fnr, fpr, tnr


def _threshold_epsilons(tpr, fnr, fpr, tnr, delta):
    """Epsilon per threshold; NaN marks a discarded threshold."""
    eps = np.full(tpr.shape, np.nan, dtype=np.float32)
    perfect = (fpr == 0) & (fnr == 0)
    assert np.all(tpr[perfect] == 1) and np.all(tnr[perfect] == 1)
    eps[perfect] = np.inf
    kept = (fpr != 0) & (fnr != 0)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = np.log(1 - delta - fpr[kept]) - np.log(fnr[kept])
        second = np.log(1 - delta - fnr[kept]) - np.log(fpr[kept])
        assert first.dtype == np.float32 and second.dtype == np.float32
        eps[kept] = np.clip(np.nanmax(np.stack([first, second]), axis=0), 0, None)
    return eps


def brute_force_epsilons(unlearned, retrained, delta=1e-5):
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    out = []
    for e in range(unlearned.shape[1]):
        u, r = unlearned[:, e], retrained[:, e]
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
            out.append(50.0)
            continue
        pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        ranges = sorted([pos.max() - pos.min(), neg.max() - neg.min()])
        if ranges[1] > 0 and ranges[0] / ranges[1] < 0.01:
            out.append(50.0)
            continue
        single = _threshold_epsilons(*_single_threshold_rates(pos, neg), delta)
        double = _threshold_epsilons(*_double_threshold_rates(pos, neg), delta)
        eps = np.concatenate([single, double])
        eps = eps[~np.isnan(eps)]
        out.append(float(np.clip(eps.max(), 0, 50)) if eps.size else 0.0)
    return np.array(out, dtype=np.float64)


def _families(kind: str, num_models: int, num_examples: int, seed: int):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 2.0, num_examples)
    sd = rng.uniform(0.3, 3.0, num_examples)
    retrained = rng.normal(mu, sd, (num_models, num_examples))
    unlearned = rng.normal(mu + rng.normal(0, 1, num_examples), sd * rng.uniform(0.7, 1.4, num_examples), (num_models, num_examples))
    if kind == "overlap":
        unlearned = rng.normal(mu, sd, (num_models, num_examples))
    elif kind == "ties_half":
        unlearned, retrained = np.round(unlearned * 2) / 2, np.round(retrained * 2) / 2
    elif kind == "ties_quarter":
        unlearned, retrained = np.round(unlearned * 4) / 4, np.round(retrained * 4) / 4
    elif kind == "shared_values":  # many exact ties across the two families
        retrained = np.round(retrained)
        unlearned = np.where(rng.random((num_models, num_examples)) < 0.5, retrained, np.round(unlearned))
    elif kind == "separated":
        unlearned = unlearned + rng.choice([-1.0, 1.0], num_examples) * rng.uniform(2, 6, num_examples) * sd
    elif kind == "widths":  # range ratios from just above the peaky limit to 1/3
        unlearned = mu + (unlearned - mu) * rng.uniform(0.012, 0.3, num_examples)
    elif kind == "skewed":
        unlearned = rng.lognormal(0, 1.0, (num_models, num_examples))
        retrained = rng.lognormal(0, 1.3, (num_models, num_examples))
    return unlearned, retrained


KINDS = ["shifted", "overlap", "ties_half", "ties_quarter", "shared_values", "separated", "widths", "skewed"]


@pytest.mark.parametrize("num_models", [8, 33, 64])
@pytest.mark.parametrize("kind", KINDS)
def test_fast_equals_brute_force_on_random_families(kind, num_models):
    seed = 1000 * num_models + KINDS.index(kind)
    unlearned, retrained = _families(kind, num_models, 6, seed)
    assert np.array_equal(per_example_epsilons(unlearned, retrained), brute_force_epsilons(unlearned, retrained))


def test_fast_equals_brute_force_with_another_delta():
    unlearned, retrained = _families("shifted", 16, 6, 7)
    assert np.array_equal(
        per_example_epsilons(unlearned, retrained, delta=0.05), brute_force_epsilons(unlearned, retrained, delta=0.05)
    )
    assert np.array_equal(
        per_example_epsilons(unlearned, retrained, delta=0), brute_force_epsilons(unlearned, retrained, delta=0)
    )


def test_degenerate_families():
    n = 16
    rng = np.random.default_rng(3)
    spread = rng.normal(0, 1, n)
    columns = [
        (np.full(n, 1.0), spread),  # one family constant: peaky, the cap
        (spread, np.full(n, 1.0)),
        (np.full(n, 1.0), np.full(n, 2.0)),  # both constant, different values: perfect separation, the cap
        (np.full(n, 1.0), np.full(n, 1.0)),  # both constant, equal: every attack discarded, 0
        (spread, spread),  # identical samples
        (spread + 100.0, spread),  # far apart
        (spread * 0.0101, spread),  # range ratio just above the peaky limit
        (np.r_[np.zeros(n - 1), 1.0], np.r_[np.zeros(n - 1), 1.0]),  # all but one model equal
    ]
    unlearned = np.stack([c[0] for c in columns], axis=1)
    retrained = np.stack([c[1] for c in columns], axis=1)
    eps = per_example_epsilons(unlearned, retrained)
    assert np.array_equal(eps, brute_force_epsilons(unlearned, retrained))
    assert eps[0] == eps[1] == eps[2] == 50.0
    assert eps[3] == 0.0
    assert eps[5] == 50.0


def test_perfect_separation_of_a_single_example():
    n = 12
    unlearned = np.linspace(5, 6, n)[:, None]
    retrained = np.linspace(0, 1, n)[:, None]
    assert per_example_epsilons(unlearned, retrained)[0] == 50.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_confidences_get_the_cap_and_leave_other_examples_alone(bad):
    unlearned, retrained = _families("shifted", 16, 5, 11)
    expected = per_example_epsilons(unlearned, retrained)
    unlearned[3, 1] = bad
    retrained[0, 4] = bad
    eps = per_example_epsilons(unlearned, retrained)
    assert eps[1] == 50.0 and eps[4] == 50.0
    assert np.array_equal(eps[[0, 2, 3]], expected[[0, 2, 3]])
    assert np.array_equal(eps, brute_force_epsilons(unlearned, retrained))


def test_all_examples_non_finite():
    eps = per_example_epsilons(np.full((4, 3), np.nan), np.zeros((4, 3)))
    assert np.array_equal(eps, [50.0, 50.0, 50.0])


def test_orientation_tie_on_medians():
    # Equal medians: the unlearned family is positive; mirrored data gives the mirrored attack.
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, (20, 4))
    unlearned = np.r_[base[:10] - 1.0, base[10:] + 1.0]
    retrained = np.r_[base[:10] * 0.5 - 0.2, base[10:] * 0.5 + 0.2]
    assert np.array_equal(per_example_epsilons(unlearned, retrained), brute_force_epsilons(unlearned, retrained))


def test_branch_and_bound_equals_evaluating_every_interval(monkeypatch):
    """At N = 512 the pruned search and the exhaustive one give the same epsilons."""
    rng = np.random.default_rng(21)
    num_examples = 12
    mu = rng.normal(0, 2, num_examples)
    sd = rng.uniform(0.3, 3, num_examples)
    retrained = rng.normal(mu, sd, (512, num_examples))
    unlearned = rng.normal(mu + rng.normal(0, 0.5, num_examples), sd * rng.uniform(0.5, 1.5, num_examples), (512, num_examples))
    unlearned[:, :3] = np.round(unlearned[:, :3] * 4) / 4
    fast = per_example_epsilons(unlearned, retrained)
    monkeypatch.setattr(epsilon_module, "left_grids_are_monotone", lambda *args: False)
    exhaustive = per_example_epsilons(unlearned, retrained)
    assert np.array_equal(fast, exhaustive)


@pytest.mark.parametrize("kind", ["overlap", "ties_quarter"])
def test_fast_equals_brute_force_with_512_models(kind):
    unlearned, retrained = _families(kind, 512, 2, 99 + KINDS.index(kind))
    assert np.array_equal(per_example_epsilons(unlearned, retrained), brute_force_epsilons(unlearned, retrained))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shifted", "shared_values", "separated", "widths", "skewed"])
def test_fast_equals_brute_force_with_512_models_more_kinds(kind):
    unlearned, retrained = _families(kind, 512, 4, 199 + KINDS.index(kind))
    assert np.array_equal(per_example_epsilons(unlearned, retrained), brute_force_epsilons(unlearned, retrained))
