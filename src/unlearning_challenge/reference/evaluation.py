"""What scoring needs from one model, and no more; and the trusted check of the weights a run left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearning_challenge.config import ModelConfig
from unlearning_challenge.data import EvaluationSamples, FaceDataset, Splits
from unlearning_challenge.failures import Failure
from unlearning_challenge.reference.models import (
    CheckpointError,
    architecture_problems,
    load_weights,
    model_with_weights,
    nonfinite_parameters,
)
from unlearning_challenge.reference.training import logits_accuracy, predict_logits


@dataclass(frozen=True)
class ModelOutputs:
    """forget_logits: float32 ``[E, C]`` on the forget set (dataset order of
    ``splits.forget``); accuracies are fractions in [0, 1]; forget_losses float32
    ``[E]`` and test_losses float32 ``[T]``: per-example cross-entropy on the forget
    and test sets (dataset order), what the membership-inference attack reads;
    retain_sample_logits float32 ``[R, C]`` and validation_sample_logits float32 ``[V, C]``
    on the :class:`~unlearning_challenge.data.EvaluationSamples` (None: not evaluated)."""

    forget_logits: np.ndarray
    retain_accuracy: float
    test_accuracy: float
    forget_accuracy: float
    forget_losses: np.ndarray
    test_losses: np.ndarray
    retain_sample_logits: np.ndarray | None = None
    validation_sample_logits: np.ndarray | None = None


def _losses(logits: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    target = torch.as_tensor(labels, dtype=torch.long)
    return torch.nn.functional.cross_entropy(logits.float(), target, reduction="none").numpy().astype(np.float32)


def evaluate_model(model: torch.nn.Module, dataset: FaceDataset, splits: Splits, device: torch.device,
                   samples: EvaluationSamples | None = None) -> ModelOutputs:
    """Forget-set logits, retain/test/forget accuracy and forget/test losses of ``model``, and
    its logits on ``samples`` when given."""
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    labels = dataset.age_group
    forget_logits = predict_logits(model, dataset.images[splits.forget], device)
    retain_logits = predict_logits(model, dataset.images[splits.retain], device)
    test_logits = predict_logits(model, dataset.images[splits.test], device)
    sampled = {}
    if samples is not None:
        positions = np.searchsorted(splits.retain, samples.retain)  # both sorted; the sample is inside retain
        sampled = {
            "retain_sample_logits": retain_logits[positions].numpy().astype(np.float32),
            "validation_sample_logits": predict_logits(model, dataset.images[samples.validation], device)
            .numpy().astype(np.float32),
        }
    return ModelOutputs(
        forget_logits=forget_logits.numpy().astype(np.float32),
        retain_accuracy=logits_accuracy(retain_logits, labels[splits.retain]),
        test_accuracy=logits_accuracy(test_logits, labels[splits.test]),
        forget_accuracy=logits_accuracy(forget_logits, labels[splits.forget]),
        forget_losses=_losses(forget_logits, labels[splits.forget]),
        test_losses=_losses(test_logits, labels[splits.test]),
        **sampled,
    )


class UnusableModelError(ValueError):
    """The weights a run left cannot be evaluated; the message says why (a bad output), and ``failure``
    which kind of problem it is."""

    def __init__(self, message: str, failure: Failure):
        super().__init__(message)
        self.failure = failure


def evaluate_saved_model(path: Path, model_cfg: ModelConfig, dataset: FaceDataset, splits: Splits,
                         device: torch.device, samples: EvaluationSamples | None = None) -> ModelOutputs:
    """Load the weights a run left at ``path`` and evaluate them on the trusted side.

    Raises UnusableModelError when they are missing, unreadable, not ``model_cfg``'s
    architecture, or not finite: nothing from the run is trusted before these checks.
    """
    if not path.is_file():
        raise UnusableModelError("the run reported done but left no model weights", Failure.NO_WEIGHTS)
    try:
        state = load_weights(path)
    except CheckpointError as exc:
        raise UnusableModelError(f"unreadable model weights: {exc}", Failure.UNREADABLE_WEIGHTS) from None
    problems = architecture_problems(state, model_cfg)
    if problems:
        raise UnusableModelError("the returned model is not a ResNet-18 with 10 classes: " + "; ".join(problems),
                                 Failure.WRONG_ARCHITECTURE)
    bad = nonfinite_parameters(state)
    if bad:
        raise UnusableModelError(f"the returned model has NaN or infinite weights in {len(bad)} tensor(s), e.g. {bad[:3]}",
                                 Failure.NONFINITE_WEIGHTS)
    return evaluate_model(model_with_weights(state, model_cfg), dataset, splits, device, samples)
