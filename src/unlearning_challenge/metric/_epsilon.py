"""Per-example epsilons: the strongest of the published attacks, computed exactly and fast.

For one forget example the published code evaluates two families of threshold
attacks on the two samples of N confidences (a few thousand single thresholds and
about 160,000 intervals) by tiling every threshold against every model. Here:

* a sample is sorted once, and the number of values below or above any threshold is
  a binary search (``np.searchsorted``), which gives the very same counts;
* the epsilon of an attack depends only on its integer error counts ``(fp, fn)``,
  so it is a lookup in a precomputed float32 table (see ``_table``);
* the intervals of the double-threshold family form a grid of right edges (rows)
  by left edges (columns). A block of that grid has at least
  ``N - (#peaky <= right_max) + (#peaky < left_min)`` false negatives and at least
  ``(#other <= right_min) - (#other < left_max)`` false positives, so the suffix
  maximum of the table bounds every epsilon in the block. Blocks whose bound does
  not exceed the best epsilon found so far are skipped; the others are split and,
  at the finest level, evaluated interval by interval. The maximum is therefore
  exactly the maximum over all intervals.
"""

from __future__ import annotations

import numpy as np

from ._constants import ALPHA, DELTA, EPSILON_CAP, NUM_LEFT_THRESHOLDS, PEAKY_RANGE_RATIO
from ._grids import left_edge_rows, left_edges, left_grids_are_monotone, right_edges, single_thresholds
from ._table import epsilon_tables
from . import _validation

#: Block sizes (right edges x left edges) of the successive bounding levels; each
#: divides the one before. The survivors of the last level are evaluated exactly.
_BLOCK_LEVELS = ((40, 40), (8, 8))

#: Rows of the interval grid evaluated at once when every interval is evaluated.
_DENSE_ROW_CHUNK = 64

_NEG_INF = float("-inf")
_POS_INF = float("inf")


def per_example_epsilons(
    unlearned, retrained, *, delta: float = DELTA, bounds: str = "empirical", alpha: float = ALPHA
) -> np.ndarray:
    """Epsilon of every forget example, as the published scoring code computes it.

    Parameters
    ----------
    unlearned : array_like of real numbers, shape (N, E)
        Logit-scaled confidence of each of the E forget examples (columns) under each
        of the N unlearned models (rows).
    retrained : array_like of real numbers, shape (N, E)
        The same for the N models retrained without the forget set.
    delta : float, default 1e-5
        The ``delta`` of the (epsilon, delta) guarantee, keyword-only.
    bounds : {"empirical", "clopper-pearson"}, default "empirical"
        How an attack's FPR and FNR are estimated from its error counts, keyword-only.
        ``"empirical"`` is the published rule (counts / N). ``"clopper-pearson"``
        replaces each rate by its one-sided ``(1 - alpha)`` Clopper-Pearson upper
        bound, which makes each epsilon a high-probability lower bound; it is never
        above the empirical epsilon (see Notes).
    alpha : float, default 0.05
        The Clopper-Pearson bounds' ``alpha``, in (0, 1); keyword-only, used only with
        ``bounds="clopper-pearson"``.

    Returns
    -------
    ndarray of float64, shape (E,)
        ``eps[e]`` in [0, 50]: the largest epsilon any single- or double-threshold
        attack reaches on example ``e``. Values are float32 numbers (the published
        code computes epsilons in float32) stored as float64, equal bit for bit to
        the published code's output.

    Raises
    ------
    TypeError
        If an input does not hold real numbers.
    ValueError
        If an input is not 2-D, the shapes disagree, N < 2, E = 0, a finite value
        exceeds ``MAX_ABS_CONFIDENCE`` in magnitude, ``delta`` is outside [0, 1),
        ``bounds`` is not one of the two names or ``alpha`` is outside (0, 1).

    Notes
    -----
    Inputs are converted to float64 (exactly, for float32 and integer inputs); the
    result is that of the published code run on the float64 arrays. Per example:

    1. An example with a NaN or infinite confidence in either family gets the cap,
       50 (the published code has no rule for them; this never crashes and never
       scores well).
    2. The sample with the larger median is "positive" (``median(retrained) >
       median(unlearned)`` makes the retrained one positive).
    3. If ``min(range) / max(range) < 0.01`` the example is peaky: 50.
    4. Otherwise the single-threshold and double-threshold attacks are evaluated;
       FPR = FNR = 0 gives +inf, exactly one of them 0 discards the attack, else
       ``max(log(1 - delta - FPR) - log(FNR), log(1 - delta - FNR) - log(FPR))``
       clipped below at 0. The example's epsilon is the maximum over the kept
       attacks, clipped to [0, 50].
    5. If no attack is kept at all (for instance both families constant at the
       same value) the published code stops with an error; here the example gets
       0, since no attack found any evidence that the families differ.

    With ``bounds="clopper-pearson"`` everything above is unchanged except the rates
    put into the formula of step 4: ``FPR = beta.ppf(1 - alpha, fp + 1, N - fp)`` (1 for
    ``fp = N``), the same for FNR, in float32. No rate is 0 any more, so the discard rule
    is stated on the counts: an attack with exactly one of ``fp``, ``fn`` equal to 0 is
    discarded, as in the published rule, and perfect separation (``fp = fn = 0``) gets
    the formula's finite value instead of +inf. The upper bounds are at least the
    empirical rates and the formula decreases in both rates, so every kept attack's
    epsilon, and hence every example's, is at most its empirical one.
    """
    u, r = _validation.confidence_pair(unlearned, retrained)
    delta = _validation.delta(delta)
    bounds = _validation.bounds(bounds)
    alpha = _validation.alpha(alpha)
    num_models, num_examples = u.shape
    eps = np.full(num_examples, EPSILON_CAP, dtype=np.float64)

    finite = np.isfinite(u).all(axis=0) & np.isfinite(r).all(axis=0)
    columns = np.flatnonzero(finite)
    if columns.size == 0:
        return eps
    u = u[:, columns]
    r = r[:, columns]
    retrained_is_positive = np.median(r, axis=0) > np.median(u, axis=0)
    positive = np.sort(np.where(retrained_is_positive, r, u).T, axis=1)  # [E', N], each row sorted
    negative = np.sort(np.where(retrained_is_positive, u, r).T, axis=1)

    positive_range = positive[:, -1] - positive[:, 0]
    negative_range = negative[:, -1] - negative[:, 0]
    largest = np.where(positive_range > negative_range, positive_range, negative_range)
    smallest = np.where(positive_range > negative_range, negative_range, positive_range)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = smallest / largest < PEAKY_RANGE_RATIO  # 0 / 0 is NaN: not peaky

    table, suffix_max = epsilon_tables(num_models, delta, bounds, alpha)
    for k in np.flatnonzero(~peaky):
        eps[columns[k]] = example_epsilon(positive[k], negative[k], table, suffix_max)
    return eps


