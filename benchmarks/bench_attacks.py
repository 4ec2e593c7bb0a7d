"""Time what scoring adds beside F on the forget set, on seeded synthetic data: U-LiRA and KLoM on the
forget set, and F and KLoM on the retain and validation samples.

    PYTHONPATH=src python benchmarks/bench_attacks.py            # N = 32 and N = 512
    PYTHONPATH=src python benchmarks/bench_attacks.py --sizes 64x200 --sample 128 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np

from unlearning_challenge.artifacts import ModelFamily
from unlearning_challenge.reference.calibration import cpu_name
from unlearning_challenge.scoring.klom import klom
from unlearning_challenge.scoring.program import sample_numbers
from unlearning_challenge.scoring.ulira import ulira

CLASSES = 10


def _size(text: str) -> tuple[int, int]:
    n, _, e = text.partition("x")
    return int(n), int(e)


def _best_ms(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def _sampled_family(rng: np.random.Generator, n: int, size: int, shift: float) -> ModelFamily:
    """N models with random logits on one forget example and ``size`` retain and validation examples."""
    def logits(k: int, labels: np.ndarray) -> np.ndarray:
        z = rng.normal(size=(n, k, CLASSES)).astype(np.float32)
        z[:, np.arange(k), labels] += np.float32(2.0 + shift)
        return z

    labels = np.arange(size, dtype=np.int64) % CLASSES
    ones = np.ones(n)
    return ModelFamily(logits(1, labels[:1]), labels[:1], labels[:1], ones, ones, ones, ones, np.arange(n),
                       retain_sample_logits=logits(size, labels), validation_sample_logits=logits(size, labels),
                       retain_sample_indices=np.arange(size), validation_sample_indices=np.arange(size),
                       retain_sample_labels=labels, validation_sample_labels=labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(32, 50), (512, 1000)], metavar="NxE")
    parser.add_argument("--sample", type=int, default=256, help="retain and validation examples each (default 256)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores; best of {args.repeats}")
    for n, e in args.sizes:
        rng = np.random.default_rng(0)
        unlearned, retrained = rng.normal(0.3, 1.0, (n, e)), rng.normal(0.0, 1.0, (n, e))
        for name, statistic in (("ulira", ulira), ("klom", klom)):
            ms = _best_ms(lambda: statistic(unlearned, retrained), args.repeats)
            print(f"N = {n:4d}, E = {e:5d}: {name:5s} {ms:8.1f} ms")
        u, r = _sampled_family(rng, n, args.sample, 0.3), _sampled_family(rng, n, args.sample, 0.0)
        ms = _best_ms(lambda: sample_numbers(u, r), args.repeats)
        print(f"N = {n:4d}, R = V = {args.sample}: F and KLoM on the retain and validation samples {ms:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
