"""Statistics around a submission's score: the retraining ceiling and an uncertainty interval.

Two questions a participant asks after reading the score, answered here:

* *What would a perfect unlearner get with this many models?* The forgetting
  quality F of two independent families drawn from the same distribution is
  not 1: the strongest of ~160,000 threshold attacks on N samples finds
  spurious separation (see ``METRIC.md``). :func:`perfect_unlearner_quality`
  estimates that ceiling by splitting the retrained models in two halves and
  scoring one half against the other.
* *How much does the score move with other seeds?* :func:`bootstrap_interval`
  resamples models with replacement on both sides and recomputes the final
  score; the spread of the resampled scores gives an interval.

F is a supremum over attacks, and a bootstrap resample repeats models: the
resampled families differ from each other more than the originals do, so
resampled F sits systematically *below* the observed F, by more than its own
spread when the submission is good (two families from the same distribution,
N = 16, E = 40: observed F about 0.18, resampled F about 0.12 +- 0.015). The
plain percentile interval then misses the score it is meant to bracket. The
default interval is therefore *centered*: the percentiles of the resampled
scores shifted by (observed score - their median), i.e. the bootstrap's
spread around the observed score. In simulations (N = 16 and 32, E = 40,
same and shifted distributions) it covered the mean score over fresh families
in 45 of 48 cases at 90%, where the plain percentile interval did in 10.

:func:`score_statistics` computes both for the scoring program.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from unlearning_challenge import metric
from unlearning_challenge.metric import ALPHA

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_PERFECT_SPLITS",
    "MAX_RESAMPLES",
    "MIN_RESAMPLES",
    "INTERVAL_METHODS",
    "RESAMPLE_MAX_SECONDS",
    "RESAMPLE_WORK_BUDGET",
    "BootstrapInterval",
    "FamilySample",
    "PerfectUnlearner",
    "ScoreStatistics",
    "bootstrap_interval",
    "bootstrap_scores",
    "default_num_resamples",
    "perfect_unlearner_quality",
    "score_statistics",
]

# Random half-splits of the retrained models scored for the perfect-unlearner ceiling.
DEFAULT_PERFECT_SPLITS = 5
# Coverage of the bootstrap interval of the score.
DEFAULT_CONFIDENCE = 0.9
# "centered": percentiles of the resampled scores moved so that their median is
# the observed score (the default, see the module docstring); "percentile": the
# plain percentile interval.
INTERVAL_METHODS = ("centered", "percentile")
# Bounds on the number of bootstrap resamples.
MIN_RESAMPLES = 10
MAX_RESAMPLES = 200
# Work budget of the bootstrap, in model-example cells (N * E) summed over the
# resamples: 10 resamples at N = 512, E = 1000; the cap of 200 for the default
# phase (N ~ 16-32, E ~ 40-60).
RESAMPLE_WORK_BUDGET = 10 * 512 * 1000
# Wall-clock guard: past this many seconds the bootstrap stops (after at least
# MIN_RESAMPLES resamples) and records how many it used.
RESAMPLE_MAX_SECONDS = 120.0

_HALF_SPLIT_CAVEAT = (
    "Each half holds N//2 models, so this ceiling is F for N//2 models, not for N: "
    "fewer models means fewer buckets (ceil(log(n - 1)) / 0.5 of them) and fewer samples "
    "for the attacks, and both change F. Same-distribution families scored alike at N = 8, 16 "
    "and 32 in simulations, but read this as the order of magnitude a perfect unlearner "
    "reaches with this data, not as an exact ceiling for N models."
)


def _as_confidences(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a [N, E] array of confidences, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} has an empty axis: shape {array.shape}")
    return array


def _as_per_model(name: str, values: Any, num_models: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        return np.full(num_models, float(array))
    if array.shape != (num_models,):
        raise ValueError(f"{name} must hold one value per model: expected shape ({num_models},), got {array.shape}")
    return array


@dataclass(frozen=True)
class FamilySample:
    """What the final score reads from one family of N models.

    ``confidences`` float64 ``[N, E]`` (logit-scaled, on the forget examples);
    ``retain_accuracy`` and ``test_accuracy`` float64 ``[N]`` (a scalar is
    repeated for every model). A model's row and accuracies are resampled together.
    """

    confidences: np.ndarray
    retain_accuracy: np.ndarray
    test_accuracy: np.ndarray

    @classmethod
    def of(cls, confidences: Any, retain_accuracy: Any, test_accuracy: Any, *, name: str = "family") -> "FamilySample":
        """Checked float64 arrays; ``name`` prefixes the error messages."""
        conf = _as_confidences(f"{name} confidences", confidences)
        n = conf.shape[0]
        return cls(conf, _as_per_model(f"{name} retain_accuracy", retain_accuracy, n),
                   _as_per_model(f"{name} test_accuracy", test_accuracy, n))

    @property
    def num_models(self) -> int:
        return int(self.confidences.shape[0])

    def take(self, models: np.ndarray) -> "FamilySample":
        """The family made of the models at ``models`` (int ``[K]``, repeats allowed)."""
        return FamilySample(self.confidences[models], self.retain_accuracy[models], self.test_accuracy[models])


def _final_score(unlearned: FamilySample, retrained: FamilySample, bounds: str, alpha: float) -> float:
    quality = metric.forget_quality(unlearned.confidences, retrained.confidences, bounds=bounds, alpha=alpha)
    return float(metric.final_score(quality, unlearned.retain_accuracy, retrained.retain_accuracy,
                             unlearned.test_accuracy, retrained.test_accuracy))


@dataclass(frozen=True)
class PerfectUnlearner:
    """F of one random half of the retrained models against the other, over several splits.

    ``values`` holds F of each split; ``forget_quality``, ``min`` and ``max``
    summarise them (NaN when not computed, ``caveat`` then says why).
    ``num_models`` is ``N // 2``, the N these numbers refer to.
    """

    forget_quality: float
    min: float
    max: float
    values: tuple[float, ...]
    num_models: int  # N // 2: the models in each half
    num_models_full: int  # N: the retrained models
    num_splits: int
    num_examples: int
    caveat: str

    @property
    def computed(self) -> bool:
        return not math.isnan(self.forget_quality)


def perfect_unlearner_quality(
    conf_retrained: Any,
    *,
    seed: int = 0,
    num_splits: int = DEFAULT_PERFECT_SPLITS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
) -> PerfectUnlearner:
    """The forgetting quality a perfect unlearner would reach, estimated from the retrained models.

    The retrained models are shuffled and split into two halves of ``N // 2``
    models (with N odd, one model is left out); F of one half against the other
    is what an unlearner indistinguishable from retraining would score with
    ``N // 2`` models. This is repeated over ``num_splits`` random splits.

    Parameters
    ----------
    conf_retrained : array ``[N, E]``
        Logit-scaled confidences of the N retrained models on the E forget examples.
    seed : int
        Seed of the random splits.
    num_splits : int
        Number of random splits (at least 1).
    bounds, alpha
        The attacks' rate estimate (see :func:`unlearning_challenge.metric.forget_quality`).

    Returns
    -------
    PerfectUnlearner
        With fewer than 4 retrained models the halves are too small to score:
        the numbers are NaN and ``caveat`` says why.
    """
    conf = _as_confidences("conf_retrained", conf_retrained)
    if isinstance(num_splits, bool) or not isinstance(num_splits, (int, np.integer)) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer, got {num_splits!r}")
    n, e = conf.shape
    half = n // 2
    if half < 2:
        return PerfectUnlearner(math.nan, math.nan, math.nan, (), half, n, int(num_splits), e,
                                f"not computed: {n} retrained model(s) cannot be split into two halves of at "
                                "least 2 models")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_splits):
        order = rng.permutation(n)
        values.append(float(metric.forget_quality(conf[order[:half]], conf[order[half:2 * half]], bounds=bounds, alpha=alpha)))
    return PerfectUnlearner(float(np.mean(values)), float(np.min(values)), float(np.max(values)), tuple(values),
                            half, n, int(num_splits), e, _HALF_SPLIT_CAVEAT)


def default_num_resamples(num_models: int, num_examples: int) -> int:
    """Resamples the bootstrap can afford for ``num_models`` x ``num_examples`` confidences.

    ``RESAMPLE_WORK_BUDGET / (N * E)``, kept within ``[MIN_RESAMPLES, MAX_RESAMPLES]``:
    200 for the default phase, 10 for N = 512 and E = 1000 (where one
    evaluation of the metric takes about a second or more). Depends only on the
    shape, so the interval is reproducible from the seed (unless the
    wall-clock guard of :func:`bootstrap_scores` cuts it short).
    """
    cells = max(int(num_models), 1) * max(int(num_examples), 1)
    return int(min(MAX_RESAMPLES, max(MIN_RESAMPLES, RESAMPLE_WORK_BUDGET // cells)))


def bootstrap_scores(
    unlearned: FamilySample,
    retrained: FamilySample,
    *,
    num_resamples: int | None = None,
    seed: int = 0,
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
    progress: bool = False,
) -> np.ndarray:
    """Final scores of bootstrap resamples of the models, float64 ``[R]``.

    Each resample draws N_u unlearned models and N_r retrained models with
    replacement, independently on both sides; a model's confidences and
    accuracies go together. Returns one score per resample actually run.

    Parameters
    ----------
    unlearned, retrained : FamilySample
        The two families (confidences ``[N_u, E]`` and ``[N_r, E]``).
    num_resamples : int, optional
        Number of resamples; by default :func:`default_num_resamples`.
    seed : int
        Seed of the resampling; resample i is the same whatever ``num_resamples`` is.
    max_seconds : float, optional
        Stop once this much wall time has passed, after at least
        ``MIN_RESAMPLES`` resamples (or ``num_resamples`` if smaller); None: no limit.
    bounds, alpha
        The attacks' rate estimate (see :func:`unlearning_challenge.metric.forget_quality`).
    progress : bool
        Show a progress bar on stderr.
    """
    num_examples = unlearned.confidences.shape[1]
    if num_examples != retrained.confidences.shape[1]:
        raise ValueError(
            f"inconsistent numbers of forget examples: the unlearned confidences have {num_examples}, "
            f"the retrained ones {retrained.confidences.shape[1]}"
        )
    n_u, n_r = unlearned.num_models, retrained.num_models
    if num_resamples is None:
        num_resamples = default_num_resamples(max(n_u, n_r), num_examples)
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)) or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive integer, got {num_resamples!r}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    scores = []
    with tqdm(total=int(num_resamples), desc="bootstrap", unit="resample", disable=not progress) as bar:
        for _ in range(int(num_resamples)):
            unlearned_models = rng.integers(0, n_u, size=n_u)
            retrained_models = rng.integers(0, n_r, size=n_r)
            scores.append(_final_score(unlearned.take(unlearned_models), retrained.take(retrained_models),
                                       bounds, alpha))
            bar.update(1)
            if (max_seconds is not None and len(scores) >= MIN_RESAMPLES
                    and time.perf_counter() - start > max_seconds):
                break
    return np.asarray(scores, dtype=np.float64)


@dataclass(frozen=True)
class BootstrapInterval:
    """The score's bootstrap interval ``[low, high]`` and the resampled scores ``[R]`` behind it."""

    scores: np.ndarray  # float64 [R]: the final score of each resample run
    low: float
    high: float
    confidence: float  # the central fraction of the resampled scores it spans
    method: str  # one of INTERVAL_METHODS
    seconds: float  # wall seconds the resampling took

    @property
    def num_resamples(self) -> int:
        return int(self.scores.size)

    @property
    def centered(self) -> bool:
        return self.method == "centered"