def example_epsilon(positive: np.ndarray, negative: np.ndarray, table: np.ndarray, suffix_max: np.ndarray) -> float:
    """Epsilon of one non-peaky example with finite confidences.

    Parameters
    ----------
    positive, negative : ndarray of float64, shape (N,)
        The two samples, each sorted ascending; ``positive`` has the larger median.
    table, suffix_max : ndarray of float32, shape (N + 1, N + 1)
        From ``epsilon_tables(N, delta)``.

    Returns
    -------
    float
        The example's epsilon, clipped to [0, 50]; 0 when no attack is kept.
    """
    best = _single_threshold_best(positive, negative, table)
    if best < _POS_INF:
        best = _double_threshold_best(positive, negative, table, suffix_max, best)
    if best == _NEG_INF:
        return 0.0
    return min(max(best, 0.0), EPSILON_CAP)


def _single_threshold_best(positive: np.ndarray, negative: np.ndarray, table: np.ndarray) -> float:
    """Best epsilon of the single-threshold attacks (``c >= t`` predicts positive); -inf if none is kept."""
    lo = min(positive[0], negative[0])
    hi = max(positive[-1], negative[-1])
    thresholds = single_thresholds(float(lo), float(hi))
    if thresholds.size == 0:
        return _NEG_INF
    false_negatives = np.searchsorted(positive, thresholds, side="left")  # positives below t
    false_positives = negative.size - np.searchsorted(negative, thresholds, side="left")  # negatives at or above t
    return float(table[false_positives, false_negatives].max())


