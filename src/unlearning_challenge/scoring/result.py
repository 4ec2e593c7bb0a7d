"""What scoring reads and computes: the checked inputs, the typed result, and its ``scores.txt`` and ``scores.json`` forms."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from unlearning_challenge.artifacts import IngestionManifest, ModelFamily, ReferenceManifest
from unlearning_challenge.scoring.originals import OriginalsResult
from unlearning_challenge.scoring.statistics import BOOTSTRAP_KEYS, PERFECT_KEYS, FamilySample, ScoreStatistics

if TYPE_CHECKING:  # mia imports scikit-learn; the result needs the class for its annotations only
    from unlearning_challenge.scoring.mia import MembershipInference

__all__ = ["LEADERBOARD_KEYS", "SAMPLE_NUMBER_KEYS", "SCORES_TXT_KEYS", "ScoreResult", "ScoringInputs", "scores_txt"]

# The leaderboard's columns, first in scores.txt.
LEADERBOARD_KEYS = ("score", "forget_quality", "retain_accuracy_ratio", "test_accuracy_ratio", "mean_run_seconds")


@dataclass(frozen=True)
class ScoringInputs:
    """Both families, checked against each other, and both manifests."""

    unlearned: ModelFamily  # the submission's N runs (or the first k: quick check)
    retrained: ModelFamily  # the reference's N retrained models (or the first k)
    ingestion: IngestionManifest
    reference: ReferenceManifest
    quick_check: bool  # True: only the first k models of each side are scored
    # The ingestion's sentence when its output is partial (the runs that fit in the step time limit; see
    # deadline.py), scored as a quick check of those k runs; None: a complete output
    partial: str | None = None

    @property
    def over_budget_runs(self) -> list[dict[str, float]]:
        """The runs scored although over their budget (``ingestion.over_budget: warn``): index and ratio used."""
        return [{"index": run.index, "ratio": float(run.over_budget_ratio)} for run in self.ingestion.runs
                if run.ok and run.over_budget_ratio is not None]


@dataclass(frozen=True)
class ScoreResult:
    """A submission's score, its parts and the per-example details behind them.

    Accuracies are family means (fractions in [0, 1]); F is the forgetting
    quality under the rate estimate ``bounds`` (``forget_quality``) and under
    each estimate. ``unlearned`` and ``retrained`` hold each family's confidences
    ``[N, E]`` and per-model accuracies ``[N]``; ``epsilons`` ``[E]`` are the
    per-example epsilons behind ``forget_quality``, ``ulira_per_example`` and
    ``klom_per_example`` ``[E]`` the per-example values behind ``ulira_accuracy``
    and ``klom_forget_p95``. F and KLoM's 95th percentile on the retain and
    validation samples are None when not computed (``samples_unavailable`` says
    why). ``statistics`` is None until :meth:`with_statistics`. ``originals`` holds each original's
    results and the training-seed shares when the runs started from K > 1 original models (None: one).
    """

    score: float
    forget_quality: float
    retain_accuracy_ratio: float
    test_accuracy_ratio: float
    mean_run_seconds: float
    retain_accuracy_unlearned: float
    retain_accuracy_retrained: float
    test_accuracy_unlearned: float
    test_accuracy_retrained: float
    forget_accuracy_unlearned: float
    forget_accuracy_retrained: float
    mean_retrain_seconds: float
    num_models: int
    num_buckets: int  # the epsilon buckets at this N: F is comparable only between equal N (the same phase)
    num_forget_examples: int
    bounds: str  # the rate estimate behind forget_quality and score
    forget_quality_empirical: float
    forget_quality_clopper_pearson: float
    clopper_pearson_alpha: float
    ulira_accuracy: float  # per-example likelihood-ratio attack, mean over examples (ideal 0.5), see ulira.py
    ulira_accuracy_std: float  # its std over examples
    klom_forget_p95: float  # 95th percentile over forget examples of KLoM, see klom.py
    # The same on the seeded samples of retain and validation examples: was the data kept (or never seen)
    # treated as retraining treats it? F as for the forget set (near the perfect-unlearner F is ideal), KLoM 0 ideal.
    forget_quality_retain_sample: float | None
    forget_quality_validation_sample: float | None
    klom_retain_p95: float | None
    klom_validation_p95: float | None
    samples_unavailable: str | None  # why the four above are None (None: they were computed)
    mia_unlearned: MembershipInference  # the 2023 kit's attack on the unlearned models
    mia_retrained: MembershipInference | None  # on the retrained models (None: the reference holds no losses)
    epsilons: np.ndarray  # float64 [E]
    ulira_per_example: np.ndarray  # float64 [E]: U-LiRA accuracy of each forget example
    klom_per_example: np.ndarray  # float64 [E]: KLoM of each forget example
    unlearned: FamilySample
    retrained: FamilySample
    statistics: ScoreStatistics | None = None
    originals: OriginalsResult | None = None

    @property
    def run_originals(self) -> np.ndarray | None:
        """The original model of each run, int ``[N]``; None when they all started from one (K = 1)."""
        return None if self.originals is None else self.originals.runs

    def with_statistics(self, statistics: ScoreStatistics) -> "ScoreResult":
        return replace(self, statistics=statistics)

    def _mia_numbers(self) -> dict[str, Any]:
        mia = self.mia_unlearned
        if mia.available:
            numbers: dict[str, Any] = dict(zip(MIA_KEYS, (mia.mean, mia.std, mia.num_models)))
        else:
            numbers = {"mia_accuracy": None, "mia_unavailable": mia.unavailable}
        if self.mia_retrained is not None and self.mia_retrained.available:
            numbers[MIA_RETRAINED_KEY] = self.mia_retrained.mean
        return numbers

    def numbers(self) -> dict[str, Any]:
        """Every number in order (leaderboard first), for ``scores.json``: floats and ints (None
        where not computed), plus ``bounds``, ``samples_unavailable`` and, when the attack could
        not run, ``mia_accuracy`` None and ``mia_unavailable`` (text)."""
        plain = {name: getattr(self, name) for name in _field_names(_NUMBER_TYPES + _TEXT_TYPES)}
        statistics = self.statistics.numbers() if self.statistics is not None else {}
        return {**plain, **self._mia_numbers(), **statistics}

    def to_json(self, *, quick_check: bool, per_example: bool = True, partial: str | None = None,
                over_budget_runs: list | None = None) -> dict[str, Any]:
        """``scores.json``: :meth:`numbers`, whether only the first k models were scored, the ingestion's
        sentence of a partial output (``partial_output``, when there is one), the runs scored over their
        budget (``over_budget_runs``, when any), each original's results and the training-seed shares
        (``originals``, when the runs started from K > 1 original models), and (unless ``per_example`` is
        False, as in a phase on private images) the per-example epsilons."""
        data = {**self.numbers(), "quick_check": quick_check}
        if partial is not None:
            data["partial_output"] = partial
        if over_budget_runs:
            data["over_budget_runs"] = over_budget_runs
        if self.originals is not None:
            data["originals"] = self.originals.to_json(per_example=per_example)
        return {**data, "epsilons": [float(e) for e in self.epsilons]} if per_example else data


# The annotations of the result's own numbers and texts.
_NUMBER_TYPES = ("float", "int", "float | None")
_TEXT_TYPES = ("str", "str | None")


def _field_names(types: tuple[str, ...]) -> tuple[str, ...]:
    """The result's fields annotated with one of ``types``, in declaration order."""
    return tuple(f.name for f in fields(ScoreResult) if f.type in types)


# F and KLoM on the retain and validation samples (None when not computed).
SAMPLE_NUMBER_KEYS = ("forget_quality_retain_sample", "forget_quality_validation_sample", "klom_retain_p95",
                      "klom_validation_p95")


# The 2023 kit's attack, when it ran: on the unlearned models, and on the retrained ones.
MIA_KEYS = ("mia_accuracy", "mia_accuracy_std", "mia_models")
MIA_RETRAINED_KEY = "mia_accuracy_retrained"
# Every key scores.txt may hold (a leaderboard column must be one of them).
SCORES_TXT_KEYS = frozenset(_field_names(_NUMBER_TYPES)) | {*MIA_KEYS, MIA_RETRAINED_KEY, *PERFECT_KEYS, *BOOTSTRAP_KEYS}


def scores_txt(result: ScoreResult) -> str:
    """``key: value`` lines: the leaderboard keys first, then the other numbers (text and None left out)."""
    numbers = result.numbers()
    keys = list(LEADERBOARD_KEYS) + [key for key, value in numbers.items() if key not in LEADERBOARD_KEYS
                                     and isinstance(value, (int, float)) and not isinstance(value, bool)]
    return "".join(f"{key}: {float(numbers[key]):.6f}\n" for key in keys)
