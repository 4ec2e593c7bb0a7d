"""Runs per minute of ``evaluate`` with ``--backend local`` and ``--backend ray`` (a local cluster), and their ratio.

The Check phase's sample submission, ``--num-models 8`` by default, the same torch threads per run on
both sides (``--cpus-per-run`` = the local run's threads: the machine's cores), the phase's time limit.
Runs per minute count from the first calibration (local) or the slots' start (ray) to the last run saved:
the set-up a backend pays per submission or per slot is in them, the Ray cluster's own start is not
(printed apart). Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_evaluate_backends.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from unlearning_challenge.reference.calibration import cpu_name

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "starting_kit" / "sample_submission"
SUMMARY = re.compile(r"runs \((\w+)\): (\d+) in ([\d.]+) s, ([\d.]+) runs/min")


def evaluate(backend: str, num_models: int, threads: int, output: Path, ray_tmp: Path) -> dict:
    """One ``evaluate`` of the sample; its runs, run seconds, runs per minute and whole wall seconds."""
    command = [sys.executable, "-m", "unlearning_challenge", "evaluate", str(SAMPLE), "--output", str(output),
               "--input-data", str(ROOT / "input_data"), "--reference-data", str(ROOT / "reference_data"),
               "--num-models", str(num_models), "--backend", backend, "--cpus-per-run", str(threads)]
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(ray_tmp)}
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - start
    found = SUMMARY.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"evaluate --backend {backend} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if int(found.group(2)) != num_models:
        raise SystemExit(f"evaluate --backend {backend} ran {found.group(2)} of {num_models} runs:\n"
                         f"{done.stderr[-3000:]}")
    timing = json.loads((output / SAMPLE.name / "res" / "ingestion.json").read_text())["timing"]
    return {"runs": int(found.group(2)), "seconds": float(found.group(3)), "per_minute": float(found.group(4)),
            "wall": wall, "speed_ratio": timing.get("speed_ratio")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-models", type=int, default=8)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores; Check phase, sample submission, "
          f"--num-models {args.num_models}, {threads} torch thread(s) a run on both backends")
    work = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    try:
        figures = {backend: evaluate(backend, args.num_models, threads, work / backend, ray_tmp)
                   for backend in ("local", "ray")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    for backend, figure in figures.items():
        print(f"  --backend {backend:5}: {figure['per_minute']:5.1f} runs/min ({figure['runs']} runs in "
              f"{figure['seconds']:.1f} s; the whole command, scoring included, {figure['wall']:.1f} s; "
              f"speed factor {figure['speed_ratio']:.2f})")
    ratio = figures["ray"]["per_minute"] / figures["local"]["per_minute"]
    print(f"  ray / local: {ratio:.2f}x")


if __name__ == "__main__":
    main()
