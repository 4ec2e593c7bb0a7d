"""How much of a score is luck of the trained model: the Check phase with one original model (K = 1) and four (K = 4).

``phases/seeds.yaml`` is the Check phase with ``reference.num_originals: 4``: the same data, split,
recipe and retrained models (K is not in the config fingerprint), so its runs are scored against the
committed ``reference_data/``. Generating its input data with ``make reference`` needs the Check
phase's work folder; this script needs only the committed folders. In a scratch folder (``--output``,
default ``runs/seeds_table``; the committed ``input_data/`` and ``reference_data/`` are only read) it

1. builds the K = 4 input data: a copy of the committed ``input_data/`` (whose ``original.safetensors``
   is original 0, seed ``reference.original_seed``), originals 1 .. 3 trained with the reference's own
   training function (:func:`unlearning_challenge.reference.work.train_original`: the recipe and seeds
   ``original_seed + k`` that ``make reference`` uses), copied in and listed in the manifest by the
   reference's own assembly code (``original_<k>.safetensors``, ``originals``, ``num_originals``), and
   ``phase.yaml`` from ``phases/seeds.yaml``; ``judged.load_input`` checks the result. Resumable: an
   original already trained in ``<output>/work`` is not trained again;
2. runs ``unlearning-challenge evaluate`` (local backend, ``--no-time-limit``, so that a busy machine
   does not fail runs on their budget) of ``do_nothing``, the sample submission, ``finetune`` and
   ``neggrad_plus`` on the committed Check input data (K = 1) and on the K = 4 input data, both scored
   against the committed ``reference_data/`` with the same number of runs (``--num-models`` k < N is
   passed on, which scores a quick check of the first k; k = N runs the phase); resumable: finished runs
   are kept in each evaluation's work folder, so a second call with the same ``--output`` only scores;
3. prints a markdown table from each ``scores.json``: the score and F with K = 1 and K = 4, the rank
   interval (95%) of each submission among the four in each (``evaluate``'s leaderboard), the min-max
   of the per-original scores and F, and the training-seed shares (retain accuracy, test accuracy,
   median forget confidence) with their 95% intervals.

About 15 minutes for the three originals, then 8 x N runs, on 2 CPU cores (more on a busy machine):

    .venv/bin/python benchmarks/seeds_table.py                  # N = 32
    .venv/bin/python benchmarks/seeds_table.py --num-models 4   # a quick check that it works
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from unlearning_challenge.artifacts import DATASET_FILE, PHASE_FILE, read_input_manifest, write_manifest
from unlearning_challenge.atomic import write_json, write_text
from unlearning_challenge.config import PhaseConfig, dump_config, load_config
from unlearning_challenge.judged import load_input
from unlearning_challenge.reference.calibration import cpu_name
from unlearning_challenge.reference.generate import _copy_originals, _load_originals, prepare_data
from unlearning_challenge.reference.models import pick_device
from unlearning_challenge.reference.work import WorkFolder, train_original

ROOT = Path(__file__).resolve().parent.parent
CHECK_INPUT = ROOT / "input_data"
CHECK_REFERENCE = ROOT / "reference_data"
SEEDS_PHASE = ROOT / "phases" / "seeds.yaml"
SUBMISSIONS = {
    "do_nothing": ROOT / "starting_kit" / "baselines" / "do_nothing",
    "sample_submission": ROOT / "starting_kit" / "sample_submission",
    "finetune": ROOT / "starting_kit" / "baselines" / "finetune",
    "neggrad_plus": ROOT / "starting_kit" / "baselines" / "neggrad_plus",
}
COMMITTED = (CHECK_INPUT, CHECK_REFERENCE)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ----------------------------------------------------------------------------- 1. the K = 4 input data


def seed_work_folder(config: PhaseConfig, work: WorkFolder) -> None:
    """A reference work folder holding the committed Check data and original 0, so that the reference's own
    functions train originals 1 .. K-1 into it (as ``make reference`` would beside the Check phase's models)."""
    manifest = read_input_manifest(CHECK_INPUT)
    if manifest.config_fingerprint != config.fingerprint():
        raise SystemExit(f"{SEEDS_PHASE} and {CHECK_INPUT / PHASE_FILE} differ in their config fingerprint: "
                         "seeds.yaml is no longer the Check phase with K = 4")
    work.root.mkdir(parents=True, exist_ok=True)
    if not work.info.exists():
        shutil.copyfile(CHECK_INPUT / DATASET_FILE, work.dataset)
        write_json(work.info, {"phase": config.name, "config_fingerprint": manifest.config_fingerprint,
                               "split_fingerprint": manifest.split_fingerprint})
    if not work.original_done(0):
        # Original 0 is the committed one (seed original_seed + 0); its record as train_original writes it.
        shutil.copyfile(CHECK_INPUT / "original.safetensors", work.original_weights(0))
        write_json(work.original_record(0), {"seed": config.reference.original_seeds()[0],
                                             **manifest.original.to_json()})


def build_seeds_input(output: Path) -> Path:
    """The K = 4 input data in ``output/input_data`` (originals trained in ``output/work`` where missing)."""
    config = load_config(SEEDS_PHASE)
    work = WorkFolder(output / "work")
    input_dir = output / "input_data"
    seed_work_folder(config, work)
    dataset, splits, _ = prepare_data(config, work)  # checks the copied dataset against work.json
    device = pick_device()
    if config.training.cpu_threads:
        torch.set_num_threads(config.training.cpu_threads)
    for k in range(1, config.reference.num_originals):
        if work.original_done(k):
            log(f"original {k}: already trained in {work.root}")
            continue
        log(f"original {k}: training from seed {config.reference.original_seeds()[k]} on {device}")
        start = time.perf_counter()
        train_original(config, work, dataset, splits, device, k=k, progress=False)
        log(f"original {k}: trained in {time.perf_counter() - start:.0f} s")
    originals = _load_originals(config, work)
    input_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CHECK_INPUT / DATASET_FILE, input_dir / DATASET_FILE)
    records = _copy_originals(config, work, input_dir, originals)
    manifest = dataclasses.replace(read_input_manifest(CHECK_INPUT), num_originals=config.reference.num_originals,
                                   originals=records)
    write_text(input_dir / PHASE_FILE, dump_config(config))
    write_manifest(input_dir, manifest)
    loaded, _, _, _ = load_input(input_dir)  # refuses what the ingestion would refuse
    for k, record in enumerate(originals):
        log(f"original {k} (seed {record['seed']}): retain {record['retain_accuracy']:.3f}, "
            f"test {record['test_accuracy']:.3f}, forget {record['forget_accuracy']:.3f}")
    log(f"K = {loaded.reference.num_originals} input data ready in {input_dir}")
    return input_dir


