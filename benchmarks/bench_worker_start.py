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
from pathlib import Path

import numpy as np

from unlearning_challenge.artifacts import ORIGINAL_WEIGHTS
from unlearning_challenge.judged import load_input
from unlearning_challenge.reference.calibration import Clock, cpu_name
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner.isolation import WorkerCaps
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.reaping import become_subreaper
from unlearning_challenge.runner.session import RunSession

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "starting_kit" / "baselines" / "do_nothing"


def time_starts(session: RunSession, folders: RunFolders, starts: int) -> list[float]:
    """Seconds from asking for worker i to its ``ready`` message, for i < ``starts``."""
    seconds = []
    for index in range(starts):
        begin = time.perf_counter()
        worker = session.start(folders.prepare(index))
        ready = worker.wait_ready()
        seconds.append(time.perf_counter() - begin)
        session.stop_runs()
        folders.remove(index)
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
    config, _, dataset, splits = load_input(args.input)
    limits = RunLimits(Clock.WALL, None, wall_limit=600.0, cpu_limit=None)  # no run goes past ready here
    for fork in (True, False):
        workspace = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        try:
            with RunSession(limits, fork_server=fork, caps=WorkerCaps(config.ingestion.max_processes)) as session:
                if session.fork_server is not None:
                    begin = time.perf_counter()
                    session.fork_server.wait_ready()
                    print(f"fork server ready after {time.perf_counter() - begin:.2f} s (imports, once per ingestion)")
                folders = RunFolders(workspace, config, SUBMISSION, "cpu", args.input / ORIGINAL_WEIGHTS,
                                     dataset, splits)
                seconds = np.array(time_starts(session, folders, args.starts))
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        mode = "forked from the fork server" if fork else "new Python process"
        print(f"{mode:>28}: start to ready median {np.median(seconds):.2f} s, "
              f"min {seconds.min():.2f} s over {args.starts} workers")


if __name__ == "__main__":
    main()
