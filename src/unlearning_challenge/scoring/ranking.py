"""Paired comparison and rank intervals of submissions scored against the same retrained family.

Two leaderboard scores differ by noise as well as by method: another set of
seeds gives other unlearned models, and F moves. This module resamples
*jointly*: every resample draws

* N model indices with replacement, the same indices for every submission's
  unlearned models (run i of each submission used the same seed, so model i of
  A and model i of B are paired);
* M retrained model indices with replacement, once, shared by every submission;
* E forget-example indices with replacement, once, shared as well;

and recomputes every submission's final score on it. When the runs start from
K > 1 original models (``originals``, the same for every submission: run i of each
started from the same original), the N model indices are drawn on two levels: K
originals with replacement, then runs within each (see
:func:`~unlearning_challenge.scoring.originals.two_level_indices`), so that an
interval says how sure a ranking is over trained models, not only over seeds of
one model. With one original the draw is the one-level draw above. Because per-example
epsilons depend on one example's column only, the epsilons are computed on
the distinct drawn examples and F is their points weighted by how often each
was drawn; the accuracy ratios are means over the drawn models.

As in :mod:`~unlearning_challenge.scoring.statistics`, resampling repeats
models and pulls resampled F below the observed F; each submission's resampled
scores are therefore *centered*, shifted so that their median is its observed
score, before anything is read from them (the same "centered" interval as the
score's bootstrap interval). From the centered scores ``[R, K]``:

* :func:`compare` (K = 2): the difference A - B, its interval, and the share of
  resamples in which A scores higher (a tie counts half);
* :func:`rank_submissions`: each submission's interval, the interval of ranks
  it takes (rank 1 is the best; tied scores share the best of their ranks) and
  the share of resamples in which it ranks first (ties share it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from unlearning_challenge.metric import ALPHA, example_points, per_example_epsilons
from unlearning_challenge.scoring.originals import model_resampler
from unlearning_challenge.scoring.statistics import (
    FamilySample,
    _final_score,
    _interval,
    default_num_resamples,
)

__all__ = [
    "CLEAR_SHARE",
    "COMPARE_CONFIDENCE",
    "Comparison",
    "JointBootstrap",
    "Rank",
    "Ranking",
    "compare",
    "joint_bootstrap",
    "rank_submissions",
    "resamples_text",
    "shared_originals",
]

# Coverage of the intervals of the difference, the scores and the ranks.
COMPARE_CONFIDENCE = 0.95
# A beats B in at least this share of resamples (or at most 1 - it): "a real difference".
CLEAR_SHARE = 0.95
# Fewest resamples by default: a share read from fewer is too coarse to call anything.
MIN_COMPARE_RESAMPLES = 50


@dataclass(frozen=True)
class JointBootstrap:
    """Observed scores ``[K]`` and centered resampled scores ``[R, K]`` of K submissions."""

    observed: np.ndarray
    scores: np.ndarray
    num_models: int
    num_examples: int
    seed: int
    seconds: float
    num_originals: int | None = None  # K > 1: models were drawn on two levels (originals, then runs); None: one

    @property
    def num_resamples(self) -> int:
        return int(self.scores.shape[0])


def _check(submissions: Sequence[FamilySample], retrained: FamilySample) -> None:
    if not submissions:
        raise ValueError("no submission to resample")
    shapes = {s.confidences.shape for s in submissions}
    if len(shapes) != 1:
        raise ValueError(f"the submissions' confidences differ in shape ({sorted(shapes)}): they must come from "
                         "the same phase, with the same number of models")
    n, e = next(iter(shapes))
    if retrained.confidences.shape[1] != e:
        raise ValueError(f"the submissions have {e} forget examples, the retrained models "
                         f"{retrained.confidences.shape[1]}")
    if min(n, retrained.num_models) < 2:
        raise ValueError("resampling needs at least 2 models on each side")


def shared_originals(originals: Sequence[np.ndarray | None] | None, num_submissions: int) -> np.ndarray | None:
    """The originals ``[N]`` every submission's runs started from (None: one original model); ValueError
    when the submissions' runs did not start from the same originals (their models cannot be paired)."""
    if originals is None:
        return None
    if len(originals) != num_submissions:
        raise ValueError(f"{len(originals)} originals arrays for {num_submissions} submissions")
    first = originals[0]
    for other in originals[1:]:
        if (first is None) != (other is None) or (first is not None and not np.array_equal(first, other)):
            raise ValueError("the submissions' runs did not start from the same original models (run i of each "
                             "must start from the same one to be paired): compare outputs of the same phase")
    return None if first is None else np.asarray(first, dtype=np.int64)


