"""How many of the Check phase's runs fit in its platform time limit, for the sample at several epoch counts.

Each row is a full ``local-score`` of the starting kit's sample submission with its
``epochs = 1`` changed to E (more retain epochs: a method that spends more of its
budget, as the 2023 winners did), under the Check phase's step time limit from
``competition.yaml`` (600 s). It prints, per E: the runs that fit of N, the seconds
a run took with its evaluation (the ingestion's own estimate), the CPU seconds a
run used against its budget, the wall seconds of the ingestion, and the score (on
the runs that fit). Each row takes up to the limit: about 10 minutes a row on a
2-core CPU, so it is not part of ``make bench``. Run it on a quiet machine:

    .venv/bin/python benchmarks/bench_check_phase_fit.py --epochs 1 3 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from unlearning_challenge.platforms.phases import step_time_limit_for
from unlearning_challenge.reference.calibration import cpu_name

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "starting_kit" / "sample_submission" / "unlearning.py"


def sample_with_epochs(epochs: int, folder: Path) -> Path:
    """A copy of the sample submission that fine-tunes for ``epochs`` retain epochs."""
    text = SAMPLE.read_text()
    if "epochs = 1\n" not in text:
        raise SystemExit(f"{SAMPLE} no longer sets `epochs = 1`: update this benchmark")
    folder.mkdir(parents=True)
    (folder / "unlearning.py").write_text(text.replace("epochs = 1\n", f"epochs = {epochs}\n"))
    return folder


def rehearse(submission: Path, output: Path) -> tuple[dict, dict | None]:
    """``local-score`` of ``submission`` on the Check phase: its ingestion.json and scores.json (None when
    not scored)."""
    subprocess.run([sys.executable, "-m", "unlearning_challenge", "local-score", "--submission", str(submission),
                    "--output", str(output)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingestion = json.loads((output / "res" / "ingestion.json").read_text())
    scores_path = output / "scores" / "scores.json"
    return ingestion, json.loads(scores_path.read_text()) if scores_path.is_file() else None


def row(epochs: int, ingestion: dict, scores: dict | None) -> str:
    runs = [run for run in ingestion["runs"] if run["status"] == "ok"]
    cpu = sum(run["cpu_seconds"] for run in runs) / max(1, len(runs))
    score = f"{scores['score']:.4f}" if scores else "not scored"
    return (f"{epochs:>6}  {len(runs):>3} of {ingestion.get('num_models_asked') or ingestion['num_models']:<3}  "
            f"{cpu:>9.1f} / {ingestion['time_budget_seconds']:<6.1f} {ingestion['step_seconds']:>8.0f}  "
            f"{ingestion['status']:<8} "
            f"{score:>10}  {ingestion['message']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3, 6])
    args = parser.parse_args()
    limit, source = step_time_limit_for(ROOT / "input_data", ROOT / "competition.yaml")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); step time limit {limit} s ({source})")
    print(f"{'epochs':>6}  {'runs fit':<8}  {'CPU s/run / budget':<18} {'step s':>6}  {'status':<8} {'score':>10}  "
          "ingestion's message")
    with tempfile.TemporaryDirectory(prefix="check-fit-") as tmp:
        for epochs in args.epochs:
            submission = sample_with_epochs(epochs, Path(tmp) / f"sample-{epochs}-epochs")
            print(row(epochs, *rehearse(submission, Path(tmp) / f"run-{epochs}")), flush=True)


if __name__ == "__main__":
    main()