def _interval(samples: np.ndarray, confidence: float, method: str, point: float | None) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    if method == "centered":
        shift = float(point) - float(np.median(samples))
        low, high = max(low + shift, 0.0), high + shift
    return float(low), float(high)


def _check_confidence(confidence: float) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def _check_method(method: str) -> str:
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {list(INTERVAL_METHODS)}, got {method!r}")
    return method


def bootstrap_interval(
    unlearned: FamilySample,
    retrained: FamilySample,
    *,
    observed_score: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = "centered",
    num_resamples: int | None = None,
    seed: int = 0,
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
    progress: bool = False,
) -> BootstrapInterval:
    """Bootstrap interval of the final score.

    See :func:`bootstrap_scores` for the resampling and the shared arguments.

    Parameters
    ----------
    observed_score : float, optional
        The score of the families themselves, for ``"centered"``; computed when not given.
    confidence : float
        Central fraction of the resampled scores the interval spans, in (0, 1).
    method : {"centered", "percentile"}
        ``"centered"`` (default): the percentiles shifted so that the
        resampled scores' median lands on the observed score (low clipped at
        0); it always contains the observed score. ``"percentile"``: the plain
        percentile interval, biased low for this metric (see the module docstring).
    """
    confidence = _check_confidence(confidence)
    _check_method(method)
    start = time.perf_counter()
    samples = bootstrap_scores(unlearned, retrained, num_resamples=num_resamples, seed=seed, max_seconds=max_seconds,
                               bounds=bounds, alpha=alpha, progress=progress)
    if method == "centered" and observed_score is None:
        observed_score = _final_score(unlearned, retrained, bounds, alpha)
    low, high = _interval(samples, confidence, method, observed_score)
    return BootstrapInterval(samples, low, high, confidence, method, time.perf_counter() - start)


