"""Statistics around a submission's score: the retraining ceiling and an uncertainty interval.

Two questions a participant asks after reading the score, answered here:

* *What would a perfect unlearner get with this many models?* The forgetting
  quality F of two independent families drawn from the same distribution is
  not 1: the strongest of ~160,000 threshold attacks on N samples finds
  spurious separation (see ``METRIC.md``). :func:`perfect_unlearner_quality`
  estimates that ceiling by splitting the retrained models in two halves and
  scoring one half against the other.
* *How much does the score move with other seeds?* :func:`bootstrap_score_interval`
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

:func:`extra_statistics` computes both for the scoring program and returns flat
numbers for ``scores.json`` plus the details the results page plots.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from unlearning_challenge.metric import ALPHA, final_score, forget_quality, logit_scaled_confidence

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_PERFECT_SPLITS",
    "MAX_RESAMPLES",
    "MIN_RESAMPLES",
    "INTERVAL_METHODS",
    "RESAMPLE_MAX_SECONDS",
    "RESAMPLE_WORK_BUDGET",
    "bootstrap_score_interval",
    "bootstrap_scores",
    "default_num_resamples",
    "extra_statistics",
    "forget_confidences",
    "perfect_unlearner_quality",
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


def perfect_unlearner_quality(
    conf_retrained: Any,
    *,
    seed: int = 0,
    num_splits: int = DEFAULT_PERFECT_SPLITS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
) -> dict[str, Any]:
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
    dict
        ``forget_quality`` (mean over the splits), ``min``, ``max``, ``values``
        (one per split), ``num_models`` (``N // 2``, the N the numbers refer
        to), ``num_models_full`` (N), ``num_splits``, ``num_examples`` and
        ``caveat`` (text). With fewer than 4 retrained models the halves are
        too small to score: the numbers are NaN and ``caveat`` says why.
    """
    conf = _as_confidences("conf_retrained", conf_retrained)
    if isinstance(num_splits, bool) or not isinstance(num_splits, (int, np.integer)) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer, got {num_splits!r}")
    n, e = conf.shape
    half = n // 2
    result: dict[str, Any] = {
        "num_models": half,
        "num_models_full": n,
        "num_splits": int(num_splits),
        "num_examples": e,
        "caveat": _HALF_SPLIT_CAVEAT,
    }
    if half < 2:
        result.update(forget_quality=math.nan, min=math.nan, max=math.nan, values=[],
                      caveat=f"not computed: {n} retrained model(s) cannot be split into two halves of at least 2 models")
        return result
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_splits):
        order = rng.permutation(n)
        values.append(float(forget_quality(conf[order[:half]], conf[order[half:2 * half]], bounds=bounds, alpha=alpha)))
    result.update(forget_quality=float(np.mean(values)), min=float(np.min(values)), max=float(np.max(values)),
                  values=values)
    return result


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
    conf_unlearned: Any,
    conf_retrained: Any,
    ra_u: Any,
    ra_r: Any,
    ta_u: Any,
    ta_r: Any,
    *,
    num_resamples: int | None = None,
    seed: int = 0,
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
    progress: bool = False,
) -> np.ndarray:
    """Final scores of bootstrap resamples of the models.

    Each resample draws N_u unlearned models and N_r retrained models with
    replacement, independently on both sides; a model's confidences and
    accuracies go together. Returns the resampled final scores, one per
    resample actually run.

    Parameters
    ----------
    conf_unlearned, conf_retrained : arrays ``[N_u, E]`` and ``[N_r, E]``
        Logit-scaled confidences on the forget examples.
    ra_u, ra_r, ta_u, ta_r : arrays ``[N_u]`` / ``[N_r]`` (or scalars)
        Retain and test accuracy of each unlearned (``_u``) and retrained (``_r``) model.
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
    conf_u = _as_confidences("conf_unlearned", conf_unlearned)
    conf_r = _as_confidences("conf_retrained", conf_retrained)
    if conf_u.shape[1] != conf_r.shape[1]:
        raise ValueError(
            f"inconsistent numbers of forget examples: conf_unlearned has {conf_u.shape[1]}, "
            f"conf_retrained has {conf_r.shape[1]}"
        )
    n_u, n_r = conf_u.shape[0], conf_r.shape[0]
    ra_u, ta_u = _as_per_model("ra_u", ra_u, n_u), _as_per_model("ta_u", ta_u, n_u)
    ra_r, ta_r = _as_per_model("ra_r", ra_r, n_r), _as_per_model("ta_r", ta_r, n_r)
    if num_resamples is None:
        num_resamples = default_num_resamples(max(n_u, n_r), conf_u.shape[1])
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)) or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive integer, got {num_resamples!r}")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    scores = []
    with tqdm(total=int(num_resamples), desc="bootstrap", unit="resample", disable=not progress) as bar:
        for _ in range(int(num_resamples)):
            iu = rng.integers(0, n_u, size=n_u)
            ir = rng.integers(0, n_r, size=n_r)
            quality = forget_quality(conf_u[iu], conf_r[ir], bounds=bounds, alpha=alpha)
            scores.append(float(final_score(quality, ra_u[iu], ra_r[ir], ta_u[iu], ta_r[ir])))
            bar.update(1)
            if (max_seconds is not None and len(scores) >= MIN_RESAMPLES
                    and time.perf_counter() - start > max_seconds):
                break
    return np.asarray(scores, dtype=np.float64)


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


def bootstrap_score_interval(
    conf_unlearned: Any,
    conf_retrained: Any,
    ra_u: Any,
    ra_r: Any,
    ta_u: Any,
    ta_r: Any,
    *,
    num_resamples: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "centered",
    point_estimate: float | None = None,
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    bounds: str = "empirical",
    alpha: float = ALPHA,
) -> tuple[float, float]:
    """Bootstrap interval ``(low, high)`` of the final score.

    See :func:`bootstrap_scores` for the resampling and the shared arguments.

    Parameters
    ----------
    confidence : float
        Central fraction of the resampled scores the interval spans, in (0, 1).
    method : {"centered", "percentile"}
        ``"centered"`` (default): the percentiles shifted so that the
        resampled scores' median lands on the observed score (low clipped at
        0); it always contains the observed score. ``"percentile"``: the plain
        percentile interval, biased low for this metric (see the module docstring).
    point_estimate : float, optional
        The observed score, for ``"centered"``; computed from the inputs when not given.
    """
    bootstrap = _bootstrap(conf_unlearned, conf_retrained, ra_u, ra_r, ta_u, ta_r,
                           num_resamples=num_resamples, confidence=confidence, seed=seed, method=method,
                           point_estimate=point_estimate, max_seconds=max_seconds, bounds=bounds, alpha=alpha)
    return bootstrap.low, bootstrap.high


@dataclass(frozen=True)
class _Bootstrap:
    """scores: float64 ``[R]``, the final score of each resample run; low, high: the interval."""

    scores: np.ndarray
    low: float
    high: float


def _bootstrap(conf_unlearned, conf_retrained, ra_u, ra_r, ta_u, ta_r, *, num_resamples, confidence, seed,
               method, point_estimate, max_seconds, bounds, alpha, progress=False) -> _Bootstrap:
    """:func:`bootstrap_score_interval`, keeping the resampled scores."""
    confidence = _check_confidence(confidence)
    _check_method(method)
    samples = bootstrap_scores(conf_unlearned, conf_retrained, ra_u, ra_r, ta_u, ta_r,
                               num_resamples=num_resamples, seed=seed, max_seconds=max_seconds,
                               bounds=bounds, alpha=alpha, progress=progress)
    if method == "centered" and point_estimate is None:
        quality = forget_quality(conf_unlearned, conf_retrained, bounds=bounds, alpha=alpha)
        point_estimate = float(final_score(quality, ra_u, ra_r, ta_u, ta_r))
    low, high = _interval(samples, confidence, method, point_estimate)
    return _Bootstrap(samples, low, high)


def forget_confidences(scores: dict, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Forget-set confidences (unlearned, retrained), float64 ``[N, E]`` each: from
    ``scores["_details"]`` when scoring kept them, else recomputed from ``inputs``' logits."""
    details = scores.get("_details") or {}
    if "conf_unlearned" in details and "conf_retrained" in details:
        return np.asarray(details["conf_unlearned"], float), np.asarray(details["conf_retrained"], float)
    u, r = inputs.unlearned, inputs.retrained
    return (logit_scaled_confidence(u.forget_logits, u.forget_labels),
            logit_scaled_confidence(r.forget_logits, r.forget_labels))


