"""Build the competition image through the docker SDK, from a clean staged context.

Two ways, one Dockerfile (docker/Dockerfile):

- default: the CUDA base from Docker Hub, torch from PyTorch's wheel index;
- ``local_base=True``: where Docker Hub cannot be reached (or on an air-gapped
  worker), a minimal Debian made with ``debootstrap`` from the mirror apt is
  configured with, imported as the base, and every Python package from wheels
  the host downloads into ``docker/wheels/`` (pip inside a build container may
  not trust the network's certificates; the host does).

The context is staged in a temporary folder (Dockerfile, pyproject.toml,
README.md, src/, docker/wheels/), so the legacy builder, which ignores
``Dockerfile.dockerignore``, sends no data or virtual environment. The image
carries a fingerprint of what went into it (label ``FINGERPRINT_LABEL``);
``ensure_image`` rebuilds only when it differs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

FINGERPRINT_LABEL = "org.unlearning-challenge.fingerprint"
LOCAL_BASE_SUITE = "bookworm"
LOCAL_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
LOCAL_BASE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    # What the NVIDIA container toolkit reads (the CUDA base images set them too).
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTEXT_FILES = ("pyproject.toml", "README.md")
# Where each host architecture's wheels are tagged (pip expands to older manylinux tags itself).
WHEEL_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class DockerImageError(RuntimeError):
    """The image cannot be built; the message says what to do."""


@dataclass
class ImageBuild:
    """What one build needs: the image's name, the repository, and how to make the base."""

    tag: str
    root: Path
    local_base: bool = False
    build_args: dict[str, str] = field(default_factory=dict)
    mirror: str | None = None
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)

    @property
    def base_tag(self) -> str:
        return f"unlearning-challenge-base:{LOCAL_BASE_SUITE}"


def docker_client():
    """A docker SDK client from the environment (DOCKER_HOST), checked to answer."""
    try:
        import docker
    except ImportError as exc:
        raise DockerImageError("the docker SDK is missing: pip install -e '.[docker]' (make docker does)") from exc
    if not hasattr(docker, "from_env"):
        raise DockerImageError("`import docker` found a folder, not the docker SDK: pip install -e '.[docker]'")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' and socket errors alike
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerImageError(f"no docker engine answers at {where} ({exc}); start dockerd or set DOCKER_HOST") from exc
    return client


# --------------------------------------------------------------------------- what goes in


def _source_files(root: Path) -> list[tuple[str, Path]]:
    """(name in the context, file) for everything the Dockerfile copies, wheels aside."""
    files = [(name, root / name) for name in CONTEXT_FILES]
    for path in sorted((root / "src").rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and "__pycache__" not in relative.parts and not any(
                part.endswith(".egg-info") for part in relative.parts) and path.suffix != ".pyc":
            files.append((relative.as_posix(), path))
    return files


def _wheels(root: Path) -> list[Path]:
    return sorted((root / "docker" / "wheels").glob("*.whl"))


def fingerprint(build: ImageBuild) -> str:
    """sha256 over the Dockerfile, the copied sources, the wheels' names and the build arguments."""
    digest = hashlib.sha256()
    entries = [("docker/Dockerfile", build.root / "docker" / "Dockerfile"), *_source_files(build.root)]
    for name, path in entries:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    wheels = [w.name for w in _wheels(build.root)] if build.local_base else []
    digest.update(repr((sorted(wheels), sorted(_build_args(build).items()))).encode())
    return digest.hexdigest()


def _build_args(build: ImageBuild) -> dict[str, str]:
    args = dict(build.build_args)
    if build.local_base:
        args["CUDA_BASE"] = build.base_tag
    return args


def stage_context(build: ImageBuild, folder: Path) -> None:
    """Copy what the Dockerfile needs into ``folder`` (wheels hard-linked when possible)."""
    for name, path in [("docker/Dockerfile", build.root / "docker" / "Dockerfile"), *_source_files(build.root)]:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    wheels = folder / "docker" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for wheel in _wheels(build.root) if build.local_base else []:
        try:
            os.link(wheel, wheels / wheel.name)
        except OSError:
            shutil.copy2(wheel, wheels / wheel.name)


# --------------------------------------------------------------------------- the local base


def apt_mirror(suite: str = LOCAL_BASE_SUITE, etc: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with for ``suite`` (deb822 .sources or sources.list)."""
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, flags=re.M))
            if suite in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in lists:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    return DEFAULT_MIRROR


def make_local_base(client, build: ImageBuild) -> None:
    """debootstrap a minimal Debian with python3 and import it as ``build.base_tag``."""
    if not shutil.which("debootstrap"):
        raise DockerImageError("LOCAL_BASE=1 needs debootstrap (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise DockerImageError("LOCAL_BASE=1 runs debootstrap, which needs root (run it with sudo)")
    mirror = build.mirror or apt_mirror()
    build.log(f"local base: debootstrap {LOCAL_BASE_SUITE} from {mirror} (a few minutes)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="local-base-", dir=build.root / "dist" if (build.root / "dist").is_dir() else None) as tmp:
        rootfs, archive = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        _run([
            "debootstrap", "--variant=minbase", f"--include={','.join(LOCAL_BASE_PACKAGES)}",
            LOCAL_BASE_SUITE, str(rootfs), mirror,
        ], "debootstrap")
        for cache in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            cache.unlink()
        shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
              "--exclude=./sys/*", "-cf", str(archive), "."], "tar")
        repository, tag = build.base_tag.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag,
                                          changes=[f"ENV {env}" for env in LOCAL_BASE_ENV])
    build.log(f"local base: {build.base_tag} in {time.monotonic() - started:.0f} s")


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise DockerImageError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def _in_base(client, base: str, code: str) -> str:
    """Run ``python3 -c code`` in the base image (no network) and return its output."""
    output = client.containers.run(base, ["python3", "-c", code], remove=True, network_mode="none")
    return output.decode().strip()


def _requirements(root: Path) -> list[str]:
    """The project's dependencies and its `participant` extra, from pyproject.toml."""
    try:
        import tomllib
    except ImportError as exc:  # Python 3.10
        raise DockerImageError("LOCAL_BASE=1 reads pyproject.toml with tomllib: run it with Python >= 3.11") from exc
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    build_system = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    return [*build_system, *project["dependencies"], *project.get("optional-dependencies", {}).get("participant", [])]


def download_wheels(client, build: ImageBuild) -> None:
    """``pip download`` on the host, for the base's Python and C library, into docker/wheels/."""
    version = _in_base(client, build.base_tag, "import sys; print('%d.%d' % sys.version_info[:2])")
    libc = _in_base(client, build.base_tag, "import platform; print(platform.libc_ver()[1])")
    machine = _in_base(client, build.base_tag, "import platform; print(platform.machine())")
    platforms = _manylinux_platforms(libc, WHEEL_ARCH.get(machine, machine))
    args = {"TORCH_VERSION": "2.14.1", "TORCHVISION_VERSION": "0.29.1", **_dockerfile_args(build.root), **build.build_args}
    requirements = [f"torch=={args['TORCH_VERSION']}", f"torchvision=={args['TORCHVISION_VERSION']}",
                    *_requirements(build.root)]
    wheels = build.root / "docker" / "wheels"
    build.log(f"wheels: pip download for Python {version}, glibc {libc}, {machine} into {wheels} ({len(requirements)} requirements)")
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
          "--dest", str(wheels), "--only-binary=:all:", "--python-version", version,
          *(f"--platform={tag}" for tag in platforms), *requirements], "pip download")
    total = sum(w.stat().st_size for w in _wheels(build.root))
    build.log(f"wheels: {len(_wheels(build.root))} files, {total / 2**30:.1f} GiB in {time.monotonic() - started:.0f} s")


