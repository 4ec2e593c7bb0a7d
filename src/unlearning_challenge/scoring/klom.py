"""KLoM on the forget set: how far each example's margin distribution is from retraining's.

KLoM ("KL divergence of margins") is the unlearning metric of Georgiev et al.
(2024), "Attribute-to-Delete: Machine Unlearning via Datamodel Matching", used
by the "Easy Data Unlearning Bench". What is computed here, per forget example:

* **margin**: the correct-class margin ``z_y - logsumexp_{j != y} z_j`` of each
  model's logits ``z``, which is the logit-scaled confidence the score reads
  (see :mod:`~unlearning_challenge.scoring.margins`), clipped to ``[-100, 100]``;
* **bins**: ``KLOM_BINS`` = 20 equal-width bins spanning the smallest to the
  largest margin of both families on that example (width 1 from the value
  when all margins are equal); the largest margin falls in the last bin;
* **distributions**: P, the share of unlearned models in each bin; Q, the share
  of retrained models;
* **smoothing**: where P has mass, Q is raised to at least ``KLOM_EPSILON`` =
  1e-5 (Q is not renormalised); bins where P is 0 contribute nothing;
* **KLoM**: ``KL(P || Q) = sum_b P_b log(P_b / Q_b)``, 0 when the histograms
  agree; at most ``log(1 / KLOM_EPSILON)`` = 11.5 (no unlearned model in any bin
  a retrained one reached).

``klom_forget_p95`` is the 95th percentile of the per-example values (numpy's
default linear interpolation): the forgetting of the worst 5% of the forget
set. All examples are binned at once: one ``bincount`` over ``[E, bins]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from unlearning_challenge.scoring.margins import finite_margins

__all__ = ["KLOM_BINS", "KLOM_EPSILON", "KLOM_PERCENTILE", "KLoM", "klom"]

KLOM_BINS = 20
KLOM_EPSILON = 1e-5
KLOM_PERCENTILE = 95.0


@dataclass(frozen=True)
class KLoM:
    """KL(unlearned || retrained) of each forget example's binned margins (``per_example`` float64 ``[E]``)
    and their 95th percentile (``p95``)."""

    per_example: np.ndarray
    p95: float


def _histograms(values: np.ndarray, low: np.ndarray, width: np.ndarray, bins: int) -> np.ndarray:
    """Share of the rows of ``values`` ``[N, E]`` in each of ``bins`` bins per column: ``[E, bins]``."""
    n, e = values.shape
    index = np.clip(np.floor((values - low) / width).astype(np.int64), 0, bins - 1)
    flat = index + bins * np.arange(e)[None, :]
    return np.bincount(flat.ravel(), minlength=e * bins).reshape(e, bins) / n


def klom(unlearned: Any, retrained: Any, *, bins: int = KLOM_BINS, epsilon: float = KLOM_EPSILON) -> KLoM:
    """KLoM of each forget example.

    Parameters
    ----------
    unlearned : array ``[N, E]``
        Correct-class margins (logit-scaled confidences) of the N unlearned models.
    retrained : array ``[M, E]``
        The same for the M retrained models.
    bins, epsilon
        Number of bins and the floor of the retrained shares (see the module docstring).

    Returns
    -------
    KLoM
        Per-example KL divergences ``[E]`` and their 95th percentile.
    """
    u = finite_margins("unlearned", unlearned)
    r = finite_margins("retrained", retrained)
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"the families have {u.shape[1]} and {r.shape[1]} forget examples")
    low = np.minimum(u.min(axis=0), r.min(axis=0))
    high = np.maximum(u.max(axis=0), r.max(axis=0))
    span = np.where(high > low, high - low, 1.0)
    width = span / bins
    p = _histograms(u, low, width, bins)
    q = _histograms(r, low, width, bins)
    inside = p > 0
    ratio = np.where(inside, p / np.where(inside, np.maximum(q, epsilon), 1.0), 1.0)
    per_example = np.sum(np.where(inside, p * np.log(ratio), 0.0), axis=1)
    return KLoM(per_example, float(np.percentile(per_example, KLOM_PERCENTILE)))