# ----------------------------------------------------------------------------- 2. the evaluations


def evaluate(input_dir: Path, output: Path, num_models: int) -> float:
    """``evaluate`` of the four submissions on ``input_dir`` against the committed reference data; wall seconds."""
    start = time.perf_counter()
    # All N runs: no --num-models, which would mark the scores as a quick check of the first k models.
    asked = [] if num_models == read_input_manifest(input_dir).num_models else ["--num-models", str(num_models)]
    command = [sys.executable, "-m", "unlearning_challenge", "evaluate", "--output", str(output),
               "--input-data", str(input_dir), "--reference-data", str(CHECK_REFERENCE), *asked,
               "--backend", "local", "--no-time-limit", *(str(path) for path in SUBMISSIONS.values())]
    log("$ " + " ".join(os.path.relpath(part, ROOT) if part.startswith("/") else part for part in command[1:]))
    code = subprocess.run(command, cwd=ROOT).returncode
    if code:
        log(f"evaluate exited with {code}: the table shows what was scored")
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- 3. the table


def read_scores(output: Path, name: str) -> dict | None:
    path = output / name / "scores" / "scores.json"
    return json.loads(path.read_text()) if path.is_file() else None


def rank_intervals(output: Path) -> dict[str, str]:
    """Each submission's rank interval (95%) among the four, from the evaluation's leaderboard.csv."""
    path = output / "leaderboard.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {row["submission"]: row["rank_low"] if row["rank_low"] == row["rank_high"]
            else f"{row['rank_low']}–{row['rank_high']}" for row in rows if row.get("rank_low")}


