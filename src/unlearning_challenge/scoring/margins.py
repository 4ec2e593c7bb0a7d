"""The margins the per-example attacks read, made finite.

The logit-scaled confidence ``log(p / (1 - p))`` of the correct class is the
correct-class margin ``z_y - logsumexp_{j != y} z_j`` of the logits ``z`` (the
same number: ``p / (1 - p) = exp(z_y) / sum_{j != y} exp(z_j)``), so U-LiRA
and KLoM read the confidences the score already computed. A submission's
outputs may hold NaN or infinite values; those are mapped into the clip range
so that the statistics stay defined: ``+-inf`` to ``+-MARGIN_CLIP``, NaN to
``-MARGIN_CLIP`` (as wrong as a margin can be).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MARGIN_CLIP", "finite_margins"]

# Margins are clipped to [-MARGIN_CLIP, MARGIN_CLIP], as in the KLoM reference code.
MARGIN_CLIP = 100.0


def finite_margins(name: str, values: Any) -> np.ndarray:
    """float64 ``[N, E]`` margins clipped to ``[-MARGIN_CLIP, MARGIN_CLIP]``, NaN as ``-MARGIN_CLIP``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty [N, E] array of margins, got shape {array.shape}")
    return np.nan_to_num(np.clip(array, -MARGIN_CLIP, MARGIN_CLIP), nan=-MARGIN_CLIP)
