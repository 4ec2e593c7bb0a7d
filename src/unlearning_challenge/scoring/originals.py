"""How much of a score is luck of the training seed: runs that start from K original models.

With ``reference.num_originals: K > 1`` a submission's runs start from K original
models, each trained with its own seed (the ingestion records which one in each
run's ``RunRecord.original``). The leaderboard score stays the published rule over
all N unlearned against all N retrained models; this module says, beside it:

* :func:`per_original_results`: F, the accuracy ratios and the score of each
  original's runs. The metric compares families of equal size, so original k's
  n_k runs are scored against each disjoint block of n_k retrained models (all of
  them when n_k divides N) and F is the mean over the blocks. With n_k < N models
  there are fewer epsilon buckets and the attacks have fewer samples: these
  numbers are noisier than the leaderboard's and not comparable with it.
* :func:`training_seed_share`: Var[E(Z|S)] / Var[Z] across the unlearned models,
  S the original (the law of total variance), for the retain and test accuracy
  and for each forget example's confidence, with a two-level bootstrap interval.
  It is the plug-in split: with n runs per original even no effect of S gives a
  share of about (K - 1) / (N - 1).
* :func:`two_level_indices` and :func:`model_resampler`: the two-level bootstrap
  (originals, then runs within each) that the paired comparison and the rank
  intervals use when runs carry originals.

With one original (K = 1, every record's ``original`` None) :func:`run_originals`
returns None and nothing here is used: every output stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from unlearning_challenge.artifacts import RunRecord
from unlearning_challenge import metric
from unlearning_challenge.metric import ALPHA
from unlearning_challenge.scoring.statistics import FamilySample

__all__ = [
    "NOISE_NOTE",
    "SHARE_CONFIDENCE",
    "SHARE_RESAMPLES",
    "OriginalResult",
    "OriginalsResult",
    "SeedShare",
    "model_resampler",
    "original_groups",
    "originals_result",
    "per_original_results",
    "run_originals",
    "seed_share",
    "training_seed_share",
    "two_level_indices",
]

# Coverage and resamples of the training-seed share's interval (each resample costs a few group means).
SHARE_CONFIDENCE = 0.95
SHARE_RESAMPLES = 1000
SHARE_SEED = 0

NOISE_NOTE = (
    "Each original's numbers are computed on its n_k runs only: the metric compares families of equal size, so its "
    "runs are scored against each disjoint block of n_k retrained models and F is the mean over the blocks. With "
    "n_k < N models there are fewer epsilon buckets and the attacks have fewer samples: these numbers are noisier "
    "than the leaderboard's and not comparable with it. The leaderboard score is the published rule over all N runs.")


# ----------------------------------------------------------------------------- which runs started where


def run_originals(runs: Sequence[RunRecord], num_models: int) -> np.ndarray | None:
    """The original model of each of the first ``num_models`` runs, int64 ``[N]`` (row i of the arrays is run i).

    None when every run started from one original model (K = 1: every record's ``original`` None, or all
    the same number), so that K = 1 takes exactly the code paths it took before. ValueError when some of
    those runs name an original and others do not.
    """
    named = {run.index: run.original for run in runs if 0 <= run.index < num_models}
    if all(original is None for original in named.values()):
        return None
    missing = [index for index in range(num_models) if named.get(index) is None]
    if missing:
        raise ValueError(f"ingestion output: runs {missing[:8]} name no original model while others do; "
                         "rerun the ingestion")
    originals = np.array([named[index] for index in range(num_models)], dtype=np.int64)
    return originals if np.unique(originals).size > 1 else None


def original_groups(originals: np.ndarray) -> list[np.ndarray]:
    """The run indices of each original, K int64 arrays, in the order of the originals' numbers."""
    originals = np.asarray(originals)
    return [np.flatnonzero(originals == value) for value in np.unique(originals)]


# ----------------------------------------------------------------------------- the two-level bootstrap


