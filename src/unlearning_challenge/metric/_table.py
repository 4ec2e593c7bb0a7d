"""The epsilon of one attack as a function of its error counts.

An attack on ``N`` models per family has ``fp`` false positives and ``fn`` false
negatives, integer counts in ``0..N``; its rates, and so its epsilon, depend only
on those counts, so its epsilon is a lookup in an ``(N + 1) x (N + 1)`` table. The
table is computed with the same float32 numpy operations the published scoring code
applies to its rate vectors.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy import stats


def count_rates(num_models: int, bounds: str, alpha: float) -> np.ndarray:
    """The rate estimated from each count ``0..N``, in float32.

    Parameters
    ----------
    num_models : int
        ``N``.
    bounds : {"empirical", "clopper-pearson"}
        ``"empirical"``: ``float32(k) / float32(N)``, what ``torch.mean`` of a float32
        0/1 column returns. ``"clopper-pearson"``: the one-sided ``(1 - alpha)``
        Clopper-Pearson upper bound of a binomial proportion with ``k`` successes in
        ``N`` trials, ``beta.ppf(1 - alpha, k + 1, N - k)`` (1 for ``k = N``),
        rounded to float32.
    alpha : float
        Used by ``"clopper-pearson"`` only.

    Returns
    -------
    ndarray of float32, shape (N + 1,)
    """
    n = num_models
    if bounds == "empirical":
        return np.arange(n + 1, dtype=np.float32) / np.float32(n)
    k = np.arange(n, dtype=np.float64)
    upper = np.append(stats.beta.ppf(1.0 - alpha, k + 1, n - k), 1.0)
    return upper.astype(np.float32)


@functools.lru_cache(maxsize=16)
def epsilon_tables(
    num_models: int, delta: float, bounds: str = "empirical", alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon of every ``(fp, fn)`` count pair, and its suffix maximum.

    Parameters
    ----------
    num_models : int
        ``N``, the number of models in each family.
    delta : float
        The ``delta`` of the guarantee (a Python float).
    bounds : {"empirical", "clopper-pearson"}
        How a count becomes a rate (see ``count_rates``).
    alpha : float
        The Clopper-Pearson bounds' ``alpha`` (a Python float).

    Returns
    -------
    table : ndarray of float32, shape (N + 1, N + 1)
        ``table[fp, fn]`` is the epsilon of an attack with ``fp`` false positives and
        ``fn`` false negatives: ``-inf`` for a discarded attack (exactly one of the two
        counts is 0, or the formula gives NaN, which happens for ``fp = fn = N``),
        otherwise ``max(log(1 - delta - FPR) - log(FNR), log(1 - delta - FNR) - log(FPR))``
        (NaN terms ignored) clipped below at 0, all in float32. For ``fp = fn = 0``
        (perfect separation) it is ``+inf`` with empirical rates; with
        Clopper-Pearson rates, which are never 0, the formula's finite value.
    suffix_max : ndarray of float32, shape (N + 1, N + 1)
        ``suffix_max[a, b] = max(table[a:, b:])``: an upper bound on the epsilon of
        any attack known to have at least ``a`` false positives and ``b`` false
        negatives.

    Notes
    -----
    ``1 - delta`` is a Python float, so ``1 - delta - rate`` stays float32, as in the
    published code.
    """
    n = num_models
    rates = count_rates(n, bounds, alpha)
    fpr = np.ascontiguousarray(np.broadcast_to(rates[:, None], (n + 1, n + 1)))
    fnr = np.ascontiguousarray(np.broadcast_to(rates[None, :], (n + 1, n + 1)))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs in nanmax
        eps = np.nanmax(
            [np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)], axis=0
        )
        eps = np.clip(eps, 0, None)
    eps = eps.astype(np.float32, copy=False)
    perfect = eps[0, 0] if bounds == "clopper-pearson" else np.float32(np.inf)
    eps[0, :] = np.nan
    eps[:, 0] = np.nan
    eps[0, 0] = perfect
    table = np.where(np.isnan(eps), np.float32(-np.inf), eps).astype(np.float32)
    suffix = np.maximum.accumulate(table[::-1, :], axis=0)[::-1, :]
    suffix = np.maximum.accumulate(suffix[:, ::-1], axis=1)[:, ::-1]
    suffix = np.ascontiguousarray(suffix, dtype=np.float32)
    table.flags.writeable = False
    suffix.flags.writeable = False
    return table, suffix