class _Intervals:
    """The double-threshold interval grid of one example and exact counting on it."""

    def __init__(self, peaky: np.ndarray, other: np.ndarray, right: np.ndarray, width: float):
        self.peaky = peaky
        self.other = other
        self.n = peaky.size
        self.num_rows = right.size
        self.start, self.step, self.stop = left_edge_rows(right, width)
        self.monotone = left_grids_are_monotone(right, self.start, self.step, self.stop)
        # Values at or below each right edge.
        self.peaky_upto = np.searchsorted(peaky, right, side="right")
        self.other_upto = np.searchsorted(other, right, side="right")

    def left(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return left_edges(self.start, self.step, self.stop, rows, cols)

    def counts(self, rows: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(false positives, false negatives) of the intervals ``[left, right[rows]]``."""
        inside_peaky = np.maximum(self.peaky_upto[rows] - np.searchsorted(self.peaky, left, side="left"), 0)
        inside_other = np.maximum(self.other_upto[rows] - np.searchsorted(self.other, left, side="left"), 0)
        return inside_other, self.n - inside_peaky

    def exact_max(self, rows: np.ndarray, cols: np.ndarray, table: np.ndarray) -> float:
        """Largest table value over the intervals (rows, cols), broadcast together."""
        rows, cols = np.broadcast_arrays(rows, cols)
        fp, fn = self.counts(rows, self.left(rows, cols))
        return float(table[fp, fn].max()) if fp.size else _NEG_INF

    def dense_max(self, table: np.ndarray) -> float:
        """Largest table value over every interval of the grid."""
        best = _NEG_INF
        cols = np.arange(NUM_LEFT_THRESHOLDS)[None, :]
        for first in range(0, self.num_rows, _DENSE_ROW_CHUNK):
            rows = np.arange(first, min(first + _DENSE_ROW_CHUNK, self.num_rows))[:, None]
            best = max(best, self.exact_max(rows, cols, table))
        return best


def _double_threshold_best(
    positive: np.ndarray, negative: np.ndarray, table: np.ndarray, suffix_max: np.ndarray, best: float
) -> float:
    """``max(best, best epsilon of the double-threshold attacks)``, by branch and bound.

    The interval ``[t_l, t_r]`` predicts the peakier sample (smaller range; on equal
    ranges the negative one).
    """
    if positive[-1] - positive[0] >= negative[-1] - negative[0]:
        peaky, other = negative, positive
    else:
        peaky, other = positive, negative
    width = float(peaky[-1] - peaky[0])
    right = right_edges(float(peaky[0]), float(peaky[-1]), width)
    if right.size == 0:
        return best
    grid = _Intervals(peaky, other, right, width)
    if not grid.monotone:
        # The block bounds need edges that grow along rows and columns; without
        # that guarantee evaluate every interval.
        return max(best, grid.dense_max(table))
    return _branch_and_bound(grid, table, suffix_max, best)


def _branch_and_bound(grid: _Intervals, table: np.ndarray, suffix_max: np.ndarray, best: float) -> float:
    num_rows, num_cols = grid.num_rows, NUM_LEFT_THRESHOLDS
    block_rows, block_cols = _BLOCK_LEVELS[0]
    row0 = np.repeat(np.arange(0, num_rows, block_rows), -(-num_cols // block_cols))
    col0 = np.tile(np.arange(0, num_cols, block_cols), -(-num_rows // block_rows))
    row1 = np.minimum(row0 + block_rows, num_rows) - 1
    col1 = np.minimum(col0 + block_cols, num_cols) - 1

    for level, (size_rows, size_cols) in enumerate(_BLOCK_LEVELS):
        if level:
            row0, row1, col0, col1 = _split(row0, row1, col0, col1, block_rows, block_cols, size_rows, size_cols)
            block_rows, block_cols = size_rows, size_cols
        lo = grid.left(row0, col0)  # smallest left edge of each block
        hi = grid.left(row1, col1)  # largest left edge of each block
        # The two corner intervals are real attacks: their exact epsilons raise the bar.
        fp, fn = grid.counts(row0, lo)
        best = max(best, float(table[fp, fn].max()))
        fp, fn = grid.counts(row1, hi)
        best = max(best, float(table[fp, fn].max()))
        if best == _POS_INF:
            return best
        peaky_below_lo = np.searchsorted(grid.peaky, lo, side="left")
        other_below_hi = np.searchsorted(grid.other, hi, side="left")
        min_fp = np.maximum(grid.other_upto[row0] - other_below_hi, 0)
        min_fn = grid.n - np.maximum(grid.peaky_upto[row1] - peaky_below_lo, 0)
        may_beat_best = suffix_max[min_fp, min_fn] > best
        if not may_beat_best.any():
            return best
        row0, row1, col0, col1 = row0[may_beat_best], row1[may_beat_best], col0[may_beat_best], col1[may_beat_best]

    # Exact evaluation of the surviving blocks, interval by interval.
    rows = np.minimum(row0[:, None, None] + np.arange(block_rows)[None, :, None], row1[:, None, None])
    cols = np.minimum(col0[:, None, None] + np.arange(block_cols)[None, None, :], col1[:, None, None])
    return max(best, grid.exact_max(rows, cols, table))


def _split(row0, row1, col0, col1, block_rows, block_cols, size_rows, size_cols):
    """Split blocks of nominal size (block_rows, block_cols) into sub-blocks of (size_rows, size_cols)."""
    sub_row0 = row0[:, None, None] + np.arange(0, block_rows, size_rows)[None, :, None]
    sub_col0 = col0[:, None, None] + np.arange(0, block_cols, size_cols)[None, None, :]
    valid = (sub_row0 <= row1[:, None, None]) & (sub_col0 <= col1[:, None, None])
    sub_row1 = np.minimum(sub_row0 + size_rows - 1, row1[:, None, None])
    sub_col1 = np.minimum(sub_col0 + size_cols - 1, col1[:, None, None])
    shape = valid.shape
    return tuple(np.broadcast_to(a, shape)[valid] for a in (sub_row0, sub_row1, sub_col0, sub_col1))
