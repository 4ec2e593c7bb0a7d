"""How well the budget's speed factor predicts the CPU seconds of a few kinds of loop on this machine.

The ingestion scales the per-run budget by a speed factor: the step profile of
``reference/calibration.py`` timed here (CPU seconds) against the one recorded with
the reference (``calibration_profile`` in ``input_data/manifest.json``), the largest
of the per-kind ratios (``FACTOR_QUANTILE``). A loop of k steps of one kind took
k x (that kind's step there) seconds on the reference machine, so the factor
predicts k x (step there) x factor CPU seconds here. This script times such loops
(training at the recipe's batch and at 4x it over the retain set, evaluation passes
with no_grad, gradient ascent on small forget-set batches) and prints each one's
error: measured / predicted - 1. A positive error is a loop that gets less time here
than on the reference machine (under-budgeted); it is within the margin when at most
``MARGIN``. The same for the factor of one kind (the recipe's training step, 20 steps,
what the budget used before the profile) shows what the profile changes.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_calibration.py``).
Options: ``--input`` (input data folder), ``--repeats`` (calibrations, for the spread
of the factor), ``--loop-scale`` (loop lengths), ``--rounds`` (the profile's rounds),
``--baseline-steps``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the ingestion sets it, before torch loads OpenMP

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from unlearning_challenge.judged import load_input  # noqa: E402
from unlearning_challenge.reference.calibration import (  # noqa: E402
    FACTOR_QUANTILE,
    PROFILE_ROUNDS,
    Clock,
    StepKind,
    calibration_profile,
    calibration_step_seconds,
    cpu_name,
    speed_factor,
    step_kinds,
)
from unlearning_challenge.reference.models import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 0.15  # a loop may take at most 15 % more CPU seconds here than the factor predicts
# steps of each loop at --loop-scale 1: about 4 to 8 CPU seconds each on a 2-core CPU
LOOP_STEPS = {"train": 18, "train_large": 6, "eval": 24, "forget": 30}


def time_loop(kind: StepKind, steps: int, images: np.ndarray, labels: np.ndarray, config, device: torch.device,
              clock: Clock, seed: int = 0) -> float:
    """``clock`` seconds of ``steps`` steps of ``kind``, each on a fresh random batch of ``images`` (a
    participant's loop: indexing, conversion to float and the step), after one step to warm up."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(config.model).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.training.lr, weight_decay=config.training.weight_decay)
    criterion = nn.CrossEntropyLoss()
    source, targets = torch.from_numpy(images), torch.from_numpy(labels)
    batch = min(kind.batch, len(source))
    start = None
    for step in range(steps + 1):
        if step == 1:
            start = clock.now()
        index = torch.randint(len(source), (batch,), generator=generator)
        x = source[index].to(device).float().contiguous(memory_format=torch.channels_last)
        y = targets[index].to(device)
        if kind.mode == "eval":
            model.eval()
            with torch.no_grad():
                model(x)
        else:
            model.train()
            loss = criterion(model(x), y)
            loss = -loss if kind.mode == "ascent" else loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock.now() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT / "input_data")
    parser.add_argument("--repeats", type=int, default=5, help="calibrations, for the factor's spread (default 5)")
    parser.add_argument("--rounds", type=int, default=PROFILE_ROUNDS, help="rounds of the step profile")
    parser.add_argument("--loop-scale", type=float, default=1.0, help="multiplies every loop's steps")
    parser.add_argument("--baseline-steps", type=int, default=20, help="steps of the one-kind calibration")
    args = parser.parse_args(argv)

    config, manifest, dataset, splits = load_input(args.input)
    device, clock = torch.device("cpu"), Clock.CPU
    threads = torch.get_num_threads()
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, {threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}")
    print(f"input data: {args.input} (phase {manifest.phase!r}; reference device "
          f"{(manifest.provenance or {}).get('device', '?')})")
    there = manifest.calibration_profile
    if not there:
        print("this manifest has no calibration_profile: the budget uses the one-kind factor only")
        return 0
    retain_x, retain_y = dataset.images[splits.retain], dataset.age_group[splits.retain]
    forget = splits.forget if len(splits.forget) else splits.retain
    forget_x, forget_y = dataset.images[forget], dataset.age_group[forget]

    factors, started = [], time.process_time()
    for _ in range(max(1, args.repeats)):
        begin = time.process_time()
        here = calibration_profile(retain_x, retain_y, model_cfg=config.model, train_cfg=config.training,
                                   device=device, clock=clock, rounds=args.rounds)
        factor, ratios = speed_factor(here, there)
        factors.append((factor, ratios, time.process_time() - begin))
    each = (time.process_time() - started) / len(factors)
    factor, ratios, cost = factors[0]
    baseline_step = calibration_step_seconds(retain_x, retain_y, model_cfg=config.model, train_cfg=config.training,
                                             device=device, clock=clock, steps=args.baseline_steps)
    baseline = baseline_step / manifest.calibration_step_seconds
    print(f"calibration: {cost:.2f} CPU s; ratios here/there "
          + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items())
          + f"; factor (quantile {FACTOR_QUANTILE:g}) {factor:.2f}; one-kind factor "
            f"({args.baseline_steps} {step_kinds(config.training.batch_size)[0].name} steps) {baseline:.2f}")
    values = np.array([f for f, _, _ in factors])
    print(f"factor over {len(values)} calibrations: min {values.min():.3f}, median {np.median(values):.3f}, "
          f"max {values.max():.3f} (spread max/min - 1: {values.max() / values.min() - 1:.1%}); "
          f"{each:.2f} CPU s each")

    kinds = dict(zip(("train", "train_large", "eval", "forget"), step_kinds(config.training.batch_size)))
    print(f"\n{'loop':<12}{'steps':>6}{'measured':>10}{'predicted':>11}{'error':>8}  within {MARGIN:.0%}"
          f"{'one-kind':>11}{'error':>8}{'err@min':>9}")
    worst = values.min()
    for role, kind in kinds.items():
        steps = max(1, round(LOOP_STEPS[role] * args.loop_scale))
        x, y = (forget_x, forget_y) if role == "forget" else (retain_x, retain_y)
        measured = time_loop(kind, steps, x, y, config, device, clock)
        reference = steps * there[kind.name]  # the loop's seconds on the reference machine
        predicted, one_kind = reference * factor, reference * baseline
        error, old_error = measured / predicted - 1, measured / one_kind - 1
        worst_error = measured / (reference * worst) - 1
        print(f"{kind.name:<12}{steps:>6}{measured:>10.2f}{predicted:>11.2f}{error:>+8.1%}  "
              f"{'yes' if error <= MARGIN else 'NO':<10}{one_kind:>11.2f}{old_error:>+8.1%}{worst_error:>+9.1%}")
    print("\nmeasured, predicted: CPU seconds here; error: measured / predicted - 1 (positive: less time than the "
          "loop took on the reference machine); one-kind: the prediction of the recipe's step alone; "
          "err@min: the error with the lowest factor of the calibrations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