# The keys of ScoreStatistics.numbers(), each written only when it was computed.
PERFECT_KEYS = ("forget_quality_perfect", "forget_quality_perfect_min", "forget_quality_perfect_max",
                "forget_quality_perfect_num_models")
BOOTSTRAP_KEYS = ("score_ci_low", "score_ci_high", "score_ci_confidence", "score_ci_resamples")


@dataclass(frozen=True)
class ScoreStatistics:
    """The perfect-unlearner ceiling and the score's bootstrap interval.

    ``bootstrap`` is None when it was not computed; ``bootstrap_skipped`` then says why.
    """

    perfect: PerfectUnlearner
    bootstrap: BootstrapInterval | None
    bootstrap_skipped: str | None = None

    def numbers(self) -> dict[str, float | int]:
        """Flat numbers for ``scores.json``: ``forget_quality_perfect`` (mean over the splits),
        ``_min``, ``_max`` and ``_num_models`` (the N these refer to: half the retrained
        models), ``score_ci_low``, ``score_ci_high``, ``score_ci_confidence`` and
        ``score_ci_resamples`` (how many were run). A number that was not computed
        is left out rather than written as NaN."""
        out: dict[str, float | int] = {}
        if self.perfect.computed:
            perfect = self.perfect
            out.update(zip(PERFECT_KEYS, (perfect.forget_quality, perfect.min, perfect.max, int(perfect.num_models))))
        if self.bootstrap is not None:
            interval = self.bootstrap
            out.update(zip(BOOTSTRAP_KEYS, (interval.low, interval.high, interval.confidence, interval.num_resamples)))
        return out


