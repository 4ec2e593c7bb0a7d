"""The bundle builder: CodaLab v1.5 and Codabench v2 bundles from the root competition.yaml.

The builder runs on a small copy of the repository (competition.yaml, programs,
package, pages, starting kit) with fake phase data, so the tests are fast and
do not depend on `make reference` having run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from unlearning_challenge import cli
from unlearning_challenge.config import PhaseConfig, ReferenceConfig, ScoringConfig, dump_config, load_config
from unlearning_challenge.deadline import STEP_TIME_LIMIT_FILE, read_step_time_limit
from unlearning_challenge.platforms.build import build_bundles
from unlearning_challenge.platforms.commands import codabench_variables, codalab_variables, metadata_argv
from unlearning_challenge.platforms.competition import TimeLimitSettings, competition_from_dict, load_competition
from unlearning_challenge.platforms.dialects import (
    CODALAB_COLUMN_KEYS,
    CODALAB_LEADERBOARD_KEYS,
    CODALAB_PHASE_KEYS,
    CODALAB_TOP_KEYS,
)
from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.platforms.phases import (
    execution_time_limit,
    plan_phases,
    runs_that_fit,
    step_time_limit_for,
)
from unlearning_challenge.platforms.entry_script import ENTRY_SCRIPTS, entry_script
from unlearning_challenge.platforms.programs import (
    METADATA_KEYS,
    check_metadata_command,
    program_zip,
    read_program_metadata,
)

ROOT = Path(__file__).resolve().parents[1]
COMPETITION = ROOT / "competition.yaml"
N_MODELS = 8
BUDGET = 12.5


# --------------------------------------------------------------------------- fixtures


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _write_phase_data(root: Path, config_rel: str, input_rel: str, reference_rel: str, name: str = "check",
                      **sections) -> None:
    config = PhaseConfig(name=name, reference=ReferenceConfig(num_models=N_MODELS), **sections)
    (root / config_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / config_rel).write_text(dump_config(config))
    common = {
        "format_version": 1,
        "phase": name,
        "config_fingerprint": config.fingerprint(),
        "split_fingerprint": "0" * 64,
        "num_models": N_MODELS,
    }
    inputs = root / input_rel
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "phase.yaml").write_text(dump_config(config))
    (inputs / "dataset.npz").write_bytes(b"dataset bytes")
    (inputs / "original.safetensors").write_bytes(b"weights bytes")
    (inputs / "manifest.json").write_text(json.dumps(
        {**common, "format": "unlearning-challenge/input", "time_budget_seconds": BUDGET}))
    reference = root / reference_rel
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "phase.yaml").write_text(dump_config(config))
    (reference / "reference.npz").write_bytes(b"reference bytes")
    (reference / "manifest.json").write_text(json.dumps({**common, "format": "unlearning-challenge/reference"}))


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A minimal repository: the real competition.yaml, programs, package, pages and kit; fake Check data."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("competition", "ingestion_program", "scoring_program", "pages", "starting_kit"):
        _copy_tree(ROOT / name, root / name)
    shutil.copy(COMPETITION, root / "competition.yaml")
    _copy_tree(ROOT / "src" / "unlearning_challenge", root / "src" / "unlearning_challenge")
    # Caches in the package and the kit must stay out of the zips.
    cache = root / "src" / "unlearning_challenge" / "__pycache__"
    cache.mkdir()
    (cache / "bundle.cpython-311.pyc").write_bytes(b"\0")
    (root / "starting_kit" / "baselines" / "finetune" / "__pycache__").mkdir()
    (root / "starting_kit" / "baselines" / "finetune" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    _write_phase_data(root, "phases/default.yaml", "input_data", "reference_data")
    return root


def _build(repo: Path, out: str = "dist", competition: str = "competition.yaml"):
    lines: list[str] = []
    result = build_bundles(competition, root=repo, out_dir=out, log=lines.append)
    return result, lines


def _read_zip(data_or_path) -> zipfile.ZipFile:
    if isinstance(data_or_path, (str, Path)):
        return zipfile.ZipFile(data_or_path)
    return zipfile.ZipFile(io.BytesIO(data_or_path))


def _yaml(zf: zipfile.ZipFile) -> dict:
    return yaml.safe_load(zf.read("competition.yaml"))


# --------------------------------------------------------------------------- competition.yaml


def test_the_real_competition_file_loads_and_names_the_three_phases():
    competition = load_competition(COMPETITION)
    assert [p.name for p in competition.phases] == ["Check", "Feedback", "Final"]
    check, feedback, final = competition.phases
    assert (check.input_data, check.reference_data, check.config) == ("input_data", "reference_data", "phases/default.yaml")
    assert check.public_data and not feedback.public_data and not final.public_data
    for phase in (feedback, final):
        assert phase.input_data.startswith("data/") and phase.reference_data.startswith("data/")
        assert phase.make_hint is None
    columns = competition.leaderboard.columns
    assert [c.key for c in columns][:5] == [
        "score", "forget_quality", "retain_accuracy_ratio", "test_accuracy_ratio", "mean_run_seconds"]
    assert {c.key: c.sorting for c in columns}["mean_run_seconds"] == "asc"
    for page in [competition.terms, *(page.file for page in competition.pages)]:
        assert (ROOT / page).is_file(), page
    assert (ROOT / competition.image).read_bytes().startswith(b"\x89PNG")
    for phase in competition.phases:
        assert (ROOT / phase.starting_kit / "README.md").is_file()
    assert check.execution_time_limit == 600 and competition.leaderboard.submission_rule == "Force_Last"


def _raw_competition() -> dict:
    return yaml.safe_load(COMPETITION.read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(version=1), "version must be 2 (Codabench's competition.yaml format), got 1"),
    (lambda s: s.update(codabench_queue="x"), "competition.yaml: unknown top-level key(s) ['codabench_queue']"),
    (lambda s: s["phases"][0]["unlearning"].update(color="red"),
     "phase 'Check': 'unlearning.color' must be white, orange, yellow, green, blue or purple, got 'red'"),
    (lambda s: s["phases"][0].update(colour="red"), "unknown key(s) ['colour'] in 'phases[0]'"),
    (lambda s: s["phases"][0]["unlearning"].pop("config"), "phase 'Check': missing required key 'unlearning.config'"),
    (lambda s: s["phases"][1].update(start=s["phases"][0]["start"]), "must start at least two days after"),
    (lambda s: s["pages"].pop(2), "missing ['data']"),
    (lambda s: s.pop("terms"), "competition.yaml: missing required key 'terms'"),
    (lambda s: s["phases"][0].update(name="x" * 51), "CodaLab allows at most 50"),
    (lambda s: s["phases"][0].update(index=3), "'phases[0].index' must be 0 (listed in index order), got 3"),
    (lambda s: s["phases"][0].update(tasks=[0, 1]), "phase 'Check': tasks must list one task index"),
    (lambda s: s["phases"][0].update(tasks=[7]), "phase 'Check': tasks names task 7; the tasks' indexes are [0, 1, 2]"),
    (lambda s: s["phases"][0].update(public_data="elsewhere"),
     "phase 'Check': public_data must be the phase's input_data folder (input_data) or absent, got 'elsewhere'"),
    (lambda s: s["phases"][0].update(end=dt.date(2023, 7, 10)), "phase 'Check' must end before phase 'Feedback' starts"),
    (lambda s: s["leaderboards"][0]["columns"][0].update(sorting="up"),
     "'leaderboards[0].columns[0].sorting' must be asc or desc, got 'up'"),
    (lambda s: s["leaderboards"].append(dict(s["leaderboards"][0], index=1)), "leaderboards must hold one leaderboard"),
    (lambda s: s["leaderboards"][0]["columns"][1].update(key="forget_qualty"),
     "leaderboards[0].columns[1].key 'forget_qualty' is not a number the scoring program writes to scores.txt; "
     "choose one of clopper_pearson_alpha, forget_accuracy_retrained"),
    (lambda s: s["phases"][0].update(start="June 28"),
     "phase 'Check': 'start' must be a date written YYYY-MM-DD (unquoted), got 'June 28'"),
    (lambda s: s.update(docker_image="My Image"), "is not a valid image name"),
    (lambda s: s["unlearning"]["time_limit"].update(safety_factor=0.5),
     "'unlearning.time_limit.safety_factor' must be at least 1.0, got 0.5"),
    (lambda s: s["unlearning"]["time_limit"].update(startup_seconds="5m"),
     "'unlearning.time_limit.startup_seconds' must be a number (seconds), got '5m'"),
    (lambda s: s["phases"][0].update(max_submissions=2.5), "phase 'Check': 'max_submissions' must be an integer, got 2.5"),
    (lambda s: s["phases"][0].update(max_submissions=-1), "phase 'Check': 'max_submissions' must be at least 0, got -1"),
    (lambda s: s["leaderboards"][0]["columns"][0].update(precision=4.0),
     "'leaderboards[0].columns[0].precision' must be an integer, got 4.0"),
    (lambda s: s.update(registration_auto_approve="yes"), "'registration_auto_approve' must be true or false, got 'yes'"),
    (lambda s: s.update(tasks=[]), "'tasks' must be a non-empty list"),
    (lambda s: s["phases"].__setitem__(0, 3), "competition.yaml: 'phases[0]' must be a mapping, got 3"),
    (lambda s: s["leaderboards"][0].update(submission_rule="Force_First"),
     "'leaderboards[0].submission_rule' must be Add, Add_And_Delete, Add_And_Delete_Multiple, "
     "Force_Last, Force_Latest_Multiple or Force_Best, got 'Force_First'"),
])
def test_a_bad_competition_file_is_refused_with_a_clear_message(edit, message):
    raw = _raw_competition()
    edit(raw)
    with pytest.raises(BundleError, match=re.escape(message)):
        competition_from_dict(raw, source="competition.yaml")


def test_execution_time_limit_formula():
    limits = load_competition(COMPETITION).time_limit
    expected = limits.startup_seconds + 512 * (30.0 * limits.safety_factor + limits.per_run_overhead_seconds)
    assert execution_time_limit(512, 30.0, limits) == int(expected) + (expected % 1 > 0)
    assert execution_time_limit(8, 0.1, TimeLimitSettings(1.5, 0.0, 0.0)) == 2  # rounded up
    slow_workers = TimeLimitSettings(safety_factor=1.5, per_run_overhead_seconds=10, startup_seconds=100,
                                            worker_speed_ratio=3.0)
    assert execution_time_limit(10, 20.0, slow_workers, scaled_budget=True) == 100 + 10 * (20 * 3 * 1.5 + 10)
    assert execution_time_limit(10, 20.0, slow_workers, scaled_budget=False) == 100 + 10 * (20 * 1.5 + 10)
    with pytest.raises(BundleError):
        execution_time_limit(0, 30.0, limits)


# --------------------------------------------------------------------------- phases


def test_only_phases_with_data_are_included_and_the_others_are_explained(repo):
    result, lines = _build(repo)
    assert [p.phase.name for p in result.included] == ["Check"]
    check = result.included[0]
    limits = load_competition(COMPETITION).time_limit
    assert check.num_models == N_MODELS and check.time_budget_seconds == BUDGET
    assert check.computed_time_limit == execution_time_limit(N_MODELS, BUDGET, limits, scaled_budget=True)
    assert check.execution_time_limit == 600  # competition.yaml's override
    text = "\n".join(lines)
    assert "Check: included (N=8" in text
    assert ("Feedback: left out: phase config phases/challenge.yaml does not exist; "
            "input data folder data/feedback/input_data does not exist; "
            "reference data folder data/feedback/reference_data does not exist; create the data with "
            "`python -m unlearning_challenge reference --config phases/challenge.yaml "
            "--input-data data/feedback/input_data --reference-data data/feedback/reference_data`") in lines
    assert "Final: left out: phase config phases/final.yaml does not exist" in text
    assert "reference data folder data/final/reference_data does not exist" in text
    assert "warning: queue is not set" in text


def test_a_phase_whose_data_come_from_another_config_is_left_out(repo):
    config = load_config(repo / "phases/default.yaml")
    other = dump_config(config).replace("epochs: 30", "epochs: 12")
    assert other != dump_config(config)
    (repo / "phases" / "default.yaml").write_text(other)
    with pytest.raises(BundleError, match="no phase can be included"):
        _build(repo)
    plan = plan_phases(load_competition(repo / "competition.yaml"), repo)[0]
    assert plan.reasons == ["input data in input_data was made from another phase config than phases/default.yaml",
                            "reference data in reference_data was made from another phase config than phases/default.yaml"]
    assert plan.hint == "make reference PHASE=phases/default.yaml"


def test_missing_data_files_are_named(repo):
    (repo / "input_data" / "original.safetensors").unlink()
    plan = plan_phases(load_competition(repo / "competition.yaml"), repo)[0]
    assert plan.explanation() == (
        "input data folder input_data lacks original.safetensors; "
        "create the data with `make reference PHASE=phases/default.yaml`")


def test_all_three_phases_when_all_data_exist(repo):
    _write_phase_data(repo, "phases/challenge.yaml", "data/feedback/input_data", "data/feedback/reference_data", "feedback")
    _write_phase_data(repo, "phases/final.yaml", "data/final/input_data", "data/final/reference_data", "final")
    result, _ = _build(repo)
    assert [p.phase.name for p in result.included] == ["Check", "Feedback", "Final"]
    with _read_zip(result.codalab_bundle) as zf:
        doc = _yaml(zf)
        assert sorted(doc["phases"]) == [1, 2, 3]
        assert [doc["phases"][i]["label"] for i in (1, 2, 3)] == ["Check", "Feedback", "Final"]
        assert "public_data" in doc["phases"][1] and "public_data" not in doc["phases"][2]
        assert doc["phases"][2]["input_data"] == "feedback_input_data.zip"
    with _read_zip(result.codabench_bundle) as zf:
        doc = _yaml(zf)
        starts = [p["start"] for p in doc["phases"]]
        for phase, next_start in zip(doc["phases"], starts[1:]):
            assert phase["start"] < phase["end"] < next_start  # Codabench refuses overlapping phases
        assert "end" not in doc["phases"][-1]  # end_date: null
        assert [t["index"] for t in doc["tasks"]] == [0, 1, 2]
        assert [p["tasks"] for p in doc["phases"]] == [[0], [1], [2]]


# --------------------------------------------------------------------------- CodaLab bundle


def test_codalab_yaml_uses_only_keys_codalab_knows(repo):
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        doc = _yaml(zf)
    assert set(doc) <= CODALAB_TOP_KEYS, set(doc) - CODALAB_TOP_KEYS
    assert "version" not in doc and "queue" not in doc and "docker_image" not in doc
    assert set(doc["html"]) == {"overview", "evaluation", "data", "terms"}
    for phase in doc["phases"].values():
        assert set(phase) <= CODALAB_PHASE_KEYS, set(phase) - CODALAB_PHASE_KEYS
        assert phase["is_scoring_only"] is False
        assert phase["reference_data"].endswith(".zip")
        assert phase["scoring_program"] == "scoring_program.zip"
        assert phase["ingestion_program"] == "ingestion_program.zip"
        assert isinstance(phase["execution_time_limit"], int) and phase["execution_time_limit"] > 0
        assert len(phase["label"]) <= 50 and len(phase.get("description", "")) <= 1000
    board = doc["leaderboard"]
    assert set(board) == {"leaderboards", "columns"}
    for leaderboard in board["leaderboards"].values():
        assert set(leaderboard) <= CODALAB_LEADERBOARD_KEYS
    competition = load_competition(COMPETITION)
    assert list(board["columns"]) == [c.key for c in competition.leaderboard.columns]
    for key, column in board["columns"].items():
        assert set(column) <= CODALAB_COLUMN_KEYS
        assert column["leaderboard"]["label"] == competition.leaderboard.title
        assert len(key) <= 50 and len(column["label"]) <= 50
    assert doc["competition_docker_image"] == competition.docker_image


def test_codalab_yaml_dates_stay_dates(repo):
    """CodaLab (Python 2) parses start_date strings with parse_datetime, which rejects bare dates: emit yaml dates."""
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        text = zf.read("competition.yaml").decode()
    assert "start_date: 2023-06-28\n" in text
    assert "'2023" not in text and '"2023' not in text


def test_bundle_root_holds_competition_yaml_and_no_other_yaml(repo):
    result, _ = _build(repo)
    for path in (result.codalab_bundle, result.codabench_bundle):
        with _read_zip(path) as zf:
            names = zf.namelist()
            # CodaLab takes the first entry whose name contains ".yaml".
            assert [n for n in names if ".yaml" in n] == ["competition.yaml"]
            assert all("/" not in n for n in names), names
            doc = _yaml(zf)
            referenced = [doc["image"]]
            if "html" in doc:
                referenced += list(doc["html"].values())
                for phase in doc["phases"].values():
                    referenced += [v for k, v in phase.items() if k in (
                        "scoring_program", "ingestion_program", "input_data", "reference_data", "starting_kit", "public_data")]
            else:
                referenced += [doc["terms"]] + [p["file"] for p in doc["pages"]]
                for task in doc["tasks"]:
                    referenced += [v for k, v in task.items() if k.endswith(("_program", "_data"))]
                for phase in doc["phases"]:
                    referenced += [phase["starting_kit"]] + ([phase["public_data"]] if "public_data" in phase else [])
            assert set(referenced) <= set(names), set(referenced) - set(names)
            assert zf.read(doc["image"]).startswith(b"\x89PNG")


def test_nested_zips_have_their_files_at_the_root(repo):
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        nested = {n: _read_zip(zf.read(n)) for n in zf.namelist() if n.endswith(".zip")}
    assert set(nested) == {"ingestion_program.zip", "scoring_program.zip", "starting_kit.zip",
                           "check_input_data.zip", "check_reference_data.zip"}
    for name, inner in nested.items():
        names = inner.namelist()
        assert names == sorted(names)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names), name
        assert not any(n.endswith("/") for n in names), name  # no directory entries
        tops = {n.split("/")[0] for n in names}
        assert len(tops) > 1 or "/" not in names[0], f"{name} wraps its files in a folder: {tops}"
    for program, script in (("ingestion_program.zip", "ingestion.py"), ("scoring_program.zip", "score.py")):
        names = set(nested[program].namelist())
        assert {"metadata", script, "unlearning_challenge/__init__.py", "unlearning_challenge/platforms/build.py"} <= names
        metadata = yaml.safe_load(nested[program].read("metadata"))
        assert set(metadata) <= METADATA_KEYS
    assert set(nested["check_input_data.zip"].namelist()) == {
        "dataset.npz", "manifest.json", "original.safetensors", "phase.yaml", STEP_TIME_LIMIT_FILE}
    assert nested["check_input_data.zip"].read("dataset.npz") == b"dataset bytes"
    assert set(nested["check_reference_data.zip"].namelist()) == {"manifest.json", "phase.yaml", "reference.npz"}
    kit = set(nested["starting_kit.zip"].namelist())
    assert "README.md" in kit and "baselines/finetune/unlearning.py" in kit


def test_pages_are_rendered_with_the_phase_table(repo):
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        overview = zf.read("overview.html").decode()
        evaluation = zf.read("evaluation.html").decode()
    assert "{{" not in overview + evaluation
    assert "<td>Check</td>" in overview and "<td>Feedback</td>" not in overview
    assert f"<td>{N_MODELS}</td>" in evaluation
    # The fixture's config keeps the recipe's defaults: 20% of 30 epochs.
    assert f"<td>{BUDGET:.1f} s (about 6 retain epochs)</td>" in evaluation


def test_editing_the_title_changes_both_bundles_and_nothing_else(repo):
    before, _ = _build(repo, out="before")
    path = repo / "competition.yaml"
    text = path.read_text()
    assert "\ntitle: Machine Unlearning Challenge\n" in text
    path.write_text(text.replace("\ntitle: Machine Unlearning Challenge\n", "\ntitle: Forget Me Now\n"))
    after, _ = _build(repo, out="after")
    for bundle_zip in ("codalab_bundle", "codabench_bundle"):
        with _read_zip(getattr(before, bundle_zip)) as old, _read_zip(getattr(after, bundle_zip)) as new:
            old_doc, new_doc = _yaml(old), _yaml(new)
            assert (old_doc["title"], new_doc["title"]) == ("Machine Unlearning Challenge", "Forget Me Now")
            assert {**old_doc, "title": None} == {**new_doc, "title": None}
            assert old.namelist() == new.namelist()
            changed = sorted(name for name in old.namelist() if old.read(name) != new.read(name))
            # The pages that show the title ({{ title }}) change with it.
            assert changed == ["competition.yaml", "overview.html", "terms.html"], changed
            assert "Forget Me Now" in new.read("overview.html").decode()


def test_page_values_are_escaped(repo):
    path = repo / "competition.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["title"] = 'Forget "me" <now> & \'then\''
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        overview = zf.read("overview.html").decode()
    assert "<h2>Forget &#34;me&#34; &lt;now&gt; &amp; &#39;then&#39;</h2>" in overview
    assert "<table>" in overview  # the phase table is HTML, not escaped


def test_unknown_page_placeholder_is_an_error(repo):
    (repo / "pages" / "data.html").write_text("<p>{{ no_such_value }}</p>")
    with pytest.raises(BundleError, match="unknown placeholder"):
        _build(repo)


def test_rebuilding_gives_identical_bytes(repo):
    first, _ = _build(repo, out="dist")
    again, _ = _build(repo, out="dist2")
    assert first.codalab_bundle.read_bytes() == again.codalab_bundle.read_bytes()
    assert first.codabench_bundle.read_bytes() == again.codabench_bundle.read_bytes()
    os.utime(repo / "ingestion_program" / "metadata", (0, 0))  # timestamps do not matter
    third, _ = _build(repo, out="dist3")
    assert third.codalab_bundle.read_bytes() == first.codalab_bundle.read_bytes()
    assert not list((repo / "dist").glob("*.tmp")) and not list((repo / "dist").glob(".*"))


# --------------------------------------------------------------------------- Codabench bundle


def test_codabench_yaml_is_version_2_with_image_and_queue(repo):
    raw = yaml.safe_load((repo / "competition.yaml").read_text())
    raw["queue"] = "0b4c1c7e-1111-2222-3333-444455556666"
    (repo / "competition.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result, lines = _build(repo)
    assert not any("queue is not set" in line for line in lines)
    with _read_zip(result.codabench_bundle) as zf:
        doc = _yaml(zf)
    assert doc["version"] == 2
    assert doc["docker_image"] == raw["docker_image"]
    assert doc["queue"] == "0b4c1c7e-1111-2222-3333-444455556666"
    assert doc["terms"] == "terms.html" and {p["file"] for p in doc["pages"]} == {
        "overview.html", "evaluation.html", "data.html"}
    assert doc["registration_auto_approve"] is raw["registration_auto_approve"]
    (task,) = doc["tasks"]
    assert task["reference_data"] == "check_reference_data.zip"
    assert task["ingestion_program"] == "ingestion_program.zip"
    (phase,) = doc["phases"]
    assert phase["execution_time_limit"] == result.included[0].execution_time_limit
    (board,) = doc["leaderboards"]
    assert [c["key"] for c in board["columns"]] == [c["key"] for c in raw["leaderboards"][0]["columns"]]
    assert {c["key"]: c["sorting"] for c in board["columns"]}["mean_run_seconds"] == "asc"


def test_codabench_yaml_keeps_the_queue_key_when_unset(repo):
    result, _ = _build(repo)
    with _read_zip(result.codabench_bundle) as zf:
        doc = _yaml(zf)
    assert "queue" in doc and doc["queue"] is None


# --------------------------------------------------------------------------- programs


@pytest.mark.parametrize("program", ["ingestion_program", "scoring_program"])
def test_program_metadata_is_platform_safe(program):
    metadata = read_program_metadata(ROOT / program, program)
    command = metadata["command"]
    assert check_metadata_command(command, program) == []
    assert "'" not in command and '"' not in command and "/app" not in command
    assert not (ROOT / program / "unlearning_challenge").exists(), "the package is vendored at build time only"


@pytest.mark.parametrize("command, problem", [
    ("python3 '$program/ingestion.py'", "shell syntax"),
    ("python3 $program/ingestion.py | tee log", "shell syntax"),
    ("cd $program && python3 ingestion.py", "changes directory"),
    ("python3 /app/program/ingestion.py", "/app"),
    ("python3  $program/ingestion.py", "single spaces"),
    ("python3 $program/ingestion.py --ref $hidden", "$hidden is not substituted"),
    ("python3 $program/ingestion.py > $output/log", "shell syntax"),
    ("", "empty"),
])
def test_bad_metadata_commands_are_caught(command, problem):
    problems = check_metadata_command(command, "ingestion_program")
    assert any(problem in p for p in problems), problems


def test_commands_resolve_to_the_right_folders_on_both_platforms():
    ingestion = read_program_metadata(ROOT / "ingestion_program", "ingestion_program")["command"]
    scoring = read_program_metadata(ROOT / "scoring_program", "scoring_program")["command"]
    run, shared = "/tmp/codalab/tmpabc/run", "/tmp/codalab/tmpabc/tmpdef"
    assert metadata_argv(ingestion, codalab_variables("ingestion", run, shared), "codalab") == [
        "python3", f"{run}/ingestion_program/ingestion.py", "--input", f"{run}/input",
        "--output", f"{run}/output", "--submission", f"{run}/program"]
    assert metadata_argv(ingestion, codabench_variables("ingestion", is_scoring=False), "codabench") == [
        "python3", "/app/program/ingestion.py", "--input", "/app/input_data",
        "--output", "/app/output", "--submission", "/app/ingested_program"]
    assert metadata_argv(scoring, codalab_variables("scoring", run, shared), "codalab") == [
        "python3", f"{run}/program/score.py", "--input", f"{run}/input", "--output", f"{run}/output"]
    assert metadata_argv(scoring, codabench_variables("program", is_scoring=True), "codabench") == [
        "python3", "/app/program/score.py", "--input", "/app/input", "--output", "/app/output"]


@pytest.mark.parametrize("program, script, module", [
    ("ingestion_program", "ingestion.py", "ingestion"), ("scoring_program", "score.py", "scoring")])
def test_entry_script_prefers_the_vendored_package(tmp_path, program, script, module):
    """Run from its zip (package beside it), the script imports that package, whatever the cwd and PYTHONPATH."""
    folder = tmp_path / program
    folder.mkdir()
    (folder / script).write_text(entry_script(module))
    package = folder / "unlearning_challenge"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / f"{module}.py").write_text(
        "import sys\n"
        "def main(argv):\n"
        "    print('vendored', __file__, argv)\n"
        "    return 3\n"
    )
    # CodaLab puts the submission on PYTHONPATH: a package of the same name there must not win.
    decoy = tmp_path / "submission" / "unlearning_challenge"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('decoy imported')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "submission")
    done = subprocess.run([sys.executable, str(folder / script), "--input", "in", "--output", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert f"vendored {package / (module + '.py')} ['--input', 'in', '--output', 'out']" in done.stdout


def test_the_two_entry_scripts_differ_only_by_the_module_they_run():
    ingestion, scoring = entry_script("ingestion"), entry_script("scoring")
    assert "scoring" not in ingestion and "ingestion" not in scoring
    assert scoring.replace("scoring", "ingestion") == ingestion
    assert "from unlearning_challenge.ingestion import main" in ingestion
    assert "    sys.exit(main(sys.argv[1:]))\n" in ingestion
    compile(ingestion, "ingestion.py", "exec")
    with pytest.raises(ValueError, match="module must be a module name of the package"):
        entry_script("ingestion; import os")


@pytest.mark.parametrize("program", ["ingestion_program", "scoring_program"])
def test_the_program_folders_hold_only_metadata_naming_the_entry_script(program):
    assert sorted(p.name for p in (ROOT / program).iterdir()) == ["metadata"]
    command = read_program_metadata(ROOT / program, program)["command"]
    assert command.split(" ")[1] == f"$program/{ENTRY_SCRIPTS[program].file_name}"


@pytest.mark.parametrize("program", ["ingestion_program", "scoring_program"])
def test_each_program_zip_runs_its_entry_script(tmp_path, program):
    """Unzipped on its own (no PYTHONPATH, cwd elsewhere), the zip's script finds the vendored package."""
    script = ENTRY_SCRIPTS[program]
    with zipfile.ZipFile(io.BytesIO(program_zip(ROOT / program, ROOT / "src" / "unlearning_challenge", program))) as zf:
        assert zf.read(script.file_name).decode() == entry_script(script.module)
        zf.extractall(tmp_path / "program")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(tmp_path / "program" / script.file_name), "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "--output" in done.stdout


