"""The environment a worker (and the fork server) starts with: nothing that names the trusted folders."""

from __future__ import annotations

import os
from pathlib import Path

import unlearning_challenge

# Idle OpenMP threads sleep: CPU time then counts work, not waiting (see reference/calibration.py).
OMP_WAIT_POLICY = "PASSIVE"

# Passed through from this process when set: the GPUs a run may see, the libraries it
# needs to use them, and the thread count the organizer chose.
PASSED_THROUGH = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OMP_NUM_THREADS")


# Where workers import this package from (None: where this process did); see import_package_from.
_package_parent: Path | None = None


def import_package_from(parent: Path | None) -> None:
    """Have the workers (and the fork server) import this package from ``parent`` (a folder holding a copy
    of it that the workers' user can read); None: from where this process imported it."""
    global _package_parent
    _package_parent = parent


def worker_env(run_dir: Path) -> dict[str, str]:
    """A minimal environment: nothing that names the trusted folders.

    ``run_dir`` is the run's folder (its home and temporary folder); the fork server
    gets ``Path("/")``.
    """
    package_parent = str(_package_parent or Path(unlearning_challenge.__file__).resolve().parent.parent)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(run_dir),
        "TMPDIR": str(run_dir / "tmp"),
        "TORCHINDUCTOR_CACHE_DIR": str(run_dir / "tmp" / "inductor"),
        "TRITON_CACHE_DIR": str(run_dir / "tmp" / "triton"),
        "PYTHONPATH": package_parent,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", OMP_WAIT_POLICY),
    }
    for key in PASSED_THROUGH:
        if key in os.environ:
            env[key] = os.environ[key]
    return env