def score_statistics(
    unlearned: FamilySample,
    retrained: FamilySample,
    *,
    observed_score: float | None = None,
    bounds: str = "empirical",
    alpha: float = ALPHA,
    seed: int = 0,
    num_resamples: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = "centered",
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    progress: bool = False,
) -> ScoreStatistics:
    """The perfect-unlearner ceiling and the score's bootstrap interval.

    ``bounds`` and ``alpha`` are the rate estimate the score used; the other
    arguments are as for :func:`bootstrap_interval`. ``progress`` shows the
    bootstrap's progress bar on stderr (the scoring program does). The
    bootstrap needs at least 2 models on each side.
    """
    confidence = _check_confidence(confidence)
    _check_method(method)
    perfect = perfect_unlearner_quality(retrained.confidences, seed=seed, bounds=bounds, alpha=alpha)
    if min(unlearned.num_models, retrained.num_models) < 2:
        return ScoreStatistics(perfect, None, "resampling needs at least 2 models on each side")
    interval = bootstrap_interval(unlearned, retrained, observed_score=observed_score, confidence=confidence,
                                  method=method, num_resamples=num_resamples, seed=seed, max_seconds=max_seconds,
                                  bounds=bounds, alpha=alpha, progress=progress)
    return ScoreStatistics(perfect, interval)
