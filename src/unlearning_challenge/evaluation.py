"""What scoring needs from one model, and no more."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unlearning_challenge.data import FaceDataset, Splits
from unlearning_challenge.training import predict_logits


@dataclass(frozen=True)
class ModelOutputs:
    """forget_logits: float32 ``[E, C]`` on the forget set (dataset order of
    ``splits.forget``); accuracies are fractions in [0, 1]."""

    forget_logits: np.ndarray
    retain_accuracy: float
    test_accuracy: float
    forget_accuracy: float


def _accuracy(logits: torch.Tensor, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1).numpy() == labels).mean())


def evaluate_model(model: torch.nn.Module, dataset: FaceDataset, splits: Splits, device: torch.device) -> ModelOutputs:
    """Forget-set logits and retain/test/forget accuracy of ``model``."""
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    labels = dataset.age_group
    forget_logits = predict_logits(model, dataset.images[splits.forget], device)
    retain_logits = predict_logits(model, dataset.images[splits.retain], device)
    test_logits = predict_logits(model, dataset.images[splits.test], device)
    return ModelOutputs(
        forget_logits=forget_logits.numpy().astype(np.float32),
        retain_accuracy=_accuracy(retain_logits, labels[splits.retain]),
        test_accuracy=_accuracy(test_logits, labels[splits.test]),
        forget_accuracy=_accuracy(forget_logits, labels[splits.forget]),
    )
