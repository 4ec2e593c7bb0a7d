"""Machine-speed calibration for the time budget.

The budget of a run is a fraction of one retrain's time, measured when the
reference was made. Another machine (a participant's laptop, the platform's
worker) may be faster or slower, so both sides also time a few steps of the
same model on the same data; the budget is scaled by the ratio of those step
times (``ingestion.budget_scaling: machine``), or left as measured (``none``).
A machine may slow one kind of step more than another, so the steps are of
several kinds (:func:`calibration_profile`: the recipe's training step, training
at a larger batch, evaluation passes, gradient ascent on small forget-set
batches) and the budget follows the kind slowed most (:func:`speed_factor`); a
manifest written before profiles existed has the recipe's step alone
(:func:`calibration_step_seconds`).

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
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unlearning_challenge.config import ModelConfig, TrainingConfig
from unlearning_challenge.reference.models import build_model
from unlearning_challenge.runner.environment import OMP_WAIT_POLICY  # noqa: F401 - idle OpenMP threads sleep


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


# --------------------------------------------------------------------------- the step profile
#
# One kind of step is not every method's kind: a worker may slow batch-256 training steps more than the
# recipe's batch-64 ones, or small forget-set batches more than either. The profile times one step of
# each kind below, here and on the reference machine; the budget is scaled by a high quantile of the
# per-kind ratios (FACTOR_QUANTILE, the largest by default), so that a method leaning on the kind this
# machine slows most is not under-budgeted. ``benchmarks/bench_calibration.py`` checks the prediction.

FACTOR_QUANTILE = 1.0  # the quantile of the per-kind ratios that scales the budget (1.0: the largest)
PROFILE_ROUNDS = 2  # measured rounds at least; every kind's steps are interleaved, one warm-up round first
PROFILE_MIN_SECONDS = 1.0  # more rounds (up to PROFILE_MAX_ROUNDS) while the measured ones took less (a GPU)
PROFILE_MAX_ROUNDS = 20
PROFILE_RECORD_KEYS = ("calibration_profile_kinds", "calibration_profile_seconds")  # in a work record (.npz)


@dataclass(frozen=True)
class StepKind:
    """One kind of step: ``batch`` images, ``per_round`` steps in each round of the profile.

    mode: ``train`` (forward, backward, Adam step: the recipe), ``ascent`` (the same on the
    negated loss: gradient ascent on forget-set batches), ``eval`` (a no_grad forward in eval mode).
    """

    name: str
    batch: int
    mode: str
    per_round: int = 1


def step_kinds(batch_size: int) -> tuple[StepKind, ...]:
    """The kinds the profile times, from the recipe's batch size B (64: train_64, train_256, eval_256, forget_16).

    The recipe's training steps (B), training at 4B (the large batches of several 2023 methods),
    evaluation passes (no_grad at 4B) and gradient-ascent steps on small forget-set batches (B/4, at least 2).
    The names carry the batch sizes, so a profile is compared kind by kind only with one of the same recipe.
    """
    b = max(1, batch_size)
    return (
        StepKind(f"train_{b}", b, "train", per_round=2),
        StepKind(f"train_{4 * b}", 4 * b, "train"),
        StepKind(f"eval_{4 * b}", 4 * b, "eval"),
        StepKind(f"forget_{max(2, b // 4)}", max(2, b // 4), "ascent", per_round=2),  # batch norm needs 2
    )


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, kind: StepKind,
          x: torch.Tensor, y: torch.Tensor) -> None:
    if kind.mode == "eval":
        model.eval()
        with torch.no_grad():
            model(x)
        return
    model.train()
    loss = criterion(model(x), y)
    if kind.mode == "ascent":
        loss = -loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def calibration_profile(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    model_cfg: ModelConfig,
    train_cfg: TrainingConfig,
    device: torch.device,
    rounds: int = PROFILE_ROUNDS,
    clock: Clock = Clock.WALL,
    kinds: tuple[StepKind, ...] | None = None,
    min_seconds: float = PROFILE_MIN_SECONDS,
) -> dict[str, float]:
    """Median seconds of one step of each kind (:func:`step_kinds`), on ``clock``: ``{name: seconds}``.

    The kinds are interleaved: each round runs ``per_round`` steps of every kind in turn, after one
    warm-up round of one step each (it pays the allocations and kernel choices of each batch shape),
    so a slower spell of the machine falls on every kind alike rather than on one. ``rounds`` rounds
    are measured, and more (up to :data:`PROFILE_MAX_ROUNDS`) while they took under ``min_seconds``
    in all (a GPU's steps take milliseconds). The default 2 rounds of the Check phase take about 5 CPU
    seconds on a 2-core CPU, warm-up included (``benchmarks/bench_calibration.py`` prints the figures).

    images: uint8 ``[n, 3, H, W]``; labels: int64 ``[n]`` (the first images are reused, a kind's batch
    capped at n).
    """
    kinds = step_kinds(train_cfg.batch_size) if kinds is None else kinds
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    criterion = nn.CrossEntropyLoss()
    largest = min(max(kind.batch for kind in kinds), len(images))
    x_all = torch.from_numpy(images[:largest]).to(device).float().contiguous(memory_format=torch.channels_last)
    y_all = torch.from_numpy(labels[:largest]).to(device)
    batches = {kind.name: (x_all[:min(kind.batch, largest)], y_all[:min(kind.batch, largest)]) for kind in kinds}
    times: dict[str, list[float]] = {kind.name: [] for kind in kinds}
    round_, measured = 0, 0.0
    while round_ <= rounds or (measured < min_seconds and round_ <= PROFILE_MAX_ROUNDS):
        for kind in kinds:
            x, y = batches[kind.name]
            for _ in range(kind.per_round if round_ else 1):
                _sync(device)
                start = clock.now()
                _step(model, optimizer, criterion, kind, x, y)
                _sync(device)
                if round_ > 0:
                    times[kind.name].append(clock.now() - start)
                    measured += times[kind.name][-1]
        round_ += 1
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def anchored(profile: Mapping[str, float], kind: str, seconds: float) -> dict[str, float]:
    """``profile`` scaled so that its ``kind`` entry is ``seconds`` (the other kinds keep their proportions).

    The recipe's step time recorded with the reference (``calibration_step_seconds``, 20 steps per model)
    anchors the profile measured beside it, so that kind's ratio is the same as without a profile.
    """
    scale = seconds / profile[kind]
    return {name: value * scale for name, value in profile.items()}


def speed_factor(here: Mapping[str, float], there: Mapping[str, float],
                 quantile: float = FACTOR_QUANTILE) -> tuple[float, dict[str, float]]:
    """(factor, per-kind ratios): each kind's step time here over there, for the kinds both profiles
    have (in the order of ``here``), and the ``quantile`` of those ratios (1.0: the largest; linear
    interpolation between them)."""
    ratios = {name: here[name] / there[name] for name in here if there.get(name, 0) > 0}
    if not ratios:
        raise ValueError(f"no step kind in common: here {sorted(here)}, there {sorted(there)}")
    return float(np.quantile(list(ratios.values()), quantile)), ratios


def profile_record(profile: Mapping[str, float]) -> dict[str, np.ndarray]:
    """A profile as work-record arrays (:data:`PROFILE_RECORD_KEYS`)."""
    names = list(profile)
    return {PROFILE_RECORD_KEYS[0]: np.array(names), PROFILE_RECORD_KEYS[1]: np.array([profile[n] for n in names])}


def record_profile(record: Mapping[str, np.ndarray]) -> dict[str, float] | None:
    """The profile of a work record (None: recorded before profiles existed)."""
    if not all(key in record for key in PROFILE_RECORD_KEYS):
        return None
    names, seconds = (record[key] for key in PROFILE_RECORD_KEYS)
    return {str(name): float(value) for name, value in zip(names, seconds)}


def mean_profile(profiles: list[dict[str, float] | None]) -> dict[str, float] | None:
    """The mean of each kind over ``profiles``; None when any is None or they name other kinds."""
    if not profiles or any(p is None for p in profiles) or any(set(p) != set(profiles[0]) for p in profiles):
        return None
    return {name: float(np.mean([p[name] for p in profiles])) for name in profiles[0]}