def _resampled_score(family: FamilySample, retrained: FamilySample, models: np.ndarray, retrained_models: np.ndarray,
                     columns: np.ndarray, weights: np.ndarray, num_examples: int, bounds: str, alpha: float) -> float:
    """The final score of one submission on one joint resample."""
    eps = per_example_epsilons(family.confidences[np.ix_(models, columns)],
                               retrained.confidences[np.ix_(retrained_models, columns)], bounds=bounds, alpha=alpha)
    quality = float(np.dot(example_points(eps, models.size), weights) / num_examples)
    ra = family.retain_accuracy[models].mean() / retrained.retain_accuracy[retrained_models].mean()
    ta = family.test_accuracy[models].mean() / retrained.test_accuracy[retrained_models].mean()
    return quality * float(ra) * float(ta)


def joint_bootstrap(
    submissions: Sequence[FamilySample],
    retrained: FamilySample,
    *,
    num_resamples: int | None = None,
    seed: int = 0,
    bounds: str = "empirical",
    alpha: float = ALPHA,
    progress: bool = False,
    originals: Sequence[np.ndarray | None] | None = None,
) -> JointBootstrap:
    """Every submission's score on the same joint resamples (see the module docstring), centered.

    Parameters
    ----------
    submissions : K FamilySample
        Each with confidences ``[N, E]`` (the same N and E) and accuracies ``[N]``.
    retrained : FamilySample
        Confidences ``[M, E]`` and accuracies ``[M]``, shared.
    num_resamples : int, optional
        By default :func:`~unlearning_challenge.scoring.statistics.default_num_resamples`
        for ``[N, E]`` (200 for the Check phase), at least ``MIN_COMPARE_RESAMPLES``.
    seed : int
        The resampling's seed: the same seed and inputs give the same result.
    bounds, alpha
        The attacks' rate estimate, as for the score.
    progress : bool
        A progress bar on stderr.
    originals : K arrays int ``[N]`` or None, optional
        Each submission's runs' original models (``run_originals``); when they are not None (runs that
        started from K > 1 originals, the same for every submission) the models are drawn on two levels.
    """
    _check(submissions, retrained)
    runs_originals = shared_originals(originals, len(submissions))
    n, e = submissions[0].confidences.shape
    m = retrained.num_models
    k = len(submissions)
    if num_resamples is None:
        num_resamples = max(MIN_COMPARE_RESAMPLES, default_num_resamples(max(n, m), e))
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)) or num_resamples < 2:
        raise ValueError(f"the number of resamples must be an integer of at least 2, got {num_resamples!r}")
    start = time.perf_counter()
    observed = np.array([_final_score(s, retrained, bounds, alpha) for s in submissions])
    rng = np.random.default_rng(seed)
    draw_models = model_resampler(runs_originals, n)
    scores = np.empty((int(num_resamples), k))
    with tqdm(total=int(num_resamples), desc="resampling", unit="resample", disable=not progress) as bar:
        for i in range(int(num_resamples)):
            models = draw_models(rng)
            retrained_models = rng.integers(0, m, size=m)
            drawn = np.bincount(rng.integers(0, e, size=e), minlength=e)
            columns = np.flatnonzero(drawn)
            for j, family in enumerate(submissions):
                scores[i, j] = _resampled_score(family, retrained, models, retrained_models, columns,
                                                drawn[columns].astype(np.float64), e, bounds, alpha)
            bar.update(1)
    centered = scores - np.median(scores, axis=0) + observed
    num_originals = None if runs_originals is None else int(np.unique(runs_originals).size)
    return JointBootstrap(observed, centered, n, e, int(seed), time.perf_counter() - start, num_originals)


def models_text(num_models: int, reference_models: int | None) -> str:
    """``N = 32``, or ``k = 4 of the phase's N = 32`` for outputs that ran fewer models than the phase's N."""
    if reference_models is not None and num_models < reference_models:
        return f"k = {num_models} of the phase's N = {reference_models}"
    return f"N = {num_models}"


def rehearsal_note(num_models: int, reference_models: int | None) -> str:
    """What a comparison of outputs that ran k < N models is worth ("" when they ran the phase's N)."""
    if reference_models is None or num_models >= reference_models:
        return ""
    return (f"scores of k = {num_models} models (a rehearsal with NUM_MODELS={num_models}, or the runs that fit in "
            f"the phase's time limit) against the first {num_models} reference models: not comparable with the "
            f"leaderboard's (N = {reference_models} models)")


def resamples_text(num_originals: int | None) -> str:
    """What each resample draws: ``models and forget examples``, or, with K > 1 originals, both levels."""
    if num_originals is None:
        return "models and forget examples"
    return (f"the {num_originals} original models, runs within each, retrained models and forget examples: "
            "the interval is over trained models too")


