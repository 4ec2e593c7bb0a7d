"""End to end through the built bundles, as each platform's worker runs them (no docker).

Both bundles are built into a temporary folder with ``build_bundles``; the
programs, data and a packed submission are unzipped from them into the folder
layout of

- CodaLab's worker (competitions-v1-compute-worker worker.py), from
  ``competition_bundle.zip``: a run folder with ``program/`` (the submission,
  then the scoring program), ``ingestion_program/``, ``input/`` (input data,
  then ``ref/`` and ``res/``), ``output/``; the command run from the run folder
  with ``PYTHONPATH=$PYTHONPATH:<run>/program``; after each step the worker
  writes its own ``metadata`` file into ``output/``;
- Codabench's worker (compute_worker.py), from ``codabench_bundle.zip`` (the
  ``version: 2`` yaml's task): ``/app/program`` (the program being run, also
  the working directory), ``/app/ingested_program``, ``/app/input_data``,
  ``/app/input/{ref,res}``, ``/app/output``, no PYTHONPATH. ``/app`` is
  emulated by a temporary folder.

The commands come from the programs' ``metadata`` with the platforms' own
substitutions and splits (``unlearning_challenge.platforms.commands``), run without a shell.

Always on: a tiny phase (conftest's ``tiny_phase``: N=3, 16x16 images) stands
in for the Check phase in a copy of the root ``competition.yaml``, and the
sample submission is run. Its input manifest's per-run budget is raised in a
copy of the input data (a tiny model retrains in a few seconds, and 20% of
that is less than the sample's epoch needs on a busy CPU); the command line
stays the platforms' own.

Always on too (marked ``slow``: about a minute and a half on one core, in every ``make test``):
the real Check phase as ``competition.yaml`` gives it (the committed ``input_data/`` and
``reference_data/``, the phase's budget, the programs' own metadata) with the
``do_nothing`` baseline, whose 32 runs cost only their evaluation: the scores are then
known from the data (the original model's accuracies, nothing forgotten). It goes through
Codabench's worker; both bundles carry the same bytes for each of the phase's programs and
data (checked), and the tiny phase takes each platform's layout, so CodaLab's worker would
repeat the same runs. Scoring without an ingestion output fails loudly on this phase too,
on both platforms.

On request (5 to 10 minutes on two cores): the sample submission on the real Check
phase, 32 trainings per platform, which must fit the phase's time budget:

    EMULATE_PLATFORMS=1 .venv/bin/python -m pytest tests/test_bundle_emulation.py

The real phase's tests are skipped when its data are not generated (``make reference``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from unlearning_challenge.artifacts import read_ingestion_manifest, read_input_manifest, read_reference_manifest
from unlearning_challenge.platforms.build import BuildResult, build_bundles
from unlearning_challenge.platforms.commands import codabench_variables, codalab_variables, metadata_argv, metadata_command
from unlearning_challenge.platforms.competition import load_competition
from unlearning_challenge.platforms.submission_zip import pack_submission

ROOT = Path(__file__).resolve().parents[1]
COMPETITION = ROOT / "competition.yaml"
SAMPLE = ROOT / "starting_kit" / "sample_submission"
DO_NOTHING = ROOT / "starting_kit" / "baselines" / "do_nothing"
TIMEOUT = 1800
TINY_BUDGET_SECONDS = 120.0  # per run, before the ingestion scales it to this machine's speed
TINY_QUEUE = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"  # a made-up vhost, to see it reach the v2 yaml
PLATFORMS = ("codalab", "codabench")

# The sample submission on the real Check phase: only when asked, and once the phase's data exist.
when_asked = pytest.mark.skipif(not os.environ.get("EMULATE_PLATFORMS"), reason="set EMULATE_PLATFORMS=1 to run (minutes)")
with_check_data = pytest.mark.skipif(
    not (ROOT / "input_data" / "manifest.json").is_file() or not (ROOT / "reference_data" / "manifest.json").is_file(),
    reason="the Check phase's data are not generated yet (make reference PHASE=phases/default.yaml)",
)


# --------------------------------------------------------------------------- helpers


def _unzip(data: bytes | Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    source = data if isinstance(data, Path) else io.BytesIO(data)
    with zipfile.ZipFile(source) as zf:
        zf.extractall(folder)


def _codalab_argv(program_dir: Path, step: str, run: Path) -> list[str]:
    """The program's command as CodaLab v1's worker runs it in ``run`` (its ``$shared`` beside it)."""
    variables = codalab_variables(step, run, run.parent / "shared")
    return metadata_argv(metadata_command(program_dir), variables, "codalab")


def _codabench_argv(app: Path, kind: str) -> list[str]:
    """The command of ``app/program`` as Codabench's worker runs it, its /app moved to ``app``."""
    variables = codabench_variables(kind, is_scoring=kind == "program")
    return _at(app, metadata_argv(metadata_command(app / "program"), variables, "codabench"))


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "1")  # the test machine's CPUs are shared
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # The image runs python3 from its virtual environment; here the test's interpreter stands in.
    argv = [sys.executable if argv[0] == "python3" else argv[0], *argv[1:]]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _at(app: Path, argv: list[str]) -> list[str]:
    """Codabench's /app paths, moved under a temporary folder."""
    return [str(app) + a[len("/app"):] if a.startswith("/app") else a for a in argv]