def test_program_folder_holding_its_entry_script_is_refused(repo):
    (repo / "scoring_program" / "score.py").write_text("print('old')\n")
    with pytest.raises(BundleError, match=r"scoring_program already holds score\.py; remove it \(the build writes"):
        _build(repo)


def test_program_metadata_running_another_script_is_refused(repo):
    path = repo / "ingestion_program" / "metadata"
    path.write_text(path.read_text().replace("$program/ingestion.py", "$program/run.py"))
    with pytest.raises(BundleError, match=r"does not run \$program/ingestion\.py, the entry script the build writes"):
        _build(repo)


def test_program_folder_without_metadata_is_refused(repo):
    (repo / "scoring_program" / "metadata").unlink()
    with pytest.raises(BundleError, match="no file named `metadata`"):
        _build(repo)


def test_program_metadata_with_extra_keys_is_refused(repo):
    path = repo / "ingestion_program" / "metadata"
    path.write_text(path.read_text() + "input: http://example.com/data.zip\n")
    with pytest.raises(BundleError, match="fetches them as bundle URLs"):
        _build(repo)


# --------------------------------------------------------------------------- CLI


def test_cli_prints_a_value_of_the_competition_file_for_the_makefile(capsys):
    assert cli.main(["bundle", "--root", str(ROOT), "--get", "docker_image"]) == 0
    assert capsys.readouterr().out.strip() == load_competition(COMPETITION).docker_image


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert cli.main(["bundle", "--root", str(tmp_path)]) == 1
    assert "competition file not found" in capsys.readouterr().err


