"""End to end through the built bundle, as each platform's worker runs it (no docker).

From ``dist/competition_bundle.zip`` (built into a temporary folder), the
programs, data and a packed submission are unzipped into the folder layout of

- CodaLab's worker (competitions-v1-compute-worker worker.py): a run folder
  with ``program/`` (the submission, then the scoring program),
  ``ingestion_program/``, ``input/`` (input data, then ``ref/`` and ``res/``),
  ``output/``; the command run from the run folder with
  ``PYTHONPATH=$PYTHONPATH:<run>/program``; the worker then writes its own
  ``metadata`` file into ``output/``;
- Codabench's worker (compute_worker.py): ``/app/program`` (the program being
  run, also the working directory), ``/app/ingested_program``,
  ``/app/input_data``, ``/app/input/{ref,res}``, ``/app/output``, no
  PYTHONPATH. ``/app`` is emulated by a temporary folder.

The commands come from the programs' ``metadata`` with the platforms' own
substitutions (see test_bundle.py), split on spaces, run without a shell.
It needs the Check phase's data (``make reference``) and runs the submission
N times (minutes on a CPU), so it only runs when asked:

    EMULATE_PLATFORMS=1 .venv/bin/python -m pytest tests/test_bundle_emulation.py
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from unlearning_challenge.bundle import build_bundles, load_settings
from unlearning_challenge.submission_zip import pack_submission

from test_bundle import _codabench, _codalab_v1

ROOT = Path(__file__).resolve().parents[1]
SUBMISSION = ROOT / "starting_kit" / "baselines" / "do_nothing"
TIMEOUT = 1800

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("EMULATE_PLATFORMS"), reason="set EMULATE_PLATFORMS=1 to run (minutes)"),
    pytest.mark.skipif(
        not (ROOT / "input_data" / "manifest.json").is_file() or not (ROOT / "reference_data" / "manifest.json").is_file(),
        reason="the Check phase's data are not generated yet (make reference PHASE=phases/default.yaml)",
    ),
]


def _unzip(data: bytes | Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    source = data if isinstance(data, Path) else io.BytesIO(data)
    with zipfile.ZipFile(source) as zf:
        zf.extractall(folder)


def _metadata_command(program_dir: Path) -> str:
    return yaml.safe_load((program_dir / "metadata").read_text())["command"]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # The image runs python3 from its virtual environment; here the test's interpreter stands in.
    argv = [sys.executable if argv[0] == "python3" else argv[0], *argv[1:]]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _at(app: Path, argv: list[str]) -> list[str]:
    """Codabench's /app paths, moved under a temporary folder."""
    return [str(app) + a[len("/app"):] if a.startswith("/app") else a for a in argv]


def _check_scores(output: Path) -> dict[str, float]:
    """scores.txt as CodaLab parses it: `key: value` per line, one colon, float values."""
    scores = {}
    for line in (output / "scores.txt").read_text().splitlines():
        if not line:
            continue
        label, value = line.split(":")  # CodaLab's parser: exactly one colon per line
        scores[label.strip()] = float(value)
    columns = [c.key for c in load_settings(ROOT / "competition" / "settings.yaml").columns]
    assert set(columns) <= set(scores), set(columns) - set(scores)
    assert (output / "scores.json").is_file() and (output / "detailed_results.html").is_file()
    return scores


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emulation")
    result = build_bundles(root=ROOT, out_dir=tmp / "dist", log=lambda line: None)
    check = next(p for p in result.included if p.settings.label == "Check")
    submission = pack_submission(SUBMISSION, tmp / "submission.zip").path
    with zipfile.ZipFile(result.codalab_bundle) as zf:
        doc = yaml.safe_load(zf.read("competition.yaml"))
        phase = next(p for p in doc["phases"].values() if p["label"] == "Check")
        items = {key: zf.read(phase[key]) for key in ("ingestion_program", "scoring_program", "input_data", "reference_data")}
    return tmp, items, submission, check


def test_codalab_v1_layout(built):
    tmp, items, submission, _ = built
    run = tmp / "codalab" / "run"
    _unzip(items["ingestion_program"], run / "ingestion_program")
    _unzip(submission, run / "program")
    _unzip(items["input_data"], run / "input")
    (run / "output").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"$PYTHONPATH:{run / 'program'}"  # literally, as docker -e receives it
    argv = _codalab_v1(_metadata_command(run / "ingestion_program"), "ingestion", str(run))
    done = _run(argv, cwd=run, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not (run / "output" / "metadata").exists(), "ingestion must not write the platform's metadata file"
    (run / "output" / "metadata").write_text("exitCode: 0\n")  # what the worker adds

    # Scoring step: a fresh run folder; program = scoring program, input = ref + res.
    score_run = tmp / "codalab" / "score_run"
    _unzip(items["scoring_program"], score_run / "program")
    _unzip(items["reference_data"], score_run / "input" / "ref")
    (score_run / "input").mkdir(exist_ok=True)
    os.rename(run / "output", score_run / "input" / "res")
    (score_run / "output").mkdir()
    argv = _codalab_v1(_metadata_command(score_run / "program"), "scoring", str(score_run))
    done = _run(argv, cwd=score_run, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-4000:]
    _check_scores(score_run / "output")


def test_codabench_layout(built):
    tmp, items, submission, _ = built
    app = tmp / "codabench" / "app"
    _unzip(items["ingestion_program"], app / "program")
    _unzip(submission, app / "ingested_program")
    _unzip(items["input_data"], app / "input_data")
    (app / "output").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = _at(app, _codabench(_metadata_command(app / "program"), "ingestion"))
    done = _run(argv, cwd=app / "program", env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not (app / "output" / "metadata").exists()

    score = tmp / "codabench" / "score_app"
    _unzip(items["scoring_program"], score / "program")
    _unzip(items["reference_data"], score / "input" / "ref")
    os.rename(app / "output", score / "input" / "res")
    (score / "output").mkdir()
    argv = _at(score, _codabench(_metadata_command(score / "program"), "scoring"))
    done = _run(argv, cwd=score / "program", env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    _check_scores(score / "output")


def test_scoring_fails_loudly_without_ingestion_output(built):
    """Codabench ignores ingestion's exit code: scoring must fail when res/ is empty."""
    tmp, items, _, _ = built
    score = tmp / "codabench" / "no_res"
    _unzip(items["scoring_program"], score / "program")
    _unzip(items["reference_data"], score / "input" / "ref")
    (score / "input" / "res").mkdir(parents=True)
    (score / "output").mkdir()
    argv = _at(score, _codabench(_metadata_command(score / "program"), "scoring"))
    done = _run(argv, cwd=score / "program", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode != 0
    assert not (score / "output" / "scores.txt").exists() or "score" not in (score / "output" / "scores.txt").read_text()
