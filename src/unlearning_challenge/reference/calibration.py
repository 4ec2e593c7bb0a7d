"""Machine-speed calibration for the time budget.

The budget of a run is a fraction of one retrain's time, measured when the
reference was made. Another machine (a participant's laptop, the platform's
worker) may be faster or slower, so both sides also time a few training steps
of the same recipe on the same data; the budget is scaled by the ratio of
those step times (``ingestion.budget_scaling: machine``), or left as measured
(``none``).

On a CPU the budget is counted in CPU seconds (:data:`Clock.CPU`): the run's
processes' CPU time, scaled by the CPU time of the same training steps here.
Work costs about the same CPU time however busy the machine is, whereas wall
time grows with every other process sharing the cores. That holds only when
idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``,
set for the ingestion and its workers): a spinning thread burns CPU time
while it waits for a sibling the scheduler has put aside. On a GPU the budget
stays in wall seconds.
"""

from __future__ import annotations

import platform
import time
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearning_challenge.config import ModelConfig, TrainingConfig
from unlearning_challenge.reference.models import build_model


# Idle OpenMP threads sleep: CPU time then counts work, not waiting (see the module docstring).
OMP_WAIT_POLICY = "PASSIVE"


class Clock(str, Enum):
    """What a run's time budget counts."""

    WALL = "wall"  # seconds on the clock (GPU runs)
    CPU = "cpu"  # CPU seconds of the run's processes, all threads (CPU runs)

    @classmethod
    def for_device(cls, device: torch.device) -> "Clock":
        return cls.CPU if device.type == "cpu" else cls.WALL

    def now(self) -> float:
        """This process's reading of the clock, in seconds."""
        return time.process_time() if self is Clock.CPU else time.perf_counter()


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, else the CPU's (:func:`cpu_name`)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def calibration_step_seconds(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    model_cfg: ModelConfig,
    train_cfg: TrainingConfig,
    device: torch.device,
    steps: int = 20,
    warmup: int = 5,
    clock: Clock = Clock.WALL,
) -> float:
    """Median seconds of one training step of the recipe (batch of ``train_cfg.batch_size``),
    on ``clock`` (this process's CPU time for :data:`Clock.CPU`).

    20 steps after 5 warm-up ones (about 4 s on a 2-core CPU): with fewer steps,
    repeated measurements on one quiet machine spread by +-25 %, and so did the
    budget.

    images: uint8 ``[n, 3, H, W]``; labels: int64 ``[n]`` (the first batch is reused).
    """
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    criterion = nn.CrossEntropyLoss()
    batch = min(train_cfg.batch_size, len(images))
    x = torch.from_numpy(images[:batch]).to(device).float().contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels[:batch]).to(device)
    times = []
    for step in range(warmup + steps):
        _sync(device)
        start = clock.now()
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if step >= warmup:
            times.append(clock.now() - start)
    return float(np.median(times))
