"""Baseline: random relabelling of the forget set, mixed with the retain set.

Each forget example gets a random wrong label (a different age group), and
the model is trained on those together with correctly labelled retain
examples: every step concatenates a retain batch with a relabelled forget
batch while the forget set lasts (one pass), then continues on the retain set
alone. The wrong labels erase what the model memorised about the forget
examples; the retain batches keep its accuracy.

Cost: 90% of one pass over the retain set plus one pass over the (small)
forget set, within the default phase's budget of 20% of one retrain (30 epochs:
about 6 passes).
"""

import itertools
import math

import torch
import torch.nn.functional as F

RETAIN_FRACTION = 0.9
LR = 1e-3
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def _wrong_labels(labels, num_classes):
    """A uniformly random label different from each true label."""
    shift = torch.randint(1, num_classes, labels.shape, device=labels.device)
    return (labels + shift) % num_classes


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Unlearn in place; ``net`` is a ResNet-18 already on its device."""
    device = next(net.parameters()).device
    steps = max(1, math.ceil(RETAIN_FRACTION * len(retain_loader)))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    forget_batches = iter(forget_loader)
    net.train()
    for retain in itertools.islice(retain_loader, steps):
        images = [retain["image"]]
        labels = [retain["age_group"].to(device)]
        forget = next(forget_batches, None)
        if forget is not None:
            images.append(forget["image"])
        if sum(len(x) for x in images) < 2:  # BatchNorm cannot train on a single example
            continue
        logits = net(torch.cat(images).to(device))
        if forget is not None:
            labels.append(_wrong_labels(forget["age_group"].to(device), logits.shape[1]))
        loss = F.cross_entropy(logits, torch.cat(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    net.eval()
    return net
