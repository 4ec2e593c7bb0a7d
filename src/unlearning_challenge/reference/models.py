"""The model architecture and its checkpoints (safetensors only)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import torch
import torchvision
from safetensors.torch import load_file, save_file

from unlearning_challenge.atomic import atomic_path
from unlearning_challenge.config import ModelConfig


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the architecture."""


def build_model(cfg: ModelConfig) -> torch.nn.Module:
    """The challenge's model: ``torchvision.models.resnet18(num_classes=...)``, untrained."""
    if cfg.arch != "resnet18":
        raise ValueError(f"unknown architecture {cfg.arch!r}; valid: ['resnet18']")
    return torchvision.models.resnet18(weights=None, num_classes=cfg.num_classes)


def model_with_weights(state_dict: dict[str, torch.Tensor], cfg: ModelConfig) -> torch.nn.Module:
    """The architecture holding ``state_dict``'s tensors (strict), on their device.

    Built on the meta device and given the tensors themselves: no random initialisation
    to overwrite (about 0.1 s a ResNet-18 on a CPU core), and torch's global generator
    is left as it was."""
    with torch.device("meta"):
        model = build_model(cfg)
    model.load_state_dict(state_dict, assign=True)
    return model


@functools.lru_cache(maxsize=None)
def expected_shapes(cfg: ModelConfig) -> Mapping[str, tuple[int, ...]]:
    """Every parameter's and buffer's name in the architecture, with its shape (read-only; built once a config)."""
    with torch.device("meta"):
        return MappingProxyType({key: tuple(value.shape) for key, value in build_model(cfg).state_dict().items()})


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA when available, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def save_weights(state_dict: dict[str, torch.Tensor], path: str | Path, dtype: str = "float32") -> None:
    """Save a state dict as safetensors, atomically; floating tensors stored as ``dtype``."""
    store_dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    tensors = {}
    for key, value in state_dict.items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(store_dtype)
        tensors[key] = value.contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors checkpoint; floating tensors come back as float32."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types on corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def architecture_problems(state_dict: dict[str, torch.Tensor], cfg: ModelConfig) -> list[str]:
    """Differences between ``state_dict`` and the architecture's (empty when it fits)."""
    expected = expected_shapes(cfg)
    problems = []
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing:
        problems.append(f"missing {len(missing)} parameter(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} parameter(s), e.g. {unexpected[:3]}")
    for key in sorted(set(expected) & set(state_dict)):
        if tuple(state_dict[key].shape) != expected[key]:
            problems.append(f"{key} has shape {tuple(state_dict[key].shape)}, expected {expected[key]}")
    return problems


def nonfinite_parameters(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating tensors holding NaN or infinite values."""
    return [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def load_model(path: str | Path, cfg: ModelConfig, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Build the architecture and load a checkpoint into it (strict), in eval mode."""
    state_dict = load_weights(path)
    problems = architecture_problems(state_dict, cfg)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit {cfg.arch}: " + "; ".join(problems))
    return model_with_weights(state_dict, cfg).to(device).eval()
