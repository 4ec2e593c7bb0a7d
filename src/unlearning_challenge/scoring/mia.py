"""The 2023 starting kit's simple membership-inference attack on per-example losses.

The NeurIPS 2023 kit (``unlearning-CIFAR10.ipynb``, ``simple_mia``) fits a
scikit-learn ``LogisticRegression`` that predicts from one example's loss
whether the example was a forget example (member, 1) or a test example (0), and
reports its accuracy over ``StratifiedShuffleSplit(n_splits=10, random_state=0)``
(each split holds out 10% of the examples) with ``cross_val_score``. The two
groups are made the same size first by drawing, without replacement, as many
losses from the larger group as the smaller one has (in the kit the forget set
was the larger; here the test set usually is). An accuracy of 0.5 means the
attack cannot tell forgotten examples from unseen ones.

Computed on the trusted side from the losses ingestion records; not part of the
score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import linear_model, model_selection
from threadpoolctl import threadpool_limits

#: Cross-validation splits of the kit's attack.
N_SPLITS = 10
#: ``random_state`` of the kit's splits.
SPLIT_RANDOM_STATE = 0
#: Fewest examples per group: a 10% held-out split of fewer than 12 examples cannot hold both groups.
MIN_EXAMPLES_PER_GROUP = 6


class MiaUnavailable(ValueError):
    """The attack cannot run on these losses; the message says why."""


@dataclass(frozen=True)
class MembershipInference:
    """The attack on a family of N models, or why it could not run.

    ``accuracies`` float64 ``[N]`` (NaN for a model left out for non-finite
    losses; empty when unavailable); ``mean`` and ``std`` (population std) over
    the attacked models (NaN when unavailable); ``num_models`` attacked,
    ``skipped`` left out; ``unavailable`` the reason when no model could be attacked.
    """

    accuracies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean: float = float("nan")
    std: float = float("nan")
    num_models: int = 0
    skipped: int = 0
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None


def simple_mia(sample_loss: np.ndarray, members: np.ndarray, n_splits: int = N_SPLITS,
               random_state: int = SPLIT_RANDOM_STATE) -> np.ndarray:
    """Cross-validated accuracies of the kit's attack.

    Parameters
    ----------
    sample_loss : ndarray, shape (n, 1)
        One loss per example.
    members : ndarray of int, shape (n,)
        1 for a forget example, 0 for a test example; both must occur.

    Returns
    -------
    ndarray of float64, shape (n_splits,)
        Accuracy of the logistic regression on each held-out split.
    """
    if not np.array_equal(np.unique(members), [0, 1]):
        raise ValueError("members must hold both 0 (test) and 1 (forget), and nothing else")
    attack_model = linear_model.LogisticRegression()
    cv = model_selection.StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
    return model_selection.cross_val_score(attack_model, sample_loss, members, cv=cv, scoring="accuracy")


def balanced_samples(forget_losses: np.ndarray, test_losses: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The kit's attack data: test losses then forget losses, the larger group subsampled.

    Returns ``sample_loss`` ``[2m, 1]`` and ``members`` ``[2m]`` with
    ``m = min(len(forget_losses), len(test_losses))``.
    """
    m = min(forget_losses.size, test_losses.size)
    forget = forget_losses if forget_losses.size == m else rng.permutation(forget_losses)[:m]
    test = test_losses if test_losses.size == m else rng.permutation(test_losses)[:m]
    samples = np.concatenate([test, forget]).astype(np.float64).reshape(-1, 1)
    members = np.r_[np.zeros(m, dtype=np.int64), np.ones(m, dtype=np.int64)]
    return samples, members


def model_mia_accuracy(forget_losses: Any, test_losses: Any, *, seed: int = 0) -> float:
    """Mean cross-validated accuracy of the kit's attack on one model.

    Parameters
    ----------
    forget_losses : array_like, shape (E,)
        Cross-entropy loss of the model on each forget example.
    test_losses : array_like, shape (T,)
        The same on each test example.
    seed : int
        Seed of the subsampling of the larger group.

    Raises
    ------
    MiaUnavailable
        If a group has fewer than ``MIN_EXAMPLES_PER_GROUP`` examples or a loss is
        not finite.
    """
    forget = np.asarray(forget_losses, dtype=np.float64).ravel()
    test = np.asarray(test_losses, dtype=np.float64).ravel()
    smallest = min(forget.size, test.size)
    if smallest < MIN_EXAMPLES_PER_GROUP:
        raise MiaUnavailable(
            f"the attack needs at least {MIN_EXAMPLES_PER_GROUP} forget and {MIN_EXAMPLES_PER_GROUP} test "
            f"examples; got {forget.size} forget and {test.size} test"
        )
    if not (np.all(np.isfinite(forget)) and np.all(np.isfinite(test))):
        raise MiaUnavailable("the model has NaN or infinite losses")
    samples, members = balanced_samples(forget, test, np.random.default_rng(seed))
    return float(simple_mia(samples, members).mean())


def family_mia(forget_losses: Any, test_losses: Any, *, seed: int = 0) -> MembershipInference:
    """The attack on each of N models, and the mean and spread of its accuracy.

    Parameters
    ----------
    forget_losses : array_like, shape (N, E)
        Per-example losses of each model on the forget set.
    test_losses : array_like, shape (N, T)
        The same on the test set.
    seed : int
        Model i subsamples with seed ``seed + i``.

    Returns
    -------
    MembershipInference
        Accuracies ``[N]`` (NaN for a model with non-finite losses), their mean and
        std (0 for one model) over the models attacked. If no model can be
        attacked, ``MiaUnavailable``.
    """
    forget = np.asarray(forget_losses, dtype=np.float64)
    test = np.asarray(test_losses, dtype=np.float64)
    if forget.ndim != 2 or test.ndim != 2 or forget.shape[0] != test.shape[0]:
        raise ValueError(
            f"forget_losses [N, E] and test_losses [N, T] must be 2-D with the same N; "
            f"got shapes {forget.shape} and {test.shape}"
        )
    accuracies = np.full(forget.shape[0], np.nan)
    reason = ""
    # One BLAS thread: the fits are tiny, and more threads only contend (about 6x slower on 2 busy cores).
    with threadpool_limits(limits=1):
        for i in range(forget.shape[0]):
            try:
                accuracies[i] = model_mia_accuracy(forget[i], test[i], seed=seed + i)
            except MiaUnavailable as exc:
                reason = str(exc)
    finite = accuracies[np.isfinite(accuracies)]
    if finite.size == 0:
        raise MiaUnavailable(reason or "no model to attack")
    return MembershipInference(accuracies, float(finite.mean()), float(finite.std()), int(finite.size),
                               int(accuracies.size - finite.size))


def membership_inference(family: Any) -> MembershipInference:
    """:func:`family_mia` on a :class:`~unlearning_challenge.artifacts.ModelFamily`'s losses;
    ``unavailable`` says why when it has none or they cannot be attacked."""
    if not family.has_losses:
        return MembershipInference(unavailable="the model outputs hold no per-example losses "
                                               "(written by an older version)")
    try:
        return family_mia(family.forget_losses, family.test_losses)
    except MiaUnavailable as exc:
        return MembershipInference(unavailable=str(exc))