@pytest.mark.skipif(not (ROOT / "input_data" / "manifest.json").is_file()
                    or not (ROOT / "reference_data" / "manifest.json").is_file(),
                    reason="the default phase's data are not generated yet (make reference)")
def test_the_repository_builds_with_the_check_phase(tmp_path):
    result = build_bundles(root=ROOT, out_dir=tmp_path, log=lambda line: None)
    assert "Check" in [p.phase.name for p in result.included]


def test_a_phase_whose_config_asks_for_more_models_than_its_data_hold_is_left_out(repo):
    config = load_config(repo / "phases/default.yaml")
    (repo / "phases" / "default.yaml").write_text(dump_config(config).replace(f"num_models: {N_MODELS}", "num_models: 64"))
    with pytest.raises(BundleError, match="no phase can be included"):
        _build(repo)
    plan = plan_phases(load_competition(repo / "competition.yaml"), repo)[0]
    assert plan.reasons == [f"phases/default.yaml asks for N=64 but the data hold N={N_MODELS} retrained models"]
    assert plan.hint == "make reference PHASE=phases/default.yaml"


# --------------------------------------------------------------------------- leaderboard rule and dates


def test_each_new_submission_reaches_the_leaderboard_on_both_platforms(repo):
    result, _ = _build(repo)
    assert load_competition(repo / "competition.yaml").leaderboard.submission_rule == "Force_Last"
    with _read_zip(result.codabench_bundle) as zf:
        (board,) = _yaml(zf)["leaderboards"]
    assert board["submission_rule"] == "Force_Last"
    with _read_zip(result.codalab_bundle) as zf:
        doc = _yaml(zf)
    assert doc["force_submission_to_leaderboard"] is True
    assert "force_best_submission_to_leaderboard" not in doc["phases"][1]


