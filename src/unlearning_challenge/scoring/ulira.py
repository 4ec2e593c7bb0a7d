"""Per-example attack accuracy (U-LiRA) from the stored outputs, without extra training.

Hayes et al. (2024), "Inexact Unlearning Needs More Careful Evaluations to
Avoid a False Sense of Privacy", attack each forget example with a likelihood
ratio test: Gaussians fitted to the logit-scaled confidence of shadow models
that were unlearned and of shadow models that were retrained, and the target
model called "unlearned" when its confidence is more likely under the first.
Here the shadow models are the other models of the two families, leave one
out:

* for forget example ``e`` and a held-out model (unlearned or retrained), fit a
  Gaussian (mean and population variance, floored at ``VARIANCE_FLOOR``) to the
  confidences of the *remaining* unlearned models and one to the remaining
  retrained models;
* call the held-out model "unlearned" when its log-likelihood under the
  unlearned Gaussian is higher, "retrained" when lower; a tie counts half;
* the example's accuracy is the balanced accuracy: the mean of the share of
  unlearned models called unlearned and of retrained models called retrained.

``ulira_accuracy`` is the mean over examples (0.5: the attack is a coin flip,
the ideal; 1: every model is told apart on every example) and
``ulira_accuracy_std`` its standard deviation over examples. The leave-one-out
means and variances come in closed form from each family's centered sums, so
the whole computation is a few array operations on ``[N, E]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from unlearning_challenge.scoring.margins import finite_margins

__all__ = ["VARIANCE_FLOOR", "ULiRA", "ulira"]

# Smallest variance of a fitted Gaussian (a standard deviation of 0.001 logit units):
# keeps a family that is constant on an example from giving an infinite likelihood.
VARIANCE_FLOOR = 1e-6


@dataclass(frozen=True)
class ULiRA:
    """The attack's balanced accuracy per forget example (``per_example`` float64 ``[E]``),
    its mean (``accuracy``) and standard deviation over examples (``std``)."""

    per_example: np.ndarray
    accuracy: float
    std: float


def _leave_one_out(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of each column without row i, for every i: two ``[N, E]`` arrays.

    ``values`` ``[N, E]`` with N >= 2. Removing x_i from a sample of n with mean m and sum of
    squared deviations S leaves mean ``m - (x_i - m) / (n - 1)`` and squared deviations
    ``S - (x_i - m)^2 n / (n - 1)``.
    """
    n = values.shape[0]
    mean = values.mean(axis=0)
    deviations = values - mean
    squares = np.sum(deviations ** 2, axis=0)
    loo_mean = mean - deviations / (n - 1)
    loo_squares = np.maximum(squares - deviations ** 2 * (n / (n - 1)), 0.0)
    return loo_mean, np.maximum(loo_squares / (n - 1), VARIANCE_FLOOR)


def _log_likelihood(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Gaussian log-density up to the shared constant ``-log(2 pi) / 2``."""
    return -0.5 * (np.log(variance) + (x - mean) ** 2 / variance)


def _correct(llr: np.ndarray) -> np.ndarray:
    """1 where the log-likelihood ratio points the right way (> 0), 0.5 on a tie, 0 otherwise."""
    return np.where(llr > 0, 1.0, np.where(llr == 0, 0.5, 0.0))


def ulira(unlearned: Any, retrained: Any) -> ULiRA:
    """Leave-one-out U-LiRA accuracy on each forget example.

    Parameters
    ----------
    unlearned : array ``[N, E]``
        Logit-scaled confidences (correct-class margins) of the N unlearned models;
        non-finite values as in :func:`~unlearning_challenge.scoring.margins.finite_margins`.
    retrained : array ``[M, E]``
        The same for the M retrained models. N and M at least 2.

    Returns
    -------
    ULiRA
        Balanced accuracy per example ``[E]``, its mean and its std over examples.
    """
    u = finite_margins("unlearned", unlearned)
    r = finite_margins("retrained", retrained)
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"the families have {u.shape[1]} and {r.shape[1]} forget examples")
    if min(u.shape[0], r.shape[0]) < 2:
        raise ValueError(f"U-LiRA leaves one model out: it needs at least 2 models per family, got {u.shape[0]} "
                         f"unlearned and {r.shape[0]} retrained")
    u_mean, u_var = u.mean(axis=0), np.maximum(u.var(axis=0), VARIANCE_FLOOR)
    r_mean, r_var = r.mean(axis=0), np.maximum(r.var(axis=0), VARIANCE_FLOOR)
    u_loo_mean, u_loo_var = _leave_one_out(u)
    r_loo_mean, r_loo_var = _leave_one_out(r)
    # A held-out unlearned model is right when it is more likely under the unlearned Gaussian.
    unlearned_right = _correct(_log_likelihood(u, u_loo_mean, u_loo_var) - _log_likelihood(u, r_mean, r_var))
    retrained_right = _correct(_log_likelihood(r, r_loo_mean, r_loo_var) - _log_likelihood(r, u_mean, u_var))
    per_example = 0.5 * (unlearned_right.mean(axis=0) + retrained_right.mean(axis=0))
    return ULiRA(per_example, float(per_example.mean()), float(per_example.std()))