def _share_above(values: np.ndarray) -> float:
    """Share of ``values`` above 0, a zero counting half."""
    return float(np.mean(np.where(values > 0, 1.0, np.where(values == 0, 0.5, 0.0))))


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of submissions A and B: the observed difference of their scores A - B,
    its interval [low, high], the share of resamples in which A scores higher, and the names
    the sentence uses."""

    score_a: float
    score_b: float
    difference: float
    low: float
    high: float
    confidence: float
    a_beats_b: float
    num_resamples: int
    num_models: int
    seed: int
    name_a: str = "A"
    name_b: str = "B"
    reference_models: int | None = None  # the phase's N when the outputs ran fewer (k = num_models); None: N
    num_originals: int | None = None  # K > 1: runs started from K originals, resampled on two levels; None: one

    @property
    def clear(self) -> bool:
        """Whether one of the two scores higher in at least ``CLEAR_SHARE`` of the resamples."""
        return self.a_beats_b >= CLEAR_SHARE or self.a_beats_b <= 1.0 - CLEAR_SHARE

    def sentence(self) -> str:
        """The verdict in one sentence, e.g. ``A beats B in 97% of resamples: a real difference.``"""
        share = f"{self.a_beats_b:.0%}"
        if self.a_beats_b >= CLEAR_SHARE:
            verdict = "a real difference"
        elif self.a_beats_b <= 1.0 - CLEAR_SHARE:
            verdict = f"a real difference, in favour of {self.name_b}"
        else:
            symbol = "k" if rehearsal_note(self.num_models, self.reference_models) else "N"
            verdict = f"too close to call at {symbol} = {self.num_models}"
        return f"{self.name_a} beats {self.name_b} in {share} of resamples: {verdict}."

    def lines(self) -> list[str]:
        """What ``compare`` prints (and, for outputs of k < N models, that they are a rehearsal's)."""
        note = rehearsal_note(self.num_models, self.reference_models)
        return [
            f"score {self.name_a}: {self.score_a:.4f}; score {self.name_b}: {self.score_b:.4f}",
            f"difference {self.name_a} - {self.name_b}: {self.difference:+.4f}, {self.confidence:.0%} interval "
            f"[{self.low:+.4f}, {self.high:+.4f}] ({self.num_resamples} paired resamples of "
            f"{resamples_text(self.num_originals)}, {models_text(self.num_models, self.reference_models)}, seed {self.seed})",
            self.sentence(),
            *([note] if note else []),
        ]


def compare(a: FamilySample, b: FamilySample, retrained: FamilySample, *, confidence: float = COMPARE_CONFIDENCE,
            names: tuple[str, str] = ("A", "B"), **options) -> Comparison:
    """Paired bootstrap of the score difference A - B (``options`` as for :func:`joint_bootstrap`)."""
    joint = joint_bootstrap([a, b], retrained, **options)
    differences = joint.scores[:, 0] - joint.scores[:, 1]
    low, high = _interval(differences, confidence, "percentile", None)
    return Comparison(float(joint.observed[0]), float(joint.observed[1]), float(joint.observed[0] - joint.observed[1]),
                      low, high, confidence, _share_above(differences), joint.num_resamples, joint.num_models,
                      joint.seed, *names, num_originals=joint.num_originals)


@dataclass(frozen=True)
class Rank:
    """One submission among K: its score and interval, the interval of its ranks (1 = best) and the
    share of resamples in which it ranks first."""

    name: str
    score: float
    low: float
    high: float
    rank_low: int
    rank_high: int
    p_first: float


@dataclass(frozen=True)
class Ranking:
    """The submissions' rows, best observed score first, and the resampling behind them."""

    rows: tuple[Rank, ...]
    num_models: int
    num_resamples: int
    seed: int
    reference_models: int | None = None  # the phase's N when the outputs ran fewer (k = num_models); None: N
    num_originals: int | None = None  # K > 1: runs started from K originals, resampled on two levels; None: one


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each column in each row, ``[R, K]``: 1 + the number of strictly higher scores."""
    return 1 + np.sum(scores[:, None, :] > scores[:, :, None], axis=2)


def rank_submissions(submissions: Sequence[FamilySample], retrained: FamilySample, *, names: Sequence[str],
                     confidence: float = COMPARE_CONFIDENCE, **options) -> Ranking:
    """Each submission's score interval, rank interval and probability of ranking first on joint
    resamples (``options`` as for :func:`joint_bootstrap`), best observed score first."""
    if len(names) != len(submissions):
        raise ValueError(f"{len(names)} names for {len(submissions)} submissions")
    joint = joint_bootstrap(submissions, retrained, **options)
    ranks = _ranks(joint.scores)
    best = joint.scores.max(axis=1, keepdims=True)
    first = joint.scores == best
    p_first = np.mean(first / first.sum(axis=1, keepdims=True), axis=0)
    tail = (1.0 - confidence) / 2.0
    rows = []
    for j, name in enumerate(names):
        low, high = _interval(joint.scores[:, j], confidence, "percentile", None)
        low = max(low, 0.0)
        rank_low, rank_high = np.quantile(ranks[:, j], [tail, 1.0 - tail], method="inverted_cdf")
        rows.append(Rank(name, float(joint.observed[j]), low, high, int(rank_low), int(rank_high), float(p_first[j])))
    rows.sort(key=lambda row: -row.score)
    return Ranking(tuple(rows), joint.num_models, joint.num_resamples, joint.seed, num_originals=joint.num_originals)