def test_force_best_maps_to_codalabs_phase_flag(repo):
    path = repo / "competition.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["leaderboards"][0]["submission_rule"] = "Force_Best"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result, _ = _build(repo)
    with _read_zip(result.codalab_bundle) as zf:
        doc = _yaml(zf)
    assert "force_submission_to_leaderboard" not in doc
    assert doc["phases"][1]["force_best_submission_to_leaderboard"] is True
    with _read_zip(result.codabench_bundle) as zf:
        assert _yaml(zf)["leaderboards"][0]["submission_rule"] == "Force_Best"


def test_the_check_phase_fits_the_default_codabench_queue(repo):
    result, lines = _build(repo)
    (check,) = result.included
    assert check.execution_time_limit == 600
    assert any(f"execution_time_limit 600 s, set in competition.yaml; the formula gives {check.computed_time_limit} s"
               in line for line in lines)
    assert not any("exceeds the default Codabench queue's cap" in line for line in lines)


def test_a_bundle_with_no_open_phase_is_warned_about(repo):
    path = repo / "competition.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["end_date"] = dt.date(2024, 1, 31)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    _, lines = _build(repo)  # only Check has data: it ran from its start_date to end_date
    assert ("warning: no phase accepts submissions today ({}): the last phase, Check, closed on 2024-01-31; "
            "change the phases' start or end_date in competition.yaml (or the dates in the platform's editor "
            "after uploading)").format(dt.date.today().isoformat()) in lines
    result = build_bundles("competition.yaml", root=repo, log=lambda _: None, today=dt.date(2023, 1, 1))
    assert result.warnings[0].startswith("no phase accepts submissions today (2023-01-01): "
                                         "the first phase, Check, opens on 2023-06-28")
    result = build_bundles("competition.yaml", root=repo, log=lambda _: None, today=dt.date(2023, 7, 1))
    assert not any("no phase accepts" in w for w in result.warnings)


