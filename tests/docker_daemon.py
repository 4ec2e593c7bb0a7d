"""A docker engine for the docker tests: the one DOCKER_HOST names, or an isolated dockerd of our own.

Our own daemon keeps everything under one folder (socket, data, exec root,
pid file) and touches no host networking (no iptables, no bridge, no IP
forwarding): containers and builds run with ``--network none`` or host
networking. It is stopped by its pid. The data root persists between test
sessions, so the image's layers are built once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 60


@dataclass
class Daemon:
    host: str
    pid: int | None  # None: someone else's engine, left alone


def _answers(host: str) -> bool:
    import docker

    try:
        docker.DockerClient(base_url=host, timeout=10).ping()
        return True
    except Exception:
        return False


def why_not() -> str | None:
    """Why no engine can be had here, or None."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker SDK is missing: pip install -e '.[docker]' (make docker-test does)"
    if os.environ.get("DOCKER_HOST") and _answers(os.environ["DOCKER_HOST"]):
        return None
    missing = [name for name in ("dockerd", "containerd", "runc") if not shutil.which(name)]
    if missing:
        return f"no docker engine answers and {', '.join(missing)} not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "no docker engine answers (set DOCKER_HOST) and starting dockerd needs root"
    return None


def start(folder: Path) -> Daemon:
    """The engine of DOCKER_HOST when it answers, else a dockerd of our own under ``folder``."""
    if os.environ.get("DOCKER_HOST") and _answers(os.environ["DOCKER_HOST"]):
        return Daemon(os.environ["DOCKER_HOST"], None)
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "docker.sock"
    host = f"unix://{socket}"
    if socket.exists() and _answers(host):  # left running by an earlier session's crash: not ours to stop
        return Daemon(host, None)
    log = open(folder / "dockerd.log", "ab")
    process = subprocess.Popen(
        ["dockerd", "-H", host, "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
         "--pidfile", str(folder / "docker.pid"), "--storage-driver", "overlay2",
         "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}; see {folder / 'dockerd.log'}")
        if socket.exists() and _answers(host):
            return Daemon(host, process.pid)
        time.sleep(0.5)
    stop(Daemon(host, process.pid))
    raise RuntimeError(f"dockerd did not answer within {START_SECONDS} s; see {folder / 'dockerd.log'}")


def stop(daemon: Daemon) -> None:
    """SIGTERM our own dockerd by its pid and wait for it (it stops its containers first)."""
    if daemon.pid is None:
        return
    os.kill(daemon.pid, signal.SIGTERM)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            if os.waitpid(daemon.pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:
            return
        time.sleep(0.5)
    os.kill(daemon.pid, signal.SIGKILL)
    os.waitpid(daemon.pid, 0)
