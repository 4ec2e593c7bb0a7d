"""Sample submission: the 2023 Kaggle fine-tune baseline.

Fine-tunes the original model for one epoch on the retain set (SGD, lr 1e-3,
momentum 0.9, weight decay 5e-4, cosine schedule), updating ``net`` in place.
"""

import torch
from torch import nn, optim


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Unlearn the forget set from ``net`` (a ResNet-18 already on its device).

    Each loader yields dicts: ``image`` float32 [B, 3, 32, 32] with values
    0-255, ``age_group`` int64 [B] (the labels), ``age``, ``person_id``,
    ``image_id``. Update ``net`` in place (returning it is also accepted).
    """
    device = next(net.parameters()).device
    epochs = 1
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    net.train()
    for _ in range(epochs):
        for sample in retain_loader:
            inputs = sample["image"].to(device)
            targets = sample["age_group"].to(device)
            optimizer.zero_grad()
            loss = criterion(net(inputs), targets)
            loss.backward()
            optimizer.step()
        scheduler.step()
    net.eval()
    return net
