"""Time ``per_example_epsilons`` on realistic data (N = 512 models, E = 1000 examples) and on the golden cases.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_metric.py``). Options:
``--num-models``, ``--num-examples``, ``--repeats``, ``--seed``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from unlearning_challenge.metric import forget_quality, per_example_epsilons
from unlearning_challenge.reference.calibration import cpu_name

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "metric_reference_public.npz"
TARGET_SECONDS = 5.0


def realistic_confidences(num_models: int, num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (unlearned, retrained) ``[N, E]`` confidences resembling real forget sets.

    Each example has its own pair of families: a quarter identical in law, a quarter
    shifted a little (heavy overlap), a quarter shifted a lot (nearly separated), a
    quarter with very different widths; skewed (log-normal) families for 10 %.
    Standard deviations of 0.5 to 4 give ranges of a few units to about 15 units.
    """
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 4, num_examples)
    mu_r = rng.normal(3.0, 2.0, num_examples)
    sd_r = rng.uniform(0.5, 2.5, num_examples)
    shift = np.select([kind == 1, kind == 2], [rng.normal(0.0, 0.7, num_examples), rng.choice([-1, 1], num_examples) * rng.uniform(3, 8, num_examples)], 0.0)
    scale = np.where(kind == 3, rng.uniform(0.3, 2.0, num_examples), rng.uniform(0.85, 1.15, num_examples))
    retrained = rng.normal(mu_r, sd_r, (num_models, num_examples))
    unlearned = rng.normal(mu_r + shift, sd_r * scale, (num_models, num_examples))
    skewed = rng.random(num_examples) < 0.1
    unlearned[:, skewed] = mu_r[skewed] + rng.lognormal(0.0, 0.8, (num_models, skewed.sum())) * sd_r[skewed]
    return unlearned, retrained


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-models", type=int, default=512)
    parser.add_argument("--num-examples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}")

    unlearned, retrained = realistic_confidences(args.num_models, args.num_examples, args.seed)
    per_example_epsilons(unlearned[:, :5], retrained[:, :5])  # warm-up (tables, imports)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        eps = per_example_epsilons(unlearned, retrained)
        times.append(time.perf_counter() - start)
    best, median = min(times), float(np.median(times))
    verdict = "within" if median <= TARGET_SECONDS else "OVER"
    print(
        f"per_example_epsilons N={args.num_models} E={args.num_examples}: best {best:.3f} s, median {median:.3f} s "
        f"over {args.repeats} runs ({median / args.num_examples * 1e3:.3f} ms/example; {verdict} the {TARGET_SECONDS:g} s target)"
    )
    print(f"  eps: mean {eps.mean():.3f}, min {eps.min():.3f}, max {eps.max():.3f}, at cap {int((eps == 50).sum())}")

    if GOLDEN.exists():
        golden = np.load(GOLDEN)
        cases = sorted({key.split("__")[0] for key in golden.files})
        total = 0.0
        all_equal = True
        for case in cases:
            u, r = golden[f"{case}__unlearned"], golden[f"{case}__retrained"]
            start = time.perf_counter()
            eps = per_example_epsilons(u, r)
            elapsed = time.perf_counter() - start
            total += elapsed
            equal = np.array_equal(eps, golden[f"{case}__eps"]) and forget_quality(u, r) == golden[f"{case}__score"]
            all_equal &= equal
            print(f"  golden {case:<20} N={u.shape[0]:<4} E={u.shape[1]:<3} {elapsed * 1e3:8.1f} ms  exact: {equal}")
        print(f"golden cases: {len(cases)} in {total:.3f} s, all exact: {all_equal}")


if __name__ == "__main__":
    main()
