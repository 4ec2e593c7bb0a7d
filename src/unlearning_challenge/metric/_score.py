"""From per-example epsilons to the forgetting quality and the final score."""

from __future__ import annotations

import numpy as np

from ._constants import ALPHA, BUCKET_WIDTH
from ._epsilon import per_example_epsilons
from . import _validation


def bucket_points(num_models: int) -> tuple[np.ndarray, np.ndarray]:
    """The epsilon buckets of the forgetting quality and the points each earns.

    Parameters
    ----------
    num_models : int
        N, the number of models per family (at least 2).

    Returns
    -------
    lower_edges : ndarray of float64, shape (K,)
        ``0, 0.5, 1.0, ...``: bucket k covers ``[lower_edges[k], lower_edges[k] + 0.5)``.
        Buckets are added while their upper end is at most ``ceil(log(N - 1))``
        (K = 14 for N = 512; K = 0 for N = 2).
    points : ndarray of float64, shape (K,)
        ``0.5 ** k``. An epsilon at or beyond the last bucket's end earns 0.
    """
    num_models = _validation.num_models(num_models)
    max_epsilon = np.ceil(np.log(num_models - 1))
    count = 0
    while (count + 1) * BUCKET_WIDTH <= max_epsilon:
        count += 1
    lower_edges = np.arange(count, dtype=np.float64) * BUCKET_WIDTH
    points = 0.5 ** np.arange(count, dtype=np.float64)
    return lower_edges, points


def example_points(eps, num_models: int) -> np.ndarray:
    """Points earned by each example's epsilon.

    Parameters
    ----------
    eps : array_like of real numbers, shape (E,)
        Per-example epsilons (see ``per_example_epsilons``).
    num_models : int
        N, which sets the buckets (see ``bucket_points``).

    Returns
    -------
    ndarray of float64, shape (E,)
        ``0.5 ** k`` for an epsilon in bucket k, 0 past the last bucket (and for NaN).
    """
    eps = _validation.epsilons(eps)
    lower_edges, points = bucket_points(num_models)
    bucket = np.searchsorted(lower_edges + BUCKET_WIDTH, eps, side="right")  # first bucket whose end exceeds eps
    earned = np.zeros(eps.shape, dtype=np.float64)
    inside = bucket < points.size
    earned[inside] = points[bucket[inside]]
    return earned


def forget_quality(unlearned, retrained, *, bounds: str = "empirical", alpha: float = ALPHA) -> float:
    """Forgetting quality F: the mean of the examples' points.

    Parameters
    ----------
    unlearned, retrained : array_like of real numbers, shape (N, E)
        Logit-scaled confidences of the E forget examples under the N unlearned
        and the N retrained models.
    bounds : {"empirical", "clopper-pearson"}, default "empirical"
        The rate estimate of the attacks (see ``per_example_epsilons``); with
        ``"clopper-pearson"`` F is never below the empirical F. Keyword-only.
    alpha : float, default 0.05
        The Clopper-Pearson bounds' ``alpha``. Keyword-only.

    Returns
    -------
    float
        F in [0, 1]; with the default bounds, equal to the published code's forget score.
    """
    eps = per_example_epsilons(unlearned, retrained, bounds=bounds, alpha=alpha)
    return float(np.mean(example_points(eps, np.shape(unlearned)[0])))


def final_score(
    forget_quality, retain_acc_unlearned, retain_acc_retrained, test_acc_unlearned, test_acc_retrained
) -> float:
    """Final score ``F * (RA_U / RA_R) * (TA_U / TA_R)``.

    Parameters
    ----------
    forget_quality : float
        F, from ``forget_quality``.
    retain_acc_unlearned, retain_acc_retrained : float or array_like, shape (N,)
        Retain-set accuracy of the unlearned / retrained models; arrays of
        per-model accuracies are averaged.
    test_acc_unlearned, test_acc_retrained : float or array_like, shape (N,)
        The same on the test set.

    Returns
    -------
    float
        The score. ``retain_acc_retrained`` and ``test_acc_retrained`` must be
        positive; all inputs finite.
    """
    f = _validation.mean_accuracy(forget_quality, "forget_quality", positive=False)
    ra_u = _validation.mean_accuracy(retain_acc_unlearned, "retain_acc_unlearned", positive=False)
    ra_r = _validation.mean_accuracy(retain_acc_retrained, "retain_acc_retrained", positive=True)
    ta_u = _validation.mean_accuracy(test_acc_unlearned, "test_acc_unlearned", positive=False)
    ta_r = _validation.mean_accuracy(test_acc_retrained, "test_acc_retrained", positive=True)
    return f * (ra_u / ra_r) * (ta_u / ta_r)
