"""Baseline: re-initialise the classifier, then fine-tune on the retain set.

In the spirit of several top solutions of the 2023 competition: destroy a part
of the network that holds example-specific information, then rebuild utility
from the retain set only, so that what the forget examples left in that part
is replaced by training that never sees them.

1. Re-initialise the classifier (the final fully connected layer) as
   torchvision initialises a new one.
2. Fine-tune the whole network on the retain set for one epoch with Adam: the
   fresh classifier at HEAD_LR, the pretrained body five times slower (a fast
   body update would damage the features the new head relies on), a short
   linear warm-up, then a cosine decay.

Optional: NOISE_SCALE > 0 also adds Gaussian noise to every convolution,
scaled to each layer's weight spread (forgets more, costs retain accuracy).

Cost: one pass over the retain set, a sixth of the default phase's budget of
20% of one retrain (30 epochs: about 6 passes).
"""

import math

import torch
from torch import nn

EPOCHS = 1
HEAD_LR = 1e-3
BODY_LR = HEAD_LR / 5
WARMUP_FRACTION = 0.1
NOISE_SCALE = 0.0


@torch.no_grad()
def _reinitialise(net):
    """Reset the classifier; return its parameters (to train them faster)."""
    classifier = net.fc
    classifier.reset_parameters()
    if NOISE_SCALE > 0:
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.add_(torch.randn_like(module.weight) * (NOISE_SCALE * module.weight.std()))
    return list(classifier.parameters())


def _schedule(total_steps):
    warmup = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Unlearn in place; ``net`` is a ResNet-18 already on its device."""
    device = next(net.parameters()).device
    head = _reinitialise(net)
    head_ids = {id(p) for p in head}
    body = [p for p in net.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.Adam([{"params": body, "lr": BODY_LR}, {"params": head, "lr": HEAD_LR}])
    total_steps = max(1, EPOCHS * len(retain_loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps))
    criterion = nn.CrossEntropyLoss()
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