def _log(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-4000:]}"


def _assert_no_metadata(output: Path, step: str) -> None:
    written = [p.relative_to(output).as_posix() for p in output.rglob("metadata")]
    assert not written, f"the {step} wrote {written} into its output: the platform writes its own `metadata` there"


def _check_scores(output: Path, columns: list[str]) -> dict[str, float]:
    """scores.txt as CodaLab parses it: `key: value` per line, one colon, float values."""
    scores = {}
    for line in (output / "scores.txt").read_text().splitlines():
        if not line:
            continue
        assert line.count(":") == 1, f"CodaLab splits each line on its one colon: {line!r}"
        label, value = line.split(":")
        assert value.startswith(" "), f"a space follows the colon: {line!r}"
        scores[label.strip()] = float(value)
    assert set(columns) <= set(scores), f"leaderboard columns missing from scores.txt: {set(columns) - set(scores)}"
    as_json = json.loads((output / "scores.json").read_text())
    assert set(columns) <= set(as_json), set(columns) - set(as_json)
    html = (output / "detailed_results.html").read_text()
    assert len(html) > 2000 and html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    return scores


@dataclass
class Built:
    """Both bundles of one phase, and a packed submission."""

    tmp: Path
    result: BuildResult
    label: str
    submission: Path
    columns: list[str]

    def items(self, platform: str) -> dict[str, bytes]:
        """The phase's program and data zips, as the platform finds them in its bundle."""
        keys = ("ingestion_program", "scoring_program", "input_data", "reference_data")
        if platform == "codalab":
            with zipfile.ZipFile(self.result.codalab_bundle) as zf:
                doc = yaml.safe_load(zf.read("competition.yaml"))
                phase = next(p for p in doc["phases"].values() if p["label"] == self.label)
                return {key: zf.read(phase[key]) for key in keys}
        with zipfile.ZipFile(self.result.codabench_bundle) as zf:
            doc = yaml.safe_load(zf.read("competition.yaml"))
            phase = next(p for p in doc["phases"] if p["name"] == self.label)
            task = next(t for t in doc["tasks"] if t["index"] == phase["tasks"][0])
            return {key: zf.read(task[key]) for key in keys}


def _build(tmp: Path, competition_path: Path, label: str, submission: Path) -> Built:
    result = build_bundles(competition_path, root=ROOT, out_dir=tmp / "dist", log=lambda line: None)
    assert label in [plan.phase.name for plan in result.included], [p.explanation() for p in result.plans]
    packed = pack_submission(submission, tmp / "submission.zip").path
    columns = [c.key for c in load_competition(competition_path).leaderboard.columns]
    return Built(tmp, result, label, packed, columns)


