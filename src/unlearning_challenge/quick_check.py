"""``make quick-check``: one run of a submission through the real ingestion, summarised in seconds.

No reference family is needed: the run's retain, test and forget accuracy,
the 2023 kit's membership-inference accuracy on its losses, and its wall time
against the phase's budget, each printed as a ``key: value`` line. The run
goes through the ingestion program (trusted runner, fresh worker process,
sandbox) exactly as one run of ``local-score`` does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from unlearning_challenge.artifacts import (
    INGESTION_MANIFEST,
    UNLEARNED_ARRAYS,
    ArtifactError,
    read_family,
    read_ingestion_manifest,
)
from unlearning_challenge.runner.guardian import call_tied
from unlearning_challenge.scoring.mia import membership_inference


def summary_lines(res: Path) -> tuple[list[str], bool]:
    """``key: value`` lines describing the ingestion output in ``res``, and whether the run succeeded."""
    try:
        manifest = read_ingestion_manifest(res)
    except ArtifactError as exc:
        return ["status: failed", f"message: no ingestion output to read ({exc}); see the ingestion log above"], False
    runs = manifest.runs
    budget = manifest.time_budget_seconds
    timing = manifest.timing or {}
    lines = [f"status: {manifest.status}"]
    if runs and runs[-1].original is not None:
        lines.append(f"original: {runs[-1].original}")
    if manifest.status == "ok" and manifest.arrays_sealed:
        lines.append("accuracies: n/a (the arrays are sealed for the scoring program in a hidden phase; "
                     "rerun with PARTICIPANT_OUTPUT=shown to see them)")
    elif manifest.status == "ok":
        family = read_family(res / UNLEARNED_ARRAYS, expected_sha256=manifest.arrays_sha256, what="ingestion output")
        mia = membership_inference(family)
        mia_text = f"{mia.mean:.6f}" if mia.available else f"n/a ({mia.unavailable})"
        lines += [
            f"retain_accuracy: {float(family.retain_accuracy[0]):.6f}",
            f"test_accuracy: {float(family.test_accuracy[0]):.6f}",
            f"forget_accuracy: {float(family.forget_accuracy[0]):.6f}",
            f"mia_accuracy: {mia_text}",
        ]
    else:
        lines.append(f"message: {' '.join((manifest.message or '').split())}")
    if runs:
        seconds = float(runs[-1].seconds or 0.0)
        lines.append(f"run_seconds: {seconds:.3f}")
        if timing.get("clock") == "cpu" and runs[-1].cpu_seconds is not None:
            # On a CPU the budget counts the run's CPU seconds (all its threads and processes).
            seconds = float(runs[-1].cpu_seconds)
            lines += [f"run_cpu_seconds: {seconds:.3f}", "budget_clock: cpu (the budget counts CPU seconds)"]
        if budget is None:
            reference = timing.get("reference_budget_seconds")
            lines.append("time_budget_seconds: none (no time limit)" if reference is None else
                         f"time_budget_seconds: none (no time limit; the phase's budget on its reference machine "
                         f"is {float(reference):.3f})")
        else:
            lines.append(f"time_budget_seconds: {float(budget):.3f}")
            if runs[-1].status in ("ok", "timeout"):  # a run that crashed has no time to judge
                lines.append(f"within_budget: {'yes' if seconds <= float(budget) else 'no'}")
    return lines, manifest.status == "ok"


def run_quick_check(submission: Path, input_data: Path, output: Path | None, *, no_time_limit: bool = False,
                    participant_output: str | None = None, original: int | None = None) -> int:
    """One ingestion run of ``submission`` into ``output``; print the summary to stdout; 0 when the run succeeded.

    ``participant_output`` ("shown" or "hidden") overrides the phase's setting, as in ``local-score``;
    ``original``: the original model the run starts from (default: 0, as run 0 of the ingestion).
    """
    out = output or Path("runs") / time.strftime("quick-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        print(f"quick-check: output folder {out} is not empty; choose another with OUT=...", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "unlearning_challenge.ingestion", "--input", str(input_data),
               "--output", str(out), "--submission", str(submission), "--num-models", "1"]
    if no_time_limit:
        command.append("--no-time-limit")
    if participant_output:
        command += ["--participant-output", participant_output]
    if original is not None:
        command += ["--original", str(original)]
    start = time.perf_counter()
    code = call_tied(command)
    lines, ok = summary_lines(out)
    lines.append(f"total_seconds: {time.perf_counter() - start:.1f}")
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    if not ok:
        print(f"quick-check: the submission failed (ingestion exit {code}); details in {out / INGESTION_MANIFEST}",
              file=sys.stderr)
        return 1
    return 0
