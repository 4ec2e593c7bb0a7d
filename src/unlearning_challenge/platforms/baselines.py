"""``make baselines``: score every starting-kit baseline and the sample on a phase and write the table.

Each baseline runs through the same ingestion and scoring programs as a
submission (``local-score``); the oracle (``retrain``) runs without the time
limit. The table goes into ``starting_kit/README.md`` between the markers
``<!-- baselines-table:start -->`` and ``<!-- baselines-table:end -->``;
each baseline's ``scores.json`` is kept under the output folder with the
hashes of its code and of the reference arrays (``baseline.json``), so an
interrupted run resumes with the baselines not yet scored, and a changed
baseline or reference is scored again. From the baselines' ingestion outputs
(``<output>/<name>/res``) the table also shows each baseline's interval of
ranks and its probability of ranking first (joint resamples, as
``unlearning-challenge rank``); ``--no-ranks`` leaves those columns out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from unlearning_challenge.artifacts import SUBMISSION_FILE, read_reference_manifest
from unlearning_challenge.atomic import write_text

if TYPE_CHECKING:
    from unlearning_challenge.scoring.ranking import Rank

START, END = "<!-- baselines-table:start -->", "<!-- baselines-table:end -->"
NO_TIME_LIMIT = {"retrain"}
SAMPLE = "sample_submission"
SUFFIXES = {SAMPLE: " (the Kaggle fine-tune, `make local-score`'s default)"}
COLUMNS = [
    ("score", "score", "{:.4f}"),
    ("forget_quality", "forget quality F", "{:.4f}"),
    ("retain_accuracy_ratio", "retain acc. ratio", "{:.3f}"),
    ("test_accuracy_ratio", "test acc. ratio", "{:.3f}"),
    ("mean_run_seconds", "seconds per run", "{:.2f}"),
    ("mia_accuracy", "MIA accuracy", "{:.3f}"),
    ("ulira_accuracy", "U-LiRA accuracy", "{:.3f}"),
    ("forget_quality_retain_sample", "F on retain sample", "{:.3f}"),
]


def cache_key(folder: Path, reference_data: Path) -> dict:
    """What a cached score depends on: the baseline's code and the reference data."""
    code = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        code.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    reference = read_reference_manifest(reference_data)
    return {"submission_sha256": code.hexdigest(), "reference_sha256": reference.arrays_sha256}


def score_baseline(folder: Path, out: Path, input_data: Path, reference_data: Path) -> dict:
    """Scores of one baseline, reused from ``out`` when its code and the reference data are unchanged
    and the cached scores hold every column of the table (scores from an older version are redone)."""
    scores_file, key_file = out / "scores" / "scores.json", out / "baseline.json"
    key = cache_key(folder, reference_data)
    if scores_file.exists() and key_file.exists() and json.loads(key_file.read_text()) == key:
        cached = json.loads(scores_file.read_text())
        if all(column in cached for column, _, _ in COLUMNS):
            return cached
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "unlearning_challenge", "local-score", "--submission", str(folder),
               "--input-data", str(input_data), "--reference-data", str(reference_data), "--output", str(out)]
    if folder.name in NO_TIME_LIMIT:
        command.append("--no-time-limit")
    if subprocess.call(command) != 0:
        return {"failed": True}
    write_text(key_file, json.dumps(key, indent=2) + "\n")
    return json.loads(scores_file.read_text())


def _rank_confidence() -> float:
    from unlearning_challenge.scoring.ranking import COMPARE_CONFIDENCE  # imports torch: not for the CLI

    return COMPARE_CONFIDENCE


def baseline_ranks(results: Mapping[str, dict], output: Path, reference_data: Path, *,
                   seed: int = 0) -> dict[str, Rank]:
    """Rank interval and P(first) of every baseline scored, from its ingestion output under ``output``;
    empty when fewer than two were scored or their outputs cannot be read (said on stderr)."""
    names = [name for name, scores in results.items() if not scores.get("failed")]
    if len(names) < 2:
        return {}
    from unlearning_challenge.scoring.compare import CompareError, rank_folders  # imports torch: not for the CLI

    try:
        ranking = rank_folders([output / name for name in names], reference_data, names=names, seed=seed,
                               progress=True)
    except CompareError as exc:
        print(f"baselines: no rank columns: {exc}", file=sys.stderr)
        return {}
    return {row.name: row for row in ranking.rows}


def _rank_cells(rank: Rank | None) -> list[str]:
    if rank is None:
        return ["n/a", "n/a"]
    ranks = f"{rank.rank_low}" if rank.rank_low == rank.rank_high else f"{rank.rank_low}–{rank.rank_high}"
    return [ranks, f"{rank.p_first:.0%}"]