# --------------------------------------------------------------------------- the two workers


def run_codalab(built: Built, where: str) -> Path:
    """Ingestion then scoring in CodaLab v1's layout; returns the scoring output folder."""
    items = built.items("codalab")
    run = built.tmp / where / "run"
    _unzip(items["ingestion_program"], run / "ingestion_program")
    _unzip(built.submission, run / "program")
    _unzip(items["input_data"], run / "input")
    (run / "output").mkdir()
    argv = _codalab_argv(run / "ingestion_program", "ingestion", run)
    # The worker passes the variable literally (docker -e), unexpanded.
    done = _run(argv, cwd=run, env=_env(pythonpath=f"$PYTHONPATH:{run / 'program'}"))
    assert done.returncode == 0, _log(done)
    _assert_no_metadata(run / "output", "ingestion")
    (run / "output" / "metadata").write_text("elapsedTime: 1.0\nexitCode: 0\n")  # what the worker adds

    # Scoring step: a fresh run folder; program = scoring program, input = ref + res.
    score_run = built.tmp / where / "score_run"
    _unzip(items["scoring_program"], score_run / "program")
    _unzip(items["reference_data"], score_run / "input" / "ref")
    shutil.move(run / "output", score_run / "input" / "res")
    (score_run / "output").mkdir()
    argv = _codalab_argv(score_run / "program", "scoring", score_run)
    done = _run(argv, cwd=score_run, env=_env())
    assert done.returncode == 0, _log(done)
    _assert_no_metadata(score_run / "output", "scoring")
    (score_run / "output" / "metadata").write_text("elapsedTime: 1.0\nexitCode: 0\n")
    return score_run / "output"


def run_codabench(built: Built, where: str) -> Path:
    """Ingestion then scoring in Codabench's layout; returns the scoring output folder."""
    items = built.items("codabench")
    app = built.tmp / where / "app"
    _unzip(items["ingestion_program"], app / "program")
    _unzip(built.submission, app / "ingested_program")
    _unzip(items["input_data"], app / "input_data")
    (app / "output").mkdir()
    argv = _codabench_argv(app, "ingestion")
    done = _run(argv, cwd=app / "program", env=_env())
    assert done.returncode == 0, _log(done)
    _assert_no_metadata(app / "output", "ingestion")

    score = built.tmp / where / "score_app"
    _unzip(items["scoring_program"], score / "program")
    _unzip(items["reference_data"], score / "input" / "ref")
    shutil.move(app / "output", score / "input" / "res")
    (score / "output").mkdir()
    argv = _codabench_argv(score, "program")
    done = _run(argv, cwd=score / "program", env=_env())
    assert done.returncode == 0, _log(done)
    _assert_no_metadata(score / "output", "scoring")
    return score / "output"


