"""Baseline: NegGrad+ (gradient ascent on the forget set, descent on the retain set).

Each step takes one retain batch and one forget batch and minimises

    BETA * CE(retain) - (1 - BETA) * min(CE(forget), FORGET_LOSS_CAP)

so the model keeps fitting the retain set while being pushed away from the
forget labels (Kurmanji et al., 2023, "Towards Unbounded Machine Unlearning").
Plain gradient ascent diverges: the cap stops the ascent on a forget batch
once its loss is high enough, and gradient clipping keeps steps small.

Cost: ~70% of the retain set, each step also seeing a forget batch (the small
forget set is cycled): about 1.4 passes' worth of examples, within the default
phase's budget of 20% of one retrain (30 epochs: about 6 passes).
"""

import itertools
import math

import torch
from torch import nn

RETAIN_FRACTION = 0.7  # share of the retain batches used (one forget batch rides along each)
BETA = 0.95  # weight of the retain loss; 1 - BETA goes to the (negated) forget loss
FORGET_LOSS_CAP = 2.0  # stop ascending on a forget batch once its cross-entropy exceeds this
LR = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
MAX_GRAD_NORM = 5.0


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Unlearn in place; ``net`` is a ResNet-18 already on its device."""
    device = next(net.parameters()).device
    criterion = nn.CrossEntropyLoss()
    steps = max(1, math.ceil(RETAIN_FRACTION * len(retain_loader)))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    forget_batches = itertools.cycle(forget_loader) if len(forget_loader) else itertools.repeat(None)
    net.train()
    for retain in itertools.islice(retain_loader, steps):
        forget = next(forget_batches)
        images = [retain["image"]]
        if forget is not None:
            images.append(forget["image"])
        n_retain = len(retain["age_group"])
        if n_retain < 2:  # BatchNorm cannot train on a single example
            continue
        # One forward pass over both batches keeps BatchNorm statistics shared.
        logits = net(torch.cat(images).to(device))
        loss = BETA * criterion(logits[:n_retain], retain["age_group"].to(device))
        if forget is not None:
            forget_loss = criterion(logits[n_retain:], forget["age_group"].to(device))
            loss = loss - (1 - BETA) * torch.clamp(forget_loss, max=FORGET_LOSS_CAP)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
    net.eval()
    return net
