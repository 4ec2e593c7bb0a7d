"""Baseline: fine-tune on the retain set (the 2023 Kaggle starting kit's method).

One epoch of SGD on the retain set only (lr 1e-3, momentum 0.9, weight decay
5e-4, cosine schedule over the epoch's steps). The forget examples are never
shown again, so their influence fades a little ("catastrophic forgetting"),
but one epoch at a small learning rate changes the model only slightly.

Cost: one pass over the retain set, about 1/30 of one retrain on the default
phase (whose reference models train for 30 epochs): a sixth of the budget.
"""

import torch
from torch import nn

EPOCHS = 1
LR = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Fine-tune ``net`` (a ResNet-18 already on its device) in place on ``retain_loader``.

    Each loader yields dicts: ``image`` float32 [B, 3, 32, 32] with values
    0-255, ``age_group`` int64 [B] (the labels), ``age``, ``person_id``,
    ``image_id``.
    """
    device = next(net.parameters()).device
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, EPOCHS * len(retain_loader)))
    net.train()
    for _ in range(EPOCHS):
        for batch in retain_loader:
            targets = batch["age_group"].to(device)
            if len(targets) < 2:  # BatchNorm cannot train on a single example
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(net(batch["image"].to(device)), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
    net.eval()
    return net
