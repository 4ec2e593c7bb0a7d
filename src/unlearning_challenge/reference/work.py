"""The reference's work folder, and the training of one model into it.

Work folder layout::

    dataset.npz                  the data and split (with fingerprint in work.json)
    work.json                    config and split fingerprints
    original.safetensors         original model (trained on train)
    original.json                its accuracies and training seconds
    original_1.safetensors, original_1.json, ...
                                 originals 1 .. K-1 when reference.num_originals is K > 1
    retrained/seed_00000.npz     one retrained model's outputs (forget logits, logits on the evaluation
                                 samples and their indices, accuracies, seconds)

Both backends of :mod:`.generate` train through these functions: the local one
in its own process, the Ray one in a task per model (:mod:`.ray_tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from unlearning_challenge.artifacts import DATASET_FILE, original_weights_name
from unlearning_challenge.atomic import write_json
from unlearning_challenge.config import PhaseConfig
from unlearning_challenge.data import FaceDataset, Splits, evaluation_samples
from unlearning_challenge.reference.calibration import calibration_step_seconds
from unlearning_challenge.reference.evaluation import ModelOutputs, evaluate_model
from unlearning_challenge.reference.models import build_model, load_model, save_weights
from unlearning_challenge.reference.training import train_model


@dataclass(frozen=True)
class WorkFolder:
    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / DATASET_FILE

    @property
    def info(self) -> Path:
        return self.root / "work.json"

    @property
    def original(self) -> Path:
        return self.original_weights(0)

    @property
    def original_info(self) -> Path:
        return self.original_record(0)

    def original_weights(self, k: int) -> Path:
        """Original ``k``'s weights (named as in the input data)."""
        return self.root / original_weights_name(k)

    def original_record(self, k: int) -> Path:
        """Original ``k``'s accuracies, seed and training seconds."""
        return self.root / ("original.json" if k == 0 else f"original_{k}.json")

    def original_done(self, k: int) -> bool:
        return self.original_weights(k).exists() and self.original_record(k).exists()

    def retrained(self, seed: int) -> Path:
        return self.root / "retrained" / f"seed_{seed:05d}.npz"


def _outputs_record(outputs: ModelOutputs, seconds: float, calibration: float, seed: int,
                    fingerprint: str, samples) -> dict[str, np.ndarray]:
    sampled = {} if outputs.retain_sample_logits is None else {
        "retain_sample_logits": outputs.retain_sample_logits,
        "validation_sample_logits": outputs.validation_sample_logits,
        "retain_sample_indices": samples.retain,
        "validation_sample_indices": samples.validation,
    }
    return {
        **sampled,
        "calibration_step_seconds": np.array(calibration),
        "forget_logits": outputs.forget_logits,
        "retain_accuracy": np.array(outputs.retain_accuracy),
        "test_accuracy": np.array(outputs.test_accuracy),
        "forget_accuracy": np.array(outputs.forget_accuracy),
        "seconds": np.array(seconds),
        "seed": np.array(seed),
        "split_fingerprint": np.array(fingerprint),
    }


def train_original(config: PhaseConfig, work: WorkFolder, dataset: FaceDataset, splits: Splits, device: torch.device,
                   *, k: int = 0, progress: bool = True) -> None:
    """Train original model ``k`` on the whole train split from its seed (skipped when it exists)."""
    if work.original_done(k):
        return
    seed = config.reference.original_seeds()[k]
    what = "original model" if config.reference.num_originals == 1 else f"original model {k}"
    bar = tqdm(total=config.training.epochs, desc=what, unit="epoch", disable=not progress)
    result = train_model(
        dataset, splits.train, splits.val,
        model_cfg=config.model, train_cfg=config.training, seed=seed, device=device,
        progress=lambda epoch, total, acc: (bar.update(1), bar.set_postfix(val_acc=f"{acc:.3f}")),
    )
    bar.close()
    # Store first, then evaluate the stored weights: the original model *is* the checkpoint.
    save_weights(result.state_dict, work.original_weights(k), dtype=config.model.checkpoint_dtype)
    model = load_model(work.original_weights(k), config.model, device)
    outputs = evaluate_model(model, dataset, splits, device)
    write_json(work.original_record(k), {
        "seed": seed,
        "seconds": result.seconds,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.best_val_accuracy,
        "retain_accuracy": outputs.retain_accuracy,
        "test_accuracy": outputs.test_accuracy,
        "forget_accuracy": outputs.forget_accuracy,
        "history": result.history,
    })


def train_retrained(
    config: PhaseConfig, dataset: FaceDataset, splits: Splits, seed: int, device: torch.device, fingerprint: str
) -> dict[str, np.ndarray]:
    """Train one model on retain only and return its outputs record."""
    result = train_model(
        dataset, splits.retain, splits.val,
        model_cfg=config.model, train_cfg=config.training, seed=seed, device=device,
    )
    model = build_model(config.model)
    model.load_state_dict(result.state_dict)
    samples = evaluation_samples(splits, config.reference.sample_size, config.split.seed)
    outputs = evaluate_model(model, dataset, splits, device, samples if config.reference.sample_size else None)
    calibration = calibration_step_seconds(
        dataset.images[splits.retain], dataset.age_group[splits.retain],
        model_cfg=config.model, train_cfg=config.training, device=device,
    )
    return _outputs_record(outputs, result.seconds, calibration, seed, fingerprint, samples)