def two_level_indices(rng: np.random.Generator, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One two-level bootstrap draw of runs grouped by original.

    Slot j (one per original, as large as original j's group) draws an original with replacement, then fills
    itself with runs of that original drawn with replacement, so that every draw holds N runs (F's buckets
    depend on N). Returns the drawn run indices, int64 ``[N]``, and each one's slot, int64 ``[N]``: the
    resample's originals (an original drawn twice counts as two).
    """
    sizes = np.array([group.size for group in groups])
    drawn = rng.integers(0, len(groups), size=len(groups))
    indices = [groups[g][rng.integers(0, groups[g].size, size=size)] for g, size in zip(drawn, sizes)]
    return np.concatenate(indices).astype(np.int64), np.repeat(np.arange(len(groups), dtype=np.int64), sizes)


def model_resampler(originals: np.ndarray | None, num_models: int) -> Callable[[np.random.Generator], np.ndarray]:
    """The draw of ``num_models`` model indices ``[N]`` a paired bootstrap makes at each resample.

    ``originals`` None: one level, ``rng.integers(0, N, size=N)`` (the draw used with one original model);
    else ``[N]`` originals: :func:`two_level_indices`' run indices (originals, then runs within them).
    """
    if originals is None:
        return lambda rng: rng.integers(0, num_models, size=num_models)
    if len(originals) != num_models:
        raise ValueError(f"{len(originals)} originals for {num_models} models")
    groups = original_groups(originals)
    return lambda rng: two_level_indices(rng, groups)[0]


# ----------------------------------------------------------------------------- per original


@dataclass(frozen=True)
class OriginalResult:
    """One original's runs scored on their own: F (the mean over blocks of retrained models of its size),
    the accuracy ratios (against all retrained models) and the score; F and the score are None when it
    holds fewer than 2 runs."""

    original: int
    num_models: int
    num_buckets: int
    retrained_blocks: int
    forget_quality: float | None
    retain_accuracy_ratio: float
    test_accuracy_ratio: float
    score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"original": self.original, "num_models": self.num_models, "num_buckets": self.num_buckets,
                "retrained_blocks": self.retrained_blocks, "forget_quality": self.forget_quality,
                "retain_accuracy_ratio": self.retain_accuracy_ratio, "test_accuracy_ratio": self.test_accuracy_ratio,
                "score": self.score}


def retrained_blocks(num_retrained: int, size: int) -> list[np.ndarray]:
    """The disjoint blocks of ``size`` consecutive retrained models, ``M // size`` int64 arrays ``[size]``."""
    return [np.arange(start, start + size) for start in range(0, num_retrained - size + 1, size)]


def blocked_forget_quality(unlearned: np.ndarray, retrained: np.ndarray, *, bounds: str = "empirical",
                           alpha: float = ALPHA) -> tuple[float, int]:
    """F of confidences ``[n, E]`` against every disjoint block of n retrained confidences ``[M, E]``, averaged
    over the blocks, and the number of blocks (n <= M, n >= 2)."""
    blocks = retrained_blocks(retrained.shape[0], unlearned.shape[0])
    values = [metric.forget_quality(unlearned, retrained[block], bounds=bounds, alpha=alpha) for block in blocks]
    return float(np.mean(values)), len(blocks)


def per_original_results(unlearned: FamilySample, retrained: FamilySample, originals: np.ndarray, *,
                         bounds: str = "empirical", alpha: float = ALPHA) -> tuple[OriginalResult, ...]:
    """Each original's F, accuracy ratios and score on its own runs.

    ``unlearned``: confidences ``[N, E]``, accuracies ``[N]``; ``retrained``: ``[M, E]`` and ``[M]``;
    ``originals``: int ``[N]``. Original k's n_k runs are scored against all M retrained models: F
    against each disjoint block of n_k of them (see :func:`blocked_forget_quality`), the ratios against
    their mean accuracies.
    """
    results = []
    for value, runs in zip(np.unique(originals), original_groups(originals)):
        family = unlearned.take(runs)
        ra = float(family.retain_accuracy.mean() / retrained.retain_accuracy.mean())
        ta = float(family.test_accuracy.mean() / retrained.test_accuracy.mean())
        quality, score, blocks, buckets = None, None, 0, 0
        if 2 <= runs.size <= retrained.num_models:
            quality, blocks = blocked_forget_quality(family.confidences, retrained.confidences, bounds=bounds,
                                                     alpha=alpha)
            score = metric.final_score(quality, family.retain_accuracy, retrained.retain_accuracy, family.test_accuracy,
                                retrained.test_accuracy)
            buckets = int(metric.bucket_points(runs.size)[0].size)
        results.append(OriginalResult(int(value), int(runs.size), buckets, blocks, quality, ra, ta, score))
    return tuple(results)


# ----------------------------------------------------------------------------- the training-seed share


def seed_share(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Var[E(Z|S)] / Var[Z] of each column of ``values`` ``[N, P]`` (or ``[N]``), S the group ``labels`` int ``[N]``.

    Population variances, each group weighted by its size, so the share is in [0, 1]; ``[P]`` (or a 0-d
    array), NaN where Z does not vary (or is not finite).
    """
    z = np.asarray(values, dtype=np.float64)
    flat = z.ndim == 1
    z = z[:, None] if flat else z
    _, group = np.unique(labels, return_inverse=True)
    members = np.zeros((int(group.max()) + 1, z.shape[0]))
    members[group, np.arange(z.shape[0])] = 1.0
    counts = members.sum(axis=1)
    mean = z.mean(axis=0)
    group_means = members @ z / counts[:, None]
    between = counts @ (group_means - mean) ** 2 / z.shape[0]
    total = np.mean((z - mean) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        varies = total > np.finfo(np.float64).eps * np.maximum(np.mean(z ** 2, axis=0), np.finfo(np.float64).tiny)
        share = np.where(varies, np.clip(between / total, 0.0, 1.0), np.nan)
    return share[0] if flat else share


@dataclass(frozen=True)
class SeedShare:
    """A training-seed share (``value``, None when Z does not vary) and its two-level bootstrap
    percentile interval [``low``, ``high``] at ``confidence``."""

    value: float | None
    low: float | None
    high: float | None
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "confidence": self.confidence}


def _optional(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _share(value: float, resampled: np.ndarray, confidence: float) -> SeedShare:
    """``value`` with the percentile interval of its finite ``resampled`` values ``[R]``."""
    finite = resampled[np.isfinite(resampled)]
    if not np.isfinite(value) or finite.size == 0:
        return SeedShare(_optional(value), None, None, confidence)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return SeedShare(float(value), float(low), float(high), confidence)


def _summaries(shares: np.ndarray) -> np.ndarray:
    """Retain share, test share, median and mean over forget examples of ``[2 + E]`` shares: ``[4]`` (NaN when none)."""
    examples = shares[2:]
    finite = examples[np.isfinite(examples)]
    median, mean = (float(np.median(finite)), float(np.mean(finite))) if finite.size else (np.nan, np.nan)
    return np.array([shares[0], shares[1], median, mean])


@dataclass(frozen=True)
class TrainingSeedShare:
    """The training-seed shares of the retain and test accuracy and of the forget confidences (their median
    and mean over examples), each with its interval, and the per-example shares ``[E]`` (NaN: constant)."""

    retain_accuracy: SeedShare
    test_accuracy: SeedShare
    forget_confidence: SeedShare  # the median over forget examples
    forget_confidence_mean: SeedShare
    per_example: np.ndarray
    num_resamples: int
    seed: int


def training_seed_share(unlearned: FamilySample, originals: np.ndarray, *, num_resamples: int = SHARE_RESAMPLES,
                        seed: int = SHARE_SEED, confidence: float = SHARE_CONFIDENCE) -> TrainingSeedShare:
    """The share of the variance across unlearned models that the original explains, with two-level
    bootstrap intervals (seeded: the same inputs and seed give the same intervals).

    ``unlearned``: accuracies ``[N]`` and confidences ``[N, E]``; ``originals``: int ``[N]``. Each resample
    draws originals, then runs within each (:func:`two_level_indices`), and recomputes every share on the
    draw grouped by its slots; resamples where Z does not vary are left out of the interval. When no original
    has two runs (a quick check of a few runs) the spread within an original is unseen: every share is None.
    """
    z = np.column_stack([unlearned.retain_accuracy, unlearned.test_accuracy, unlearned.confidences])
    groups = original_groups(originals)
    if max(group.size for group in groups) < 2:
        unknown = SeedShare(None, None, None, confidence)
        return TrainingSeedShare(unknown, unknown, unknown, unknown, np.full(unlearned.confidences.shape[1], np.nan),
                                 0, int(seed))
    observed = seed_share(z, originals)
    rng = np.random.default_rng(seed)
    resampled = np.empty((int(num_resamples), 4))
    for i in range(int(num_resamples)):
        runs, slots = two_level_indices(rng, groups)
        resampled[i] = _summaries(seed_share(z[runs], slots))
    values = _summaries(observed)
    retain, test, median, mean = (_share(values[j], resampled[:, j], confidence) for j in range(4))
    return TrainingSeedShare(retain, test, median, mean, observed[2:], int(num_resamples), int(seed))


# ----------------------------------------------------------------------------- together


@dataclass(frozen=True)
class OriginalsResult:
    """What scoring reports when runs start from K > 1 originals: the original of each run ``[N]``,
    each original's results and the training-seed shares."""

    runs: np.ndarray
    per_original: tuple[OriginalResult, ...]
    seed_share: TrainingSeedShare

    @property
    def num_originals(self) -> int:
        return len(self.per_original)

    def to_json(self, *, per_example: bool = True) -> dict[str, Any]:
        """``scores.json``'s ``originals``; ``per_example`` False leaves out the per-example shares."""
        share = self.seed_share
        forget = {**share.forget_confidence.to_json(), "summary": "median over forget examples",
                  "mean": share.forget_confidence_mean.to_json()}
        if per_example:
            forget["per_example"] = [_optional(value) for value in share.per_example]
        return {
            "num_originals": self.num_originals,
            "per_original": [result.to_json() for result in self.per_original],
            "training_seed_share": {"retain_accuracy": share.retain_accuracy.to_json(),
                                    "test_accuracy": share.test_accuracy.to_json(),
                                    "forget_confidence": forget,
                                    "resamples": share.num_resamples, "seed": share.seed,
                                    "method": "two-level bootstrap: originals, then runs within each"},
            "note": NOISE_NOTE,
        }


def originals_result(unlearned: FamilySample, retrained: FamilySample, originals: np.ndarray, *,
                     bounds: str = "empirical", alpha: float = ALPHA, num_resamples: int = SHARE_RESAMPLES,
                     seed: int = SHARE_SEED) -> OriginalsResult:
    """:func:`per_original_results` and :func:`training_seed_share` of runs whose originals are ``[N]``."""
    originals = np.asarray(originals, dtype=np.int64)
    return OriginalsResult(originals, per_original_results(unlearned, retrained, originals, bounds=bounds, alpha=alpha),
                           training_seed_share(unlearned, originals, num_resamples=num_resamples, seed=seed))
