"""Checks at the boundary of the public functions; every message names the argument."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._constants import BOUNDS, MAX_ABS_CONFIDENCE


def _real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as an ndarray of real numbers (integer or floating), without copying."""
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold real numbers (integer or floating dtype); got dtype {array.dtype}")
    return array


def confidence_pair(unlearned: Any, retrained: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate the two ``[N, E]`` confidence arrays; return them as float64 arrays.

    Finite values beyond ``MAX_ABS_CONFIDENCE`` are refused; non-finite values are
    allowed (the examples holding them get the cap).
    """
    arrays = []
    for name, value in (("unlearned", unlearned), ("retrained", retrained)):
        array = _real_array(value, name)
        if array.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D array [num_models, num_examples]; got {array.ndim}-D shape {array.shape}"
            )
        arrays.append(array)
    u, r = arrays
    if u.shape[0] != r.shape[0]:
        raise ValueError(f"unlearned has {u.shape[0]} models but retrained has {r.shape[0]} (axis 0 must match)")
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"unlearned has {u.shape[1]} examples but retrained has {r.shape[1]} (axis 1 must match)")
    if u.shape[0] < 2:
        raise ValueError(f"at least 2 models per family are needed; got {u.shape[0]}")
    if u.shape[1] == 0:
        raise ValueError("unlearned and retrained have 0 examples (axis 1); at least 1 is needed")
    out = []
    for name, array in (("unlearned", u), ("retrained", r)):
        array = np.asarray(array, dtype=np.float64)
        finite = array[np.isfinite(array)]
        if finite.size and np.abs(finite).max() > MAX_ABS_CONFIDENCE:
            raise ValueError(
                f"{name} holds a value of magnitude {np.abs(finite).max():.6g}; confidences must lie within "
                f"+-{MAX_ABS_CONFIDENCE:g} (logit-scaled confidences are bounded by about +-104)"
            )
        out.append(array)
    return out[0], out[1]


def num_models(value: Any, name: str = "num_models") -> int:
    """A model count: an integer of at least 2."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}")
    if value < 2:
        raise ValueError(f"{name} must be at least 2; got {value}")
    return int(value)


def delta(value: Any) -> float:
    """``delta`` as a Python float in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"delta must be a real number; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"delta must be in [0, 1); got {value!r}")
    return value


def bounds(value: Any) -> str:
    """The rate estimate: one of ``BOUNDS``."""
    if not isinstance(value, str) or value not in BOUNDS:
        raise ValueError(f"bounds must be one of {list(BOUNDS)}; got {value!r}")
    return value


def alpha(value: Any) -> float:
    """``alpha`` of the Clopper-Pearson bounds as a Python float in (0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a real number; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not (0.0 < value < 1.0):
        raise ValueError(f"alpha must be in (0, 1) (each rate is a 1 - alpha upper bound); got {value!r}")
    return value


def epsilons(value: Any) -> np.ndarray:
    """A 1-D array of epsilons as float64."""
    array = _real_array(value, "eps")
    if array.ndim != 1:
        raise ValueError(f"eps must be a 1-D array [num_examples]; got {array.ndim}-D shape {array.shape}")
    return np.asarray(array, dtype=np.float64)


def mean_accuracy(value: Any, name: str, *, positive: bool) -> float:
    """A scalar accuracy, or the mean of per-model accuracies, checked to be finite."""
    array = _real_array(value, name)
    if array.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array of per-model accuracies; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; give a scalar or at least one per-model accuracy")
    mean = float(np.mean(array, dtype=np.float64))
    if not math.isfinite(mean):
        raise ValueError(f"{name} must be finite; got mean {mean}")
    if positive and mean <= 0:
        raise ValueError(f"{name} must be positive (it divides the score); got {mean}")
    return mean


def logits_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate logits ``[n, C]`` or ``[N, n, C]`` and labels ``[n]``.

    Returns a C-ordered copy of the logits in their own floating dtype (float32
    stays float32; other real dtypes become float64) and the labels as intp.
    """
    z = _real_array(logits, "logits")
    if z.ndim not in (2, 3):
        raise ValueError(
            f"logits must be a 2-D array [num_examples, num_classes] or 3-D [num_models, num_examples, num_classes]; "
            f"got {z.ndim}-D shape {z.shape}"
        )
    if z.shape[-1] < 1:
        raise ValueError(f"logits must have at least 1 class (last axis); got shape {z.shape}")
    y = np.asarray(labels)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must hold integers; got dtype {y.dtype}")
    n = z.shape[-2]
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match logits of shape {z.shape}; got shape {y.shape}")
    num_classes = z.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for logits with {num_classes} classes; "
            f"got values from {y.min()} to {y.max()}"
        )
    dtype = z.dtype if z.dtype in (np.float32, np.float64) else np.float64
    return np.array(z, dtype=dtype, order="C", copy=True), y.astype(np.intp)