def score_cells(scores: dict | None, rank: str | None) -> list[str]:
    if scores is None:
        return ["not scored", "not scored"]
    return [f"{scores['score']:.4f} ({rank or '?'})", f"{scores['forget_quality']:.4f}"]


def span(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{min(known):.4f}–{max(known):.4f}" if known else "n/a"


def share(entry: dict) -> str:
    if entry.get("value") is None:
        return "n/a"
    interval = f" [{entry['low']:.2f}, {entry['high']:.2f}]" if entry.get("low") is not None else ""
    return f"{entry['value']:.2f}{interval}"


def table(one: dict[str, dict | None], four: dict[str, dict | None], rank_one: dict[str, str],
          rank_four: dict[str, str]) -> str:
    lines = ["| submission | score K = 1 (rank 95%) | F K = 1 | score K = 4 (rank 95%) | F K = 4 "
             "| per-original score min–max | per-original F min–max "
             "| seed share: retain acc. | test acc. | forget conf. (median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in SUBMISSIONS:
        a, b = one[name], four[name]
        cells = [f"`{name}`", *score_cells(a, rank_one.get(name)), *score_cells(b, rank_four.get(name))]
        if b:
            originals = b.get("originals")
            if originals:
                per = originals["per_original"]
                seed = originals["training_seed_share"]
                cells += [span([o["score"] for o in per]), span([o["forget_quality"] for o in per]),
                          share(seed["retain_accuracy"]), share(seed["test_accuracy"]),
                          share(seed["forget_confidence"])]
            else:
                cells += ["n/a"] * 5
        else:
            cells += ["n/a"] * 5
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-models", type=int, default=32,
                        help="runs per submission and retrained models scored against (a multiple of 4; default 32, N)")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "seeds_table",
                        help="scratch folder: the originals' work folder, the K = 4 input data, both evaluations")
    args = parser.parse_args()
    output = args.output.resolve()
    if any(output == folder or folder in output.parents or output in folder.parents for folder in COMMITTED):
        raise SystemExit(f"--output {args.output}: give a scratch folder apart from the committed "
                         "input_data/ and reference_data/")
    if args.num_models < 4 or args.num_models % 4:
        raise SystemExit(f"--num-models {args.num_models}: K = 4 needs a multiple of 4 (4 .. 32)")
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
               f"({torch.get_num_threads()} threads)")
    log(f"machine: {machine}; output {output}")
    started = time.perf_counter()
    seeds_input = build_seeds_input(output)
    originals_seconds = time.perf_counter() - started
    seconds_one = evaluate(CHECK_INPUT, output / "check_k1", args.num_models)
    seconds_four = evaluate(seeds_input, output / "seeds_k4", args.num_models)
    one = {name: read_scores(output / "check_k1", name) for name in SUBMISSIONS}
    four = {name: read_scores(output / "seeds_k4", name) for name in SUBMISSIONS}
    print()
    print(table(one, four, rank_intervals(output / "check_k1"), rank_intervals(output / "seeds_k4")))
    print()
    print(f"Check phase, N = {args.num_models} runs per submission and retrained models, `evaluate --backend local "
          f"--no-time-limit`; machine: {machine}. Wall time: originals {originals_seconds / 60:.1f} min, "
          f"K = 1 evaluation {seconds_one / 60:.1f} min, K = 4 evaluation {seconds_four / 60:.1f} min, "
          f"total {(time.perf_counter() - started) / 60:.1f} min.")


if __name__ == "__main__":
    main()
