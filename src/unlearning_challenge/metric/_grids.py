"""The threshold grids of the two attack families, bit-for-bit as the published code builds them."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._constants import DOUBLE_THRESHOLD_BUFFER, NUM_LEFT_THRESHOLDS, THRESHOLDS_PER_UNIT


def single_thresholds(lo: float, hi: float) -> np.ndarray:
    """Thresholds of the single-threshold attack over the pooled range ``[lo, hi]``.

    The published code calls ``torch.linspace`` with 0-dim float64 tensors and no
    dtype, so the grid is built in float32 (torch's default dtype) by torch's own
    kernel; it is called here the same way, with the float32 dtype made explicit so
    that a changed default dtype does not change the result.

    Returns
    -------
    ndarray of float64, shape (ceil((hi - lo) * 100),)
        The float32 thresholds, upcast (exactly) for the float64 comparisons.
    """
    num = int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT))
    start = torch.tensor(lo, dtype=torch.float64)
    end = torch.tensor(hi, dtype=torch.float64)
    return torch.linspace(start, end, num, dtype=torch.float32).numpy().astype(np.float64)


def right_edges(peaky_min: float, peaky_max: float, width: float) -> np.ndarray:
    """Right edges of the double-threshold attack (float64, ``np.linspace`` as published).

    ``width`` is the range of the peakier sample; the edges run from
    ``(min + width) - 2`` to ``max + 2``.
    """
    lo = (peaky_min + width) - DOUBLE_THRESHOLD_BUFFER
    hi = peaky_max + DOUBLE_THRESHOLD_BUFFER
    num = int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT))
    return np.linspace(lo, hi, num)


def left_edge_rows(right: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters of the left-edge grid of every right edge.

    For right edge ``r`` the published code calls
    ``np.linspace((r - width) - 2, (r - width) + 2, 400)``, whose element ``j`` is
    ``j * step + start`` (a float64 product, then a float64 sum) with
    ``step = (stop - start) / 399``, except the last element, which is ``stop``.

    Returns
    -------
    start, step, stop : ndarray of float64, shape (R,)
    """
    start = (right - width) - DOUBLE_THRESHOLD_BUFFER
    stop = (right - width) + DOUBLE_THRESHOLD_BUFFER
    # ``stop - start`` is about 4 for any confidence within MAX_ABS_CONFIDENCE, so the
    # denormal-step branch of np.linspace (step == 0) is never taken.
    step = (stop - start) / (NUM_LEFT_THRESHOLDS - 1)
    return start, step, stop


def left_edges(start: np.ndarray, step: np.ndarray, stop: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Left edge ``cols`` of right edge ``rows`` (broadcast together), exactly as np.linspace gives it."""
    values = cols.astype(np.float64) * step[rows]
    values += start[rows]
    return np.where(cols == NUM_LEFT_THRESHOLDS - 1, stop[rows], values)


def left_grids_are_monotone(right: np.ndarray, start: np.ndarray, step: np.ndarray, stop: np.ndarray) -> bool:
    """Whether every left edge grows with its column and with its row (a cheap sufficient test).

    Within a row the edges grow when ``step > 0`` and element 398 does not pass
    ``stop``. Across rows, for every column ``j``, ``j * step_i + start_i`` grows
    when the starts grow faster than ``j`` times any change of the step plus the
    rounding of the product (under 1e-15 for products up to 4).
    """
    if right.size and np.any(np.diff(right) < 0):
        return False
    if np.any(step <= 0):
        return False
    last_inner = float(NUM_LEFT_THRESHOLDS - 2) * step + start
    if np.any(last_inner > stop):
        return False
    margin = NUM_LEFT_THRESHOLDS * np.abs(np.diff(step)) + 1e-14 + 4e-16 * np.abs(start[1:])
    return bool(np.all(np.diff(start) >= margin)) and bool(np.all(np.diff(stop) >= 0))
