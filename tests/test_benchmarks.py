"""The benchmark scripts run (with tiny sizes): `make bench` must not rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metric_benchmark_runs():
    out = run_script("bench_metric.py", "--num-models", "16", "--num-examples", "20", "--repeats", "1")
    assert "machine:" in out


def test_attacks_benchmark_runs():
    out = run_script("bench_attacks.py", "--sizes", "8x10", "--sample", "12", "--repeats", "1")
    assert "ulira" in out and "klom" in out and "F and KLoM on the retain and validation samples" in out


@pytest.mark.ingestion
def test_worker_start_benchmark_times_both_ways(tiny_phase):
    out = run_script("bench_worker_start.py", "--starts", "1", "--input", tiny_phase[0])
    assert "fork server ready after" in out
    assert "forked from the fork server: start to ready" in out and "new Python process: start to ready" in out
