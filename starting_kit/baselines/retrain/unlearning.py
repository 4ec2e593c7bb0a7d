"""The oracle: retrain from scratch on the retain set with the reference recipe.

This is what the reference models are, so it scores like a perfect unlearner
(for this N), but it takes as long as one retrain: run it with
``make local-score SUBMISSION=starting_kit/baselines/retrain NO_TIME_LIMIT=1 NUM_MODELS=4``.

The recipe (kept in step with the phase config of the default phase): fresh
ResNet-18 weights, class-weighted cross-entropy, Adam (lr 1e-4, weight decay
5e-3), cosine schedule, no augmentation, and the checkpoint with the best
validation accuracy.
"""

import copy

import numpy as np
import torch
import torchvision
from torch import nn

EPOCHS = 30  # the default phase's training.epochs
LR = 1e-4
WEIGHT_DECAY = 5e-3
NUM_CLASSES = 10


def _reset(net):
    """Fresh weights, initialised exactly as torchvision initialises a new ResNet-18."""
    fresh = torchvision.models.resnet18(num_classes=NUM_CLASSES)
    net.load_state_dict(fresh.state_dict())


def _class_weights(loader, device):
    labels = torch.cat([batch["age_group"] for batch in loader]).numpy()
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    present = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32, device=device)


@torch.no_grad()
def _accuracy(net, loader, device):
    net.eval()
    correct = total = 0
    for batch in loader:
        logits = net(batch["image"].to(device))
        correct += (logits.argmax(1).cpu() == batch["age_group"]).sum().item()
        total += len(batch["age_group"])
    return correct / max(total, 1)


def unlearning(net, retain_loader, forget_loader, val_loader):
    device = next(net.parameters()).device
    _reset(net)
    criterion = nn.CrossEntropyLoss(weight=_class_weights(retain_loader, device))
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    best_accuracy, best_state = -1.0, None
    for _ in range(EPOCHS):
        net.train()
        for batch in retain_loader:
            optimizer.zero_grad()
            loss = criterion(net(batch["image"].to(device)), batch["age_group"].to(device))
            loss.backward()
            optimizer.step()
        scheduler.step()
        accuracy = _accuracy(net, val_loader, device)
        if accuracy > best_accuracy:
            best_accuracy, best_state = accuracy, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.eval()
    return net
