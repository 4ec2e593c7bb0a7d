"""Time U-LiRA and KLoM, the per-example statistics scoring adds, on seeded synthetic confidences.

    PYTHONPATH=src python benchmarks/bench_attacks.py            # N = 32, E = 50 and N = 512, E = 1000
    PYTHONPATH=src python benchmarks/bench_attacks.py --sizes 64x200 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from unlearning_challenge.reference.calibration import cpu_name
from unlearning_challenge.scoring.klom import klom
from unlearning_challenge.scoring.ulira import ulira


def _size(text: str) -> tuple[int, int]:
    n, _, e = text.partition("x")
    return int(n), int(e)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(32, 50), (512, 1000)], metavar="NxE")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores; best of {args.repeats}")
    for n, e in args.sizes:
        rng = np.random.default_rng(0)
        unlearned, retrained = rng.normal(0.3, 1.0, (n, e)), rng.normal(0.0, 1.0, (n, e))
        for name, statistic in (("ulira", ulira), ("klom", klom)):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                statistic(unlearned, retrained)
                times.append(time.perf_counter() - start)
            print(f"N = {n:4d}, E = {e:5d}: {name:5s} {min(times) * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