def extra_statistics(
    scores: dict,
    inputs: Any,
    *,
    seed: int = 0,
    num_resamples: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = "centered",
    max_seconds: float | None = RESAMPLE_MAX_SECONDS,
    progress: bool = False,
) -> dict[str, Any]:
    """The perfect-unlearner ceiling and the score's bootstrap interval, for ``scores.json``.

    Parameters
    ----------
    scores : dict
        What :func:`unlearning_challenge.scoring.program.compute_scores` returned; its
        ``_details`` confidences are reused when present.
    inputs : ScoringInputs
        Both model families (accuracies per model; logits if ``scores`` lacks
        the confidences). Its ``bounds`` and ``clopper_pearson_alpha``, when
        present, set the attacks' rate estimate (default: the published rule).
    seed, num_resamples, confidence, method, max_seconds
        As for :func:`bootstrap_score_interval`.
    progress : bool
        Show the bootstrap's progress bar on stderr (the scoring program does).

    Returns
    -------
    dict
        Flat numbers: ``forget_quality_perfect`` (mean over the splits),
        ``forget_quality_perfect_min``, ``forget_quality_perfect_max``,
        ``forget_quality_perfect_num_models`` (the N these refer to: half the
        retrained models), ``score_ci_low``, ``score_ci_high``,
        ``score_ci_confidence``, ``score_ci_resamples`` (how many were run).
        A number that cannot be computed (too few models) is left out rather
        than written as NaN. ``_statistics`` holds the details for the results
        page: ``perfect`` (see :func:`perfect_unlearner_quality`) and
        ``bootstrap`` (``scores``, the resampled scores; ``low``, ``high``,
        ``method``, ``confidence``, ``num_resamples``, ``seconds``, or
        ``skipped`` with the reason).
    """
    confidence = _check_confidence(confidence)
    _check_method(method)
    conf_u, conf_r = forget_confidences(scores, inputs)
    u, r = inputs.unlearned, inputs.retrained
    out: dict[str, Any] = {}

    bounds = scores.get("bounds", "empirical")
    alpha = scores.get("clopper_pearson_alpha", ALPHA)
    perfect = perfect_unlearner_quality(conf_r, seed=seed, bounds=bounds, alpha=alpha)
    if not math.isnan(perfect["forget_quality"]):
        out.update(
            forget_quality_perfect=perfect["forget_quality"],
            forget_quality_perfect_min=perfect["min"],
            forget_quality_perfect_max=perfect["max"],
            forget_quality_perfect_num_models=int(perfect["num_models"]),
        )

    bootstrap: dict[str, Any] = {"confidence": confidence, "method": method}
    if min(conf_u.shape[0], conf_r.shape[0]) < 2:
        bootstrap["skipped"] = "resampling needs at least 2 models on each side"
    else:
        start = time.perf_counter()
        point = scores.get("score")
        result = _bootstrap(conf_u, conf_r, u.retain_accuracy, r.retain_accuracy, u.test_accuracy, r.test_accuracy,
                            num_resamples=num_resamples, confidence=confidence, seed=seed, method=method,
                            point_estimate=None if point is None else float(point), max_seconds=max_seconds,
                            bounds=bounds, alpha=alpha, progress=progress)
        num_run = int(result.scores.size)
        bootstrap.update(scores=result.scores, low=result.low, high=result.high, num_resamples=num_run,
                         seconds=time.perf_counter() - start)
        out.update(score_ci_low=result.low, score_ci_high=result.high, score_ci_confidence=confidence,
                   score_ci_resamples=num_run)
    out["_statistics"] = {"perfect": perfect, "bootstrap": bootstrap}
    return out
