"""Time how long a worker takes from its start to ``ready``, forked from the fork server or as a new Python.

This is the fixed cost every run pays on top of the participant's own time
(the ingestion overlaps part of it with evaluating the previous run's model).
Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_worker_start.py``).
Options: ``--starts`` (per mode), ``--input`` (input data folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from unlearning_challenge.artifacts import ORIGINAL_WEIGHTS
from unlearning_challenge.ingestion import RunPlan, load_input, start_fork_server
from unlearning_challenge.runner.isolation import WorkerIdentity
from unlearning_challenge.runner.session import become_subreaper, kill_leftovers, own_children
from unlearning_challenge.reference.calibration import cpu_name

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "starting_kit" / "baselines" / "do_nothing"


def time_starts(plan: RunPlan, starts: int) -> list[float]:
    """Seconds from asking for worker i to its ``ready`` message, for i < ``starts``."""
    seconds = []
    for index in range(starts):
        begin = time.perf_counter()
        worker = plan.start(index)
        ready = worker.wait_ready()
        seconds.append(time.perf_counter() - begin)
        worker.stop()
        shutil.rmtree(plan.run_dir(index), ignore_errors=True)
        if ready.get("event") != "ready":
            raise RuntimeError(f"worker {index} did not get ready: {ready} {worker.output.tail()}")
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--input", type=Path, default=ROOT / "input_data")
    args = parser.parse_args(argv)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores")
    if not become_subreaper():
        raise SystemExit("this benchmark needs Linux (a child subreaper)")
    keep = own_children()
    config, _, dataset, splits = load_input(args.input)
    for fork in (True, False):
        config = replace(config, ingestion=replace(config.ingestion, fork_server=fork))
        workspace = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        server = start_fork_server(config, subreaper=True)
        try:
            if server is not None:
                begin = time.perf_counter()
                server.wait_ready()
                print(f"fork server ready after {time.perf_counter() - begin:.2f} s (imports, once per ingestion)")
                keep.add(server.pid)
            plan = RunPlan(workspace, config, SUBMISSION, torch.device("cpu"), args.input / ORIGINAL_WEIGHTS,
                           dataset, splits, 0, WorkerIdentity(), server)
            seconds = np.array(time_starts(plan, args.starts))
        finally:
            if server is not None:
                server.close()
            kill_leftovers(keep)
            shutil.rmtree(workspace, ignore_errors=True)
        mode = "forked from the fork server" if fork else "new Python process"
        print(f"{mode:>28}: start to ready median {np.median(seconds):.2f} s, "
              f"min {seconds.min():.2f} s over {args.starts} workers")


if __name__ == "__main__":
    main()