# --------------------------------------------------------------------------- the step time limit


def _edit_phase(repo: Path, index: int, **values) -> None:
    """Set keys of competition.yaml's phase ``index`` (None: remove the key)."""
    path = repo / "competition.yaml"
    raw = yaml.safe_load(path.read_text())
    for key, value in values.items():
        if value is None:
            raw["phases"][index].pop(key, None)
        else:
            raw["phases"][index][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _nested(bundle: Path, name: str) -> bytes:
    with _read_zip(bundle) as zf:
        return zf.read(name)


def _zip_limit(data: bytes, tmp: Path) -> tuple[int | None, dict]:
    """The step time limit an input-data zip holds, read as the ingestion reads it, and the file's fields."""
    with _read_zip(data) as zf:
        zf.extractall(tmp)
    return read_step_time_limit(tmp), json.loads((tmp / STEP_TIME_LIMIT_FILE).read_text())


def test_the_input_data_zip_carries_the_phases_time_limit_and_the_folder_is_left_alone(repo, tmp_path):
    result, _ = _build(repo)
    assert not (repo / "input_data" / STEP_TIME_LIMIT_FILE).exists()
    data = _nested(result.codalab_bundle, "check_input_data.zip")
    assert data == _nested(result.codabench_bundle, "check_input_data.zip")
    limit, fields = _zip_limit(data, tmp_path / "unzipped")
    assert limit == result.included[0].execution_time_limit == 600
    assert fields["phase"] == "Check"
    # A file of that name in the folder is replaced in the zip, never rewritten in the folder.
    (repo / "input_data" / STEP_TIME_LIMIT_FILE).write_text("stale")
    again, _ = _build(repo, out="dist2")
    assert _nested(again.codabench_bundle, "check_input_data.zip") == data
    assert (repo / "input_data" / STEP_TIME_LIMIT_FILE).read_text() == "stale"


def test_each_phase_gets_its_own_limit_and_shares_an_input_zip_only_with_the_same_limit(repo, tmp_path):
    # Feedback uses the Check phase's data but the formula's limit (570 s), Check its own 600 s.
    raw = yaml.safe_load((repo / "competition.yaml").read_text())
    raw["tasks"][1].update(input_data="input_data", reference_data="reference_data")
    raw["phases"][1]["unlearning"]["config"] = "phases/default.yaml"
    (repo / "competition.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result, _ = _build(repo)
    check, feedback = result.included
    assert (check.execution_time_limit, feedback.execution_time_limit) == (600, feedback.computed_time_limit)
    assert feedback.computed_time_limit == execution_time_limit(N_MODELS, BUDGET, load_competition(COMPETITION).time_limit,
                                                                scaled_budget=True) == 570
    with _read_zip(result.codabench_bundle) as zf:
        doc = _yaml(zf)
    assert [t["input_data"] for t in doc["tasks"]] == ["check_input_data.zip", "feedback_input_data.zip"]
    assert [t["reference_data"] for t in doc["tasks"]] == ["check_reference_data.zip"] * 2
    for name, phase, seconds in (("check_input_data.zip", "Check", 600), ("feedback_input_data.zip", "Feedback", 570)):
        limit, fields = _zip_limit(_nested(result.codalab_bundle, name), tmp_path / name)
        assert (limit, fields["phase"]) == (seconds, phase)
        assert _nested(result.codalab_bundle, name) == _nested(result.codabench_bundle, name)
    # The same limit: one zip, naming both phases.
    _edit_phase(repo, 1, execution_time_limit=600)
    result, _ = _build(repo, out="dist2")
    with _read_zip(result.codabench_bundle) as zf:
        assert [t["input_data"] for t in _yaml(zf)["tasks"]] == ["check_input_data.zip"] * 2
    limit, fields = _zip_limit(_nested(result.codabench_bundle, "check_input_data.zip"), tmp_path / "shared")
    assert (limit, fields["phase"]) == (600, "Check, Feedback")


def test_the_formulas_limit_goes_into_the_zip_when_the_phase_sets_none(repo, tmp_path):
    _write_phase_data(repo, "phases/challenge.yaml", "data/feedback/input_data", "data/feedback/reference_data", "feedback")
    result, _ = _build(repo)
    feedback = result.included[1]
    assert feedback.phase.execution_time_limit is None
    limit, _ = _zip_limit(_nested(result.codabench_bundle, "feedback_input_data.zip"), tmp_path / "feedback")
    assert limit == feedback.execution_time_limit == feedback.computed_time_limit


def _shortfall(lines: list[str]) -> list[str]:
    return [line for line in lines if "that a submission using its whole budget needs" in line]


def test_a_phase_limit_below_its_formula_is_warned_about_with_what_happens_and_what_to_change(repo):
    _, lines = _build(repo)  # 600 s, above the fixture's formula (570 s): nothing to say
    assert _shortfall(lines) == []
    _edit_phase(repo, 0, execution_time_limit=500)
    result, lines = _build(repo)  # a warning, not an error
    assert result.included[0].execution_time_limit == 500
    head = ("warning: Check: execution_time_limit 500 s (set in competition.yaml) is below the 570 s that a "
            "submission using its whole budget needs on the reference worker (300 s startup + 8 runs x 33.8 s, the "
            "formula's worst case): "
            "at that cost, at least about 5 of its 8 runs fit (a faster worker fits more). This phase has "
            "scoring.partial_output: ")
    tail = (". To fit every run: lower N (reference.num_models), a lower budget (ingestion.time_fraction) in "
            "phases/default.yaml, or a queue that allows 570 s")
    assert _shortfall(lines) == [head + "fail: such a submission fails" + tail]
    assert result.warnings[-1] == _shortfall(lines)[0].removeprefix("warning: ")

    _write_phase_data(repo, "phases/default.yaml", "input_data", "reference_data",
                      scoring=ScoringConfig(partial_output="score"))
    _, lines = _build(repo)
    assert _shortfall(lines) == [
        head + "score: the runs that fit are scored, flagged as not comparable (at least 4)" + tail]
    _edit_phase(repo, 0, execution_time_limit=400)
    _, lines = _build(repo)
    assert _shortfall(lines) == [
        head.replace("500 s", "400 s").replace("about 5", "about 2")
        + "score: the runs that fit are scored, flagged as not comparable (at least 4); fewer fit here, so such a "
          "submission fails" + tail]


def test_runs_that_fit_counts_whole_runs_after_the_startup():
    limits = TimeLimitSettings(safety_factor=1.5, per_run_overhead_seconds=15, startup_seconds=300)
    assert runs_that_fit(600, 32, 25.0, limits) == 5  # 300 s left / 52.5 s a run
    assert runs_that_fit(200, 32, 25.0, limits) == 0  # not even the startup
    assert runs_that_fit(10_000, 32, 25.0, limits) == 32
    slow = TimeLimitSettings(safety_factor=1.0, per_run_overhead_seconds=0, startup_seconds=0, worker_speed_ratio=2.0)
    assert (runs_that_fit(100, 10, 10.0, slow, scaled_budget=True), runs_that_fit(100, 10, 10.0, slow)) == (5, 10)


def test_step_time_limit_for_resolves_the_bundles_limit_from_competition_yaml(repo, monkeypatch):
    monkeypatch.chdir(repo)
    source = "the Check phase's execution_time_limit in competition.yaml"
    assert step_time_limit_for(Path("input_data")) == (600, source)
    assert step_time_limit_for(repo / "input_data" / ".." / "input_data") == (600, source)  # resolved paths
    assert step_time_limit_for(repo / "input_data", repo / "competition.yaml") == (
        600, f"the Check phase's execution_time_limit in {repo / 'competition.yaml'}")
    # Without the override: the formula, as the bundle computes it.
    _edit_phase(repo, 0, execution_time_limit=None)
    limit, source = step_time_limit_for(Path("input_data"))
    assert source == "the Check phase's time-limit formula in competition.yaml (N=8, 12.5 s budget per run)"
    result, _ = _build(repo)
    assert limit == result.included[0].execution_time_limit == result.included[0].computed_time_limit == 570
    # No answer, and why.
    assert step_time_limit_for(Path("reference_data")) == (
        None, "no phase of competition.yaml has reference_data as its input_data")
    assert step_time_limit_for(Path("input_data"), Path("other.yaml")) == (None, "no other.yaml")
    limit, why = step_time_limit_for(Path("data/feedback/input_data"))  # a phase without its config and data
    assert limit is None and why.startswith("the Feedback phase's time limit cannot be computed: ")
    (repo / "broken.yaml").write_text("version: 2\ntitle: [\n")
    limit, why = step_time_limit_for(Path("input_data"), Path("broken.yaml"))
    assert limit is None and "not valid YAML" in why


def test_step_time_limit_for_reads_no_bundle_and_writes_nothing(repo):
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    assert step_time_limit_for(repo / "input_data", repo / "competition.yaml")[0] == 600
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before


def test_step_time_limit_for_the_repositorys_check_phase():
    assert step_time_limit_for(ROOT / "input_data", COMPETITION) == (
        600, f"the Check phase's execution_time_limit in {COMPETITION}")
