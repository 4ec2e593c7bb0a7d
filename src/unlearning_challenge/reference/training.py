"""The challenge's training recipe, used for the original and the retrained models.

ResNet-18, class-weighted cross-entropy, Adam (lr 1e-4, weight decay 5e-3),
cosine schedule over the epochs, no augmentation, and the checkpoint of the
epoch with the best validation accuracy.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unlearning_challenge.config import ModelConfig, TrainingConfig
from unlearning_challenge.data import NUM_AGE_GROUPS, FaceDataset
from unlearning_challenge.reference.models import build_model


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def class_weights(labels: np.ndarray, num_classes: int = NUM_AGE_GROUPS) -> torch.Tensor:
    """Inverse-frequency weights ``[C]`` (mean 1 over present classes; absent classes 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class TrainResult:
    """state_dict: the best-validation checkpoint (CPU tensors);
    history: per epoch ``{"epoch", "loss", "val_accuracy"}``."""

    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    history: list[dict[str, float]]


def _batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, generator: torch.Generator | None):
    n = len(images)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield images[idx], labels[idx]


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: np.ndarray | torch.Tensor, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Logits ``[n, C]`` (float32, CPU) of ``images`` (uint8 or float ``[n, 3, H, W]``, 0-255)."""
    model.eval()
    images = torch.as_tensor(images)
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    if not out:
        return torch.zeros((0, model.fc.out_features))
    return torch.cat(out)


def logits_accuracy(logits: torch.Tensor, labels: np.ndarray) -> float:
    """Fraction of rows of ``logits`` ``[n, C]`` whose argmax is ``labels`` ``[n]``; NaN when n is 0."""
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1).numpy() == labels).mean())


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Accuracy of ``model`` on ``images`` ``[n, 3, H, W]``; NaN when n is 0."""
    if len(labels) == 0:
        return float("nan")
    return logits_accuracy(predict_logits(model, images, device), labels)


def train_model(
    dataset: FaceDataset,
    train_indices: np.ndarray,
    val_indices: np.ndarray,
    *,
    model_cfg: ModelConfig,
    train_cfg: TrainingConfig,
    seed: int,
    device: torch.device,
    progress=None,
) -> TrainResult:
    """Train a fresh model on ``dataset[train_indices]`` with the recipe, from ``seed``.

    ``progress``, if given, is called as ``progress(epoch, epochs, val_accuracy)``.
    """
    start_time = time.perf_counter()
    seed_everything(seed)
    model = build_model(model_cfg).to(device).to(memory_format=torch.channels_last)
    images = torch.from_numpy(dataset.images[train_indices])
    labels = torch.from_numpy(dataset.age_group[train_indices])
    weights = class_weights(dataset.age_group[train_indices], model_cfg.num_classes) if train_cfg.class_weighted_loss else None
    criterion = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train_cfg.epochs)
    generator = torch.Generator().manual_seed(seed)
    val_images = dataset.images[val_indices]
    val_labels = dataset.age_group[val_indices]

    best_acc, best_epoch, best_state, history = -1.0, -1, None, []
    for epoch in range(train_cfg.epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in _batches(images, labels, train_cfg.batch_size, generator):
            x = x.to(device).float().contiguous(memory_format=torch.channels_last)
            y = y.to(device)
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            count += len(y)
        scheduler.step()
        val_acc = accuracy(model, val_images, val_labels, device)
        history.append({"epoch": epoch, "loss": total / max(count, 1), "val_accuracy": val_acc})
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(epoch + 1, train_cfg.epochs, val_acc)
    state = {k: v.contiguous() for k, v in best_state.items()}
    return TrainResult(state, best_epoch, best_acc, time.perf_counter() - start_time, history)
