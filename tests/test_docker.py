"""The competition image's Dockerfile agrees with pyproject.toml, competition.yaml and the bundles.

No docker engine is needed: the files are read, and `make -n docker` shows the build command.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from unlearning_challenge.platforms.competition import load_competition

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as the tomli package (declared in the `test` extra)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
IMPORT_NAMES = {"pyyaml": "yaml", "scikit-learn": "sklearn", "pillow": "PIL", "pynacl": "nacl"}  # distribution name -> module name, where they differ


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _args() -> dict[str, str]:
    args = {}
    for word, rest in _instructions():
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def _dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}


def test_base_image_is_a_cuda_runtime():
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert froms == ["${CUDA_BASE} AS base", "base AS build", "base"]
    cuda_base = _args()["CUDA_BASE"]
    assert cuda_base.startswith("nvidia/cuda:") and "runtime" in cuda_base


def test_torch_pins_satisfy_pyproject():
    args, deps = _args(), _dependencies()
    assert Version(args["TORCH_VERSION"]) in deps["torch"].specifier
    assert Version(args["TORCHVISION_VERSION"]) in deps["torchvision"].specifier
    # The CUDA flavour of the wheel index matches the base image's CUDA major version.
    cuda_major = re.match(r"nvidia/cuda:(\d+)\.", args["CUDA_BASE"]).group(1)
    assert args["TORCH_CUDA"].startswith(f"cu{cuda_major}")
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "download.pytorch.org/whl/${TORCH_CUDA}" in runs
    assert '"torch==${TORCH_VERSION}"' in runs and '"torchvision==${TORCHVISION_VERSION}"' in runs


def test_the_package_and_every_dependency_are_installed():
    instructions = _instructions()
    copies = [rest for word, rest in instructions if word == "COPY"]
    assert any("pyproject.toml" in c and "README.md" in c for c in copies)
    assert any(c.split()[0] == "src" for c in copies)
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    # Dependencies and the `participant` extra from pyproject.toml, then the package without its sources' stage.
    assert "p.get('optional-dependencies', {}).get('participant', [])" in runs
    assert 'pip install "$@" -r /opt/requirements.txt' in runs
    assert "pip install --no-deps --no-index --no-build-isolation /opt/unlearning-challenge" in runs
    assert "--no-index --find-links /opt/wheels" in runs  # wheels from docker/wheels/ when there are any
    # The build imports every dependency (and the package) to fail early.
    (check,) = [names for names in re.findall(r'python -c "import ([^;"]+);', runs) if "unlearning_challenge" in names]
    imported = {name.strip() for name in check.split(",")}
    for name in _dependencies():
        assert IMPORT_NAMES.get(name, name) in imported, name
    assert "unlearning_challenge" in imported
    # Every file COPY needs exists and is let through the dockerignore.
    ignore = DOCKERIGNORE.read_text()
    for copy in copies:
        if copy.startswith("--from="):
            continue
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in ignore, source


def test_programs_run_as_root_by_default_with_python3():
    """Codabench's worker makes /app/output root's (0755) and drops every capability: only uid 0 writes it."""
    instructions = _instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users == ["${RUN_USER}"]
    assert _args()["RUN_USER"] == "root"
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "useradd --create-home --uid 1000 --shell /bin/bash participant" in runs  # for --build-arg RUN_USER=participant
    assert "python3" in runs and "python3 -m venv /opt/venv" in runs
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "/app" not in DOCKERFILE.read_text()
    # The final stage takes the virtual environment only, not the wheels it was built from.
    copies = [rest for word, rest in instructions if word == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies and not [c for c in copies if "wheels" in c and "--from" in c]


def _make_n(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "-o", "install", "-o", ".venv/.installed", "-o", ".venv/.docker-sdk", *args, f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = re.sub(r"\\\n\s*", " ", done.stdout).splitlines()  # recipes continued over several lines
    return [" ".join(line.split()) for line in lines if " -m unlearning_challenge docker-" in line]


def test_make_docker_builds_the_image_named_in_the_competition_file():
    image = load_competition(ROOT / "competition.yaml").docker_image
    (build,) = _make_n("docker")
    assert f" docker-build --competition competition.yaml --tag {image}" in build
    assert "--local-base" not in build
    (build,) = _make_n("docker", "LOCAL_BASE=1", "DOCKER_BUILD_ARGS=--build-arg TORCH_VERSION=2.14.1")
    assert build.endswith("--local-base --build-arg TORCH_VERSION=2.14.1")


def test_make_docker_rehearse_passes_its_options():
    (line,) = _make_n("docker-rehearse", "PLATFORM=codalab", "NUM_MODELS=4", "NO_TIME_LIMIT=1", "LOCAL_BASE=1",
                      "SUBMISSION=starting_kit/baselines/do_nothing")
    assert " docker-rehearse --platform codalab " in line
    assert "--submission starting_kit/baselines/do_nothing" in line
    for flag in ("--num-models 4", "--no-time-limit", "--local-base"):
        assert flag in line
    (line,) = _make_n("docker-rehearse")
    assert "--platform codabench" in line and "--num-models" not in line and "--local-base" not in line


def test_bundles_name_the_same_image(tmp_path):
    """Both yaml flavours carry competition.docker_image (checked in depth in test_bundle.py)."""
    from unlearning_challenge.platforms.dialects import BundleLayout, codabench_yaml, codalab_yaml
    from unlearning_challenge.platforms.phases import PhasePlan

    competition = load_competition(ROOT / "competition.yaml")
    pages = {name: f"{name}.html" for name in ["terms", *(page.name for page in competition.pages)]}
    layout = BundleLayout("logo.png", pages, {})
    plans: list[PhasePlan] = []
    assert codalab_yaml(competition, plans, layout)["competition_docker_image"] == competition.docker_image
    assert codabench_yaml(competition, plans, layout)["docker_image"] == competition.docker_image


@pytest.mark.parametrize("program", ["ingestion_program", "scoring_program"])
def test_program_commands_use_the_images_python(program):
    command = (ROOT / program / "metadata").read_text().split("command:", 1)[1].split("\n", 1)[0].strip()
    assert command.split(" ")[0] == "python3"