def score_without_ingestion_output(built: Built, platform: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The scoring step when ingestion left nothing (crashed, killed at the time limit)."""
    items = built.items(platform)
    base = built.tmp / f"{platform}_no_res"
    _unzip(items["scoring_program"], base / "program")
    _unzip(items["reference_data"], base / "input" / "ref")
    (base / "input" / "res").mkdir(parents=True)
    (base / "output").mkdir()
    if platform == "codalab":
        (base / "input" / "res" / "metadata").write_text("elapsedTime: 1.0\nexitCode: 1\n")  # all the worker left
        argv = _codalab_argv(base / "program", "scoring", base)
        return _run(argv, cwd=base, env=_env()), base / "output"
    argv = _codabench_argv(base, "program")
    return _run(argv, cwd=base / "program", env=_env()), base / "output"


RUNNERS = {"codalab": run_codalab, "codabench": run_codabench}


# --------------------------------------------------------------------------- the tiny phase (always on)


@pytest.fixture(scope="module")
def tiny_built(tiny_phase, tmp_path_factory) -> Built:
    """competition.yaml with its Check phase pointed at the tiny phase, built."""
    input_dir, reference_dir, _ = tiny_phase
    tmp = tmp_path_factory.mktemp("emulation_tiny")
    inputs = tmp / "input_data"
    shutil.copytree(input_dir, inputs)
    manifest = json.loads((inputs / "manifest.json").read_text())
    manifest["time_budget_seconds"] = TINY_BUDGET_SECONDS
    (inputs / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")

    raw = yaml.safe_load(COMPETITION.read_text())
    check = next(p for p in raw["phases"] if p["name"] == "Check")
    task = raw["tasks"][check["tasks"][0]]
    check["unlearning"]["config"] = str(inputs / "phase.yaml")
    check.update(public_data=str(inputs))
    task.update(input_data=str(inputs), reference_data=str(reference_dir))
    raw["phases"], raw["tasks"] = [check], [task]  # the other phases' private data never exist here
    raw["queue"] = TINY_QUEUE
    competition_path = tmp / "competition.yaml"
    competition_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return _build(tmp, competition_path, "Check", SAMPLE)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sample_submission_through_each_platforms_worker(tiny_built, platform):
    output = RUNNERS[platform](tiny_built, platform)
    scores = _check_scores(output, tiny_built.columns)
    assert scores["num_models"] == 3
    assert 0 <= scores["score"] <= 1 and 0 <= scores["forget_quality"] <= 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_scoring_fails_loudly_without_ingestion_output(tiny_built, platform):
    """Codabench ignores ingestion's exit code: scoring must fail when res/ holds no ingestion output."""
    done, output = score_without_ingestion_output(tiny_built, platform)
    assert done.returncode != 0, _log(done)
    assert "ingestion output is missing" in done.stderr, _log(done)
    assert not (output / "scores.txt").exists()


def test_codabench_v2_bundle_is_complete(tiny_built):
    """What Codabench's v2 unpacker needs: the yaml, the image, the queue, and every file it names."""
    competition = load_competition(COMPETITION)
    with zipfile.ZipFile(tiny_built.result.codabench_bundle) as zf:
        names = set(zf.namelist())
        assert [n for n in names if n.endswith((".yaml", ".yml"))] == ["competition.yaml"]
        doc = yaml.safe_load(zf.read("competition.yaml"))
        assert doc["version"] == 2
        assert doc["docker_image"] == competition.docker_image
        assert doc["queue"] == TINY_QUEUE
        referenced = [doc["image"], doc["terms"], *(page["file"] for page in doc["pages"])]
        task_indexes = {task["index"] for task in doc["tasks"]}
        assert task_indexes and len(task_indexes) == len(doc["tasks"])
        for task in doc["tasks"]:
            for key in ("ingestion_program", "scoring_program", "input_data", "reference_data"):
                referenced.append(task[key])
                assert task[key].endswith(".zip")
                nested = zipfile.ZipFile(io.BytesIO(zf.read(task[key])))
                assert nested.testzip() is None
                if key.endswith("_program"):
                    assert "metadata" in nested.namelist(), f"{task[key]} has no metadata at its root"
        for phase in doc["phases"]:
            assert set(phase["tasks"]) <= task_indexes
            referenced.append(phase["starting_kit"])
            if "public_data" in phase:
                referenced.append(phase["public_data"])
        missing = sorted(set(referenced) - names)
        assert not missing, f"the v2 yaml names files the bundle lacks: {missing}"
        assert [phase["name"] for phase in doc["phases"]] == ["Check"]
        board = doc["leaderboards"][0]
        assert [c["key"] for c in board["columns"]] == tiny_built.columns
        # The same program zips as the CodaLab bundle: one build, two yamls.
        with zipfile.ZipFile(tiny_built.result.codalab_bundle) as other:
            for program in ("ingestion_program.zip", "scoring_program.zip"):
                assert zf.read(program) == other.read(program)


# --------------------------------------------------------------------------- the real Check phase


def run_on_both_platforms(built: Built, where: str) -> dict[str, Future]:
    """Each platform's chain (ingestion, then scoring) on ``built``, the two side by side.

    Each ingestion evaluates its models on one thread (``OMP_NUM_THREADS=1``), so on two
    cores the pair takes about the time of one. Returns a finished future per platform:
    ``result()`` is its scoring output folder, or raises what failed in its chain.
    """
    with ThreadPoolExecutor(max_workers=len(PLATFORMS)) as pool:
        return {platform: pool.submit(RUNNERS[platform], built, f"{platform}_{where}") for platform in PLATFORMS}


def _ingestion_runs(output: Path) -> list[str]:
    """The status of each run in the ingestion output that the scoring step read (``input/res`` beside ``output``)."""
    return [run.status for run in read_ingestion_manifest(output.parent / "input" / "res").runs]


@pytest.fixture(scope="module")
def check_built(tmp_path_factory) -> Built:
    return _build(tmp_path_factory.mktemp("emulation_check"), COMPETITION, "Check", DO_NOTHING)


@with_check_data
def test_both_bundles_carry_the_same_check_phase(check_built):
    """The programs and data each platform unzips for the Check phase are the same bytes: the real phase's
    run through one platform's worker (below) stands for both; the tiny phase takes each one's layout."""
    codalab, codabench = check_built.items("codalab"), check_built.items("codabench")
    assert codalab.keys() == codabench.keys()
    for key, data in codalab.items():
        assert data == codabench[key], f"the Check phase's {key} differs between the two bundles"


@pytest.mark.slow
@with_check_data
def test_check_phase_through_codabenchs_worker(check_built):
    """do_nothing returns the original model: every unlearned model is the original, whose accuracies
    the input data record, and nothing is forgotten."""
    output = run_codabench(check_built, "codabench_check")
    scores = _check_scores(output, check_built.columns)
    inputs, reference = read_input_manifest(ROOT / "input_data"), read_reference_manifest(ROOT / "reference_data")
    assert _ingestion_runs(output) == ["ok"] * inputs.num_models
    assert scores["num_models"] == inputs.num_models == reference.num_models
    original, retrained = inputs.original, reference.retrained
    for split in ("retain", "test", "forget"):
        assert scores[f"{split}_accuracy_unlearned"] == pytest.approx(getattr(original, f"{split}_accuracy"), abs=1e-6)
        assert scores[f"{split}_accuracy_retrained"] == pytest.approx(getattr(retrained, f"{split}_accuracy"), abs=1e-6)
    assert scores["retain_accuracy_ratio"] == pytest.approx(original.retain_accuracy / retrained.retain_accuracy)
    assert scores["test_accuracy_ratio"] == pytest.approx(original.test_accuracy / retrained.test_accuracy)
    assert scores["forget_quality"] < 0.02 and scores["score"] < 0.02, "the original model forgot nothing"
    assert 0 < scores["mean_run_seconds"] < inputs.time_budget_seconds


@with_check_data
@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_phase_scoring_fails_loudly_without_ingestion_output(check_built, platform):
    done, output = score_without_ingestion_output(check_built, platform)
    assert done.returncode != 0, _log(done)
    assert "ingestion output is missing" in done.stderr, _log(done)
    assert not (output / "scores.txt").exists()


@pytest.fixture(scope="module")
def check_sample_outputs(tmp_path_factory) -> tuple[Built, dict[str, Future]]:
    built = _build(tmp_path_factory.mktemp("emulation_check_sample"), COMPETITION, "Check", SAMPLE)
    return built, run_on_both_platforms(built, "check_sample")


@pytest.mark.slow
@when_asked
@with_check_data
@pytest.mark.parametrize("platform", PLATFORMS)
def test_sample_submission_on_check_phase_through_each_platforms_worker(check_sample_outputs, platform):
    """The sample submission's 32 trainings fit the real phase's budget on this machine."""
    built, outputs = check_sample_outputs
    output = outputs[platform].result()
    scores = _check_scores(output, built.columns)
    assert _ingestion_runs(output) == ["ok"] * read_input_manifest(ROOT / "input_data").num_models
    assert 0 <= scores["score"] <= 1 and 0 <= scores["forget_quality"] <= 1
