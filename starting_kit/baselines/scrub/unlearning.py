"""Baseline: SCRUB (Kurmanji et al., 2023, "Towards Unbounded Machine Unlearning").

A student (the model being unlearned) and a teacher (a frozen copy of the
original model). Two kinds of steps, with the distillation divergence

    KL(teacher || student), on softmax outputs at temperature T:

- max-steps, on the forget set: maximise the divergence (capped), so the
  student stops agreeing with the teacher on the forget examples;
- min-steps, on the retain set: minimise ALPHA * KL + GAMMA * cross-entropy,
  so the student stays close to the teacher everywhere else.

ROUNDS rounds, each of MAX_PASSES_PER_ROUND passes of max-steps over the
(small) forget set followed by a share of the min-steps; the min-steps cover
75% of the retain set in total (each also runs the teacher forward): about
one retain epoch's worth of work, within the default phase's budget of 20% of
one retrain (30 epochs: about 6 passes).
"""

import copy
import itertools
import math

import torch
import torch.nn.functional as F

TEMPERATURE = 4.0
ALPHA = 0.5  # weight of the divergence in min-steps
GAMMA = 1.0  # weight of the cross-entropy in min-steps
MAX_STEP_KL_CAP = 5.0  # stop pushing a forget batch away once its divergence exceeds this
ROUNDS = 4
MAX_PASSES_PER_ROUND = 2
RETAIN_FRACTION = 0.75  # share of the retain batches used for min-steps, over all rounds
LR = 5e-4
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
MAX_GRAD_NORM = 5.0


def _divergence(student_logits, teacher_logits):
    """KL(teacher || student) at temperature T, scaled by T^2 as in distillation."""
    log_student = F.log_softmax(student_logits / TEMPERATURE, dim=1)
    teacher = F.softmax(teacher_logits / TEMPERATURE, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * TEMPERATURE**2


def _step(net, optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), MAX_GRAD_NORM)
    optimizer.step()


def _max_steps(net, teacher, optimizer, forget_loader, device):
    """Move away from the teacher on the forget set."""
    for batch in forget_loader:
        images = batch["image"].to(device)
        if len(images) < 2:  # BatchNorm cannot train on a single example
            continue
        with torch.no_grad():
            teacher_logits = teacher(images)
        divergence = _divergence(net(images), teacher_logits)
        _step(net, optimizer, -torch.clamp(divergence, max=MAX_STEP_KL_CAP))


def _min_steps(net, teacher, optimizer, batches, device):
    """Stay with the teacher, and correct, on the retain set."""
    for batch in batches:
        images = batch["image"].to(device)
        targets = batch["age_group"].to(device)
        if len(targets) < 2:
            continue
        with torch.no_grad():
            teacher_logits = teacher(images)
        logits = net(images)
        loss = ALPHA * _divergence(logits, teacher_logits) + GAMMA * F.cross_entropy(logits, targets)
        _step(net, optimizer, loss)


def unlearning(net, retain_loader, forget_loader, val_loader):
    """Unlearn in place; ``net`` is a ResNet-18 already on its device."""
    device = next(net.parameters()).device
    teacher = copy.deepcopy(net).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    net.train()
    retain_steps = max(1, math.ceil(RETAIN_FRACTION * len(retain_loader)))
    retain_batches = itertools.islice(retain_loader, retain_steps)  # one pass, shared by the rounds
    per_round = math.ceil(retain_steps / ROUNDS)
    for _ in range(ROUNDS):
        for _ in range(MAX_PASSES_PER_ROUND):
            _max_steps(net, teacher, optimizer, forget_loader, device)
        _min_steps(net, teacher, optimizer, itertools.islice(retain_batches, per_round), device)
    net.eval()
    return net
