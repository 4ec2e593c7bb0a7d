"""The rehearsal's and the image builder's parts that need no docker engine.

The commands each worker builds from the programs' metadata, the staged build
context, the image fingerprint, the apt mirror and wheel platforms for
LOCAL_BASE=1, and how a rehearsal's outputs are judged and reported. The
containers themselves run in test_docker_e2e.py (make docker-test).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from unlearning_challenge.artifacts import FORMAT_VERSION, INGESTION_FORMAT

from unlearning_challenge.platforms.commands import (
    codabench_variables, codalab_variables, metadata_argv, metadata_command,
)
from unlearning_challenge.platforms.docker_image import (
    DockerImageError,
    ImageBuild,
    docker_client,
    _manylinux_platforms,
    apt_mirror,
    fingerprint,
    stage_context,
)
from unlearning_challenge.platforms.docker_rehearse import (
    RehearsalError,
    StepResult,
    confinement_summary,
    judge,
    rehearse,
    report,
)

ROOT = Path(__file__).resolve().parents[1]


def test_codabench_argv_is_the_workers_substitution():
    command = metadata_command(ROOT / "ingestion_program")
    assert metadata_argv(command, codabench_variables("ingestion", is_scoring=False), "codabench") == [
        "python3", "/app/program/ingestion.py", "--input", "/app/input_data", "--output", "/app/output",
        "--submission", "/app/ingested_program"]
    command = metadata_command(ROOT / "scoring_program")
    assert metadata_argv(command, codabench_variables("program", is_scoring=True), "codabench") == [
        "python3", "/app/program/score.py", "--input", "/app/input", "--output", "/app/output"]


def test_codalab_argv_is_the_workers_substitution(tmp_path):
    run, shared = tmp_path / "run", tmp_path / "shared"
    command = metadata_command(ROOT / "ingestion_program")
    assert metadata_argv(command, codalab_variables("ingestion", run, shared), "codalab") == [
        "python3", f"{run}/ingestion_program/ingestion.py", "--input", f"{run}/input", "--output", f"{run}/output",
        "--submission", f"{run}/program"]
    command = metadata_command(ROOT / "scoring_program")
    assert metadata_argv(command, codalab_variables("scoring", run, shared), "codalab") == [
        "python3", f"{run}/program/score.py", "--input", f"{run}/input", "--output", f"{run}/output"]
    # split(' '), not shlex: a doubled space is an empty argument, as on the platform.
    assert metadata_argv("python3  x", codalab_variables("scoring", run, shared), "codalab") == ["python3", "", "x"]


def test_the_variables_are_replaced_in_the_workers_order():
    # Plain text, in order: a value that holds a later variable is replaced again, as on the platforms.
    assert metadata_argv("a $x b", {"$x": "$y", "$y": "z"}, "codabench") == ["a", "z", "b"]
    assert metadata_argv("a $x b", {"$y": "z", "$x": "$y"}, "codalab") == ["a", "$y", "b"]
    with pytest.raises(ValueError, match="unknown platform 'kaggle': choose one of codabench, codalab"):
        metadata_argv("a", {}, "kaggle")


def _repo_copy(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for name in ("pyproject.toml", "README.md", "docker/Dockerfile"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src")
    (repo / "docker" / "wheels").mkdir()
    return repo


def test_staged_context_holds_only_what_the_dockerfile_copies(tmp_path):
    repo = _repo_copy(tmp_path)
    (repo / "src" / "unlearning_challenge" / "__pycache__").mkdir(exist_ok=True)
    (repo / "src" / "unlearning_challenge" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"x")
    (repo / "docker" / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (repo / "input_data").mkdir()
    (repo / "input_data" / "dataset.npz").write_bytes(b"data")

    for local_base, wheels in ((False, []), (True, ["docker/wheels/demo-1.0-py3-none-any.whl"])):
        context = tmp_path / f"context_{local_base}"
        context.mkdir()
        stage_context(ImageBuild(tag="t", root=repo, local_base=local_base), context)
        names = sorted(p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file())
        top = sorted({name.split("/")[0] for name in names})
        assert top == ["README.md", "docker", "pyproject.toml", "src"]
        assert [n for n in names if n.startswith("docker/")] == ["docker/Dockerfile", *wheels]
        assert not [n for n in names if "__pycache__" in n]
        assert "src/unlearning_challenge/platforms/docker_rehearse.py" in names


def test_fingerprint_follows_sources_wheels_and_build_args(tmp_path):
    repo = _repo_copy(tmp_path)
    build = ImageBuild(tag="t", root=repo, local_base=True)
    first = fingerprint(build)
    assert fingerprint(build) == first
    (repo / "src" / "unlearning_challenge" / "__pycache__").mkdir(exist_ok=True)
    (repo / "src" / "unlearning_challenge" / "__pycache__" / "y.pyc").write_bytes(b"y")
    assert fingerprint(build) == first, "byte code is not part of the image"
    (repo / "docker" / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    with_wheel = fingerprint(build)
    assert with_wheel != first
    assert fingerprint(ImageBuild(tag="t", root=repo)) != with_wheel  # another base
    assert fingerprint(ImageBuild(tag="t", root=repo, local_base=True, build_args={"TORCH_VERSION": "2.9.1"})) != with_wheel
    path = repo / "src" / "unlearning_challenge" / "cli.py"
    path.write_text(path.read_text() + "\n")
    assert fingerprint(build) != with_wheel


def test_apt_mirror_reads_deb822_and_one_line_sources(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    assert apt_mirror("bookworm", etc) == "http://deb.debian.org/debian"
    (etc / "sources.list").write_text("# a comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert apt_mirror("bookworm", etc) == "http://mirror.example/debian"
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://snapshot.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror("bookworm", etc) == "http://snapshot.example/debian"
    assert apt_mirror("trixie", etc) == "http://deb.debian.org/debian"


def test_manylinux_platforms_cover_every_older_glibc():
    tags = _manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags


def _ingestion_json(folder: Path, status: str, confinements: list[str]) -> None:
    folder.mkdir(parents=True)
    cap = "seccomp supervisor: at most 512 live processes"
    runs = [{"index": i, "status": "ok", "confinement": c, "process_cap": cap} for i, c in enumerate(confinements)]
    (folder / "ingestion.json").write_text(json.dumps({
        "format": INGESTION_FORMAT, "format_version": FORMAT_VERSION, "status": status, "message": "m", "runs": runs,
        "worker_user": "root", "isolation_warning": "no CAP_SETUID"}))


def test_judge_accepts_a_clean_rehearsal_and_reports_it(tmp_path):
    _ingestion_json(tmp_path / "res", "ok", ["landlock", "landlock"])
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "scores.txt").write_text("score: 0.5\nnum_models: 2\n")
    (tmp_path / "scores" / "scores.json").write_text('{"score": 0.5, "num_models": 2}')
    steps = [StepResult("ingestion", 0, 30.0, 600), StepResult("scoring", 0, 6.0, 600)]
    outcome = judge(steps, tmp_path / "res", tmp_path / "scores")
    assert outcome.ok, outcome.problems
    assert outcome.scores == {"score": 0.5, "num_models": 2}
    text = report("codabench", "img:1", outcome, tmp_path, gpu=False)
    assert "ingestion    30.0 s of 600 s limit (5%), exit 0" in text
    assert "confinement: 2 of 2 runs: landlock" in text
    assert "process cap: 2 of 2 runs: seccomp supervisor: at most 512 live processes" in text
    assert "worker user: root (no CAP_SETUID)" in text
    assert text.endswith("score: 0.5\nnum_models: 2")


def test_judge_names_every_failure(tmp_path):
    _ingestion_json(tmp_path / "res", "failed", ["landlock", "Landlock is not available on this kernel"])
    steps = [StepResult("ingestion", None, 601.0, 600, timed_out=True), StepResult("scoring", 1, 2.0, 600)]
    outcome = judge(steps, tmp_path / "res", tmp_path / "scores")
    assert not outcome.ok
    assert outcome.problems == [
        "the ingestion step was stopped at the phase's execution_time_limit (600 s)",
        "the scoring step exited with 1",
        "ingestion status failed: m",
        f"the scoring wrote no scores.txt in {tmp_path / 'scores'}",
    ]
    assert confinement_summary(outcome.ingestion) == (
        "1 of 2 runs: Landlock is not available on this kernel, 1 of 2 runs: landlock")
    assert "stopped at the limit" in report("codalab", "img:1", outcome, tmp_path, gpu=True)


def test_judge_without_ingestion_output(tmp_path):
    outcome = judge([StepResult("ingestion", 1, 1.0, 60)], tmp_path / "res", tmp_path / "scores")
    assert f"the ingestion left no ingestion.json in {tmp_path / 'res'}" in outcome.problems
    assert confinement_summary(None) == "no runs recorded"


def test_judge_names_an_unreadable_ingestion_json(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "ingestion.json").write_text('{"status": "ok"}')
    outcome = judge([StepResult("ingestion", 0, 1.0, 60)], tmp_path / "res", tmp_path / "scores")
    assert outcome.ingestion is None
    assert "ingestion output: ingestion.json is not a unlearning-challenge/ingestion manifest" in outcome.problems


def test_no_engine_is_named_with_what_to_do(tmp_path, monkeypatch):
    if not hasattr(pytest.importorskip("docker"), "from_env"):  # the repository's docker/ folder
        pytest.skip("the docker extra (the Docker SDK) is not installed")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    with pytest.raises(DockerImageError, match=r"no docker engine answers at unix://.*none\.sock .*start dockerd or set DOCKER_HOST"):
        docker_client()
    with pytest.raises(DockerImageError, match="no docker engine answers"):
        rehearse("codabench", ROOT / "starting_kit" / "sample_submission", root=ROOT,
                 competition=Path("competition.yaml"), output=tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written before the engine answers"


def test_unknown_platform_and_busy_output_folder_are_refused(tmp_path):
    with pytest.raises(RehearsalError, match="unknown platform 'kaggle': choose one of codabench, codalab"):
        rehearse("kaggle", ROOT, root=ROOT, competition=Path("competition.yaml"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    with pytest.raises(RehearsalError, match="output folder .*out is not empty; choose another with OUT="):
        rehearse("codalab", ROOT, root=ROOT, competition=Path("competition.yaml"), output=tmp_path / "out")