def markdown_table(results: dict[str, dict], num_models: int, machine: str, skipped: tuple[str, ...] = (),
                   ranks: Mapping[str, Rank] | None = None) -> str:
    """The table, best score first; with ``ranks`` (see :func:`baseline_ranks`) two more columns."""
    confidence = _rank_confidence() if ranks else None
    rank_labels = (f"rank ({confidence:.0%})", "P(first)") if ranks else ()
    labels = [label for _, label, _ in COLUMNS] + list(rank_labels)
    header = "| baseline | " + " | ".join(labels) + " |"
    rule = "|---|" + "---:|" * len(labels)
    rows = []
    for name, scores in sorted(results.items(), key=lambda item: -item[1].get("score", -1)):
        if scores.get("failed"):
            rows.append(f"| `{name}` | failed |" + " |" * (len(labels) - 1))
            continue
        cells = [fmt.format(scores[key]) if scores.get(key) is not None else "n/a" for key, _, fmt in COLUMNS]
        if ranks:
            cells += _rank_cells(ranks.get(name))
        suffix = " (no time limit)" if name in NO_TIME_LIMIT else SUFFIXES.get(name, "")
        rows.append(f"| `{name}`{suffix} | " + " | ".join(cells) + " |")
    note = (f"\nCheck phase, N = {num_models} models per side, scored by `make baselines` on {machine} "
            f"({time.strftime('%Y-%m-%d')}). A perfect unlearner does not score 1 (see the evaluation page). "
            "MIA accuracy: the 2023 starting kit's loss-based membership-inference attack, forget vs test "
            "examples, mean over the unlearned models (0.5: cannot tell them apart; not part of the score). "
            "U-LiRA accuracy: the per-example likelihood-ratio attack telling unlearned from retrained models "
            "(0.5 ideal). F on retain sample: the forget-quality rule applied to 256 retained examples: how far "
            "the unlearned models' outputs on data they should keep are from the retrained models' (higher: "
            "closer).\n")
    if ranks:
        note += (f"{rank_labels[0]}: the ranks a baseline takes in {confidence:.0%} of joint bootstrap "
                 "resamples of models and forget examples (the same for every baseline; "
                 "`unlearning-challenge rank`); P(first): the share of resamples in which it ranks first. "
                 "Overlapping rank intervals: the order between those baselines is noise at this N.\n")
    if skipped:
        note += f"Not run for this table: {', '.join(f'`{name}`' for name in skipped)}.\n"
    return "\n".join([header, rule, *rows]) + "\n" + note


def replace_table(readme: Path, table: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers to put the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write_text(readme, f"{head}{START}\n{table}{END}{tail}")


def add_baselines_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m unlearning_challenge baselines``."""
    parser.add_argument("--baselines", type=Path, default=Path("starting_kit/baselines"))
    parser.add_argument("--sample", type=Path, default=Path("starting_kit") / SAMPLE,
                        help="the sample submission, scored beside the baselines")
    parser.add_argument("--input-data", type=Path, default=Path("input_data"))
    parser.add_argument("--reference-data", type=Path, default=Path("reference_data"))
    parser.add_argument("--output", type=Path, default=Path("runs/baselines"))
    parser.add_argument("--readme", type=Path, default=Path("starting_kit/README.md"))
    parser.add_argument("--no-ranks", action="store_true",
                        help="leave out the rank-interval and P(first) columns (joint resamples of the baselines)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="leave this baseline out (repeatable), e.g. retrain: N full retrains")
    return parser


def run_baselines(args: argparse.Namespace) -> int:
    """Score every baseline and the sample; write the table into the README. A wrong --skip exits 2."""
    folders = sorted(p for p in args.baselines.iterdir() if (p / SUBMISSION_FILE).is_file())
    unknown = sorted(set(args.skip) - {p.name for p in folders})
    if unknown:
        print(f"baselines: error: --skip: no baseline named {', '.join(unknown)} in {args.baselines}", file=sys.stderr)
        raise SystemExit(2)
    folders = [p for p in folders if p.name not in args.skip]
    if (args.sample / SUBMISSION_FILE).is_file():
        folders.append(args.sample)
    results = {}
    for number, folder in enumerate(folders, start=1):
        print(f"== {folder.name} ({number} of {len(folders)})", file=sys.stderr)
        started = time.monotonic()
        results[folder.name] = score_baseline(folder, args.output / folder.name, args.input_data, args.reference_data)
        print(f"== {folder.name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    from unlearning_challenge.reference.calibration import cpu_name  # imports torch: not for the CLI's other commands

    num_models = read_reference_manifest(args.reference_data).num_models
    machine = f"{cpu_name()}, {os.cpu_count()} CPU cores"
    ranks = {} if args.no_ranks else baseline_ranks(results, args.output, args.reference_data)
    table = markdown_table(results, num_models, machine, tuple(args.skip), ranks=ranks)
    replace_table(args.readme, table)
    print(table)
    return 0
