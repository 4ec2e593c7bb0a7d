"""The epsilon of one attack as a function of its error counts.

An attack on ``N`` models per family has ``FPR = fp / N`` and ``FNR = fn / N`` for
integer counts ``fp, fn`` in ``0..N``, so its epsilon is a lookup in an
``(N + 1) x (N + 1)`` table. The table is computed with the same float32 numpy
operations the published scoring code applies to its rate vectors.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np


@functools.lru_cache(maxsize=16)
def epsilon_tables(num_models: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon of every ``(fp, fn)`` count pair, and its suffix maximum.

    Parameters
    ----------
    num_models : int
        ``N``, the number of models in each family.
    delta : float
        The ``delta`` of the guarantee (a Python float).

    Returns
    -------
    table : ndarray of float32, shape (N + 1, N + 1)
        ``table[fp, fn]`` is the epsilon of an attack with ``fp`` false positives and
        ``fn`` false negatives: ``+inf`` for ``fp = fn = 0`` (perfect separation),
        ``-inf`` for a discarded attack (exactly one of the two counts is 0, or the
        formula gives NaN, which happens for ``fp = fn = N``), otherwise
        ``max(log(1 - delta - FPR) - log(FNR), log(1 - delta - FNR) - log(FPR))``
        (NaN terms ignored) clipped below at 0, all in float32.
    suffix_max : ndarray of float32, shape (N + 1, N + 1)
        ``suffix_max[a, b] = max(table[a:, b:])``: an upper bound on the epsilon of
        any attack known to have at least ``a`` false positives and ``b`` false
        negatives.

    Notes
    -----
    Rates are ``float32(count) / float32(N)``, which is what ``torch.mean`` of a
    float32 0/1 column returns. ``1 - delta`` is a Python float, so
    ``1 - delta - rate`` stays float32, as in the published code.
    """
    n = num_models
    rates = np.arange(n + 1, dtype=np.float32) / np.float32(n)
    fpr = np.ascontiguousarray(np.broadcast_to(rates[:, None], (n + 1, n + 1)))
    fnr = np.ascontiguousarray(np.broadcast_to(rates[None, :], (n + 1, n + 1)))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs in nanmax
        eps = np.nanmax(
            [np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)], axis=0
        )
        eps = np.clip(eps, 0, None)
    eps = eps.astype(np.float32, copy=False)
    eps[0, :] = np.nan
    eps[:, 0] = np.nan
    eps[0, 0] = np.inf
    table = np.where(np.isnan(eps), np.float32(-np.inf), eps).astype(np.float32)
    suffix = np.maximum.accumulate(table[::-1, :], axis=0)[::-1, :]
    suffix = np.maximum.accumulate(suffix[:, ::-1], axis=1)[:, ::-1]
    suffix = np.ascontiguousarray(suffix, dtype=np.float32)
    table.flags.writeable = False
    suffix.flags.writeable = False
    return table, suffix