def _manylinux_platforms(libc: str, arch: str) -> list[str]:
    """Every manylinux tag a C library of version ``libc`` (e.g. "2.36") runs: pip does not expand them itself."""
    major, minor = (int(part) for part in libc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]


def _dockerfile_args(root: Path) -> dict[str, str]:
    """The ARG defaults of docker/Dockerfile."""
    text = (root / "docker" / "Dockerfile").read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))


# --------------------------------------------------------------------------- build


def _image_fingerprint(client, tag: str) -> str | None:
    import docker

    try:
        return (client.images.get(tag).labels or {}).get(FINGERPRINT_LABEL)
    except docker.errors.ImageNotFound:
        return None


def build_image(client, build: ImageBuild) -> float:
    """Build ``build.tag`` (the local base and wheels first when asked); returns the seconds taken."""
    import docker

    started = time.monotonic()
    previous = _image_id(client, build.tag)
    if build.local_base:
        try:
            client.images.get(build.base_tag)
        except docker.errors.ImageNotFound:
            make_local_base(client, build)
        try:
            download_wheels(client, build)
        except DockerImageError as exc:
            if not _wheels(build.root):
                raise
            # An air-gapped host with the folder copied in: build from what is there.
            build.log(f"warning: {exc}; building from the {len(_wheels(build.root))} wheels already in docker/wheels/")
    with tempfile.TemporaryDirectory(prefix="docker-context-") as tmp:
        stage_context(build, Path(tmp))
        build.log(f"docker build -t {build.tag} (context {tmp}, args {_build_args(build)})")
        stream = client.api.build(
            path=tmp, dockerfile="docker/Dockerfile", tag=build.tag, buildargs=_build_args(build),
            labels={FINGERPRINT_LABEL: fingerprint(build)}, rm=True, forcerm=True, decode=True,
            network_mode="none" if build.local_base else None,  # the local build needs no network
        )
        for chunk in stream:
            if "error" in chunk:
                raise DockerImageError(f"docker build failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").rstrip()
            if text:
                build.log(text)
    seconds = time.monotonic() - started
    build.log(f"built {build.tag} in {seconds:.0f} s")
    _remove_replaced(client, build, previous)
    return seconds


def _image_id(client, tag: str) -> str | None:
    import docker

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def _remove_replaced(client, build: ImageBuild, previous: str | None) -> None:
    """Remove the image the new build took the tag from (several GB), unless something still uses it."""
    import docker

    if previous is None or previous == _image_id(client, build.tag):
        return
    try:
        client.images.remove(previous)
        build.log(f"removed the replaced image {previous[:19]}")
    except docker.errors.APIError as exc:
        build.log(f"kept the replaced image {previous[:19]}: {exc.explanation or exc}")


def ensure_image(client, build: ImageBuild) -> float | None:
    """Build ``build.tag`` when it is missing or stale; returns the build's seconds, or None when current."""
    if build.local_base and not _wheels(build.root):
        return build_image(client, build)
    if _image_fingerprint(client, build.tag) == fingerprint(build):
        return None
    return build_image(client, build)
