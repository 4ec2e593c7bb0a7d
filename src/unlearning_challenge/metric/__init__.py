"""The competition's scoring metric, exact against the published scoring code.

Pure functions, arrays in and arrays out:

* ``logit_scaled_confidence(logits, labels)``: the per-model, per-example input;
* ``per_example_epsilons(unlearned, retrained, bounds=...)``: epsilon of each forget
  example (``bounds="clopper-pearson"``: high-probability lower bounds);
* ``example_points`` / ``bucket_points``: the epsilon buckets and their points;
* ``forget_quality(unlearned, retrained)``: F, the mean of the points;
* ``final_score(F, RA_U, RA_R, TA_U, TA_R)``: F weighted by the relative accuracies.

See ``docs/metric.md`` for the rules and how they are computed.
"""

import importlib

from ._constants import ALPHA, BOUNDS, DELTA, EPSILON_CAP, MAX_ABS_CONFIDENCE

# The functions, by the module that defines them: imported on first use, so that the
# constants (the rate estimates' names, which phase configs use) come without numpy, scipy or torch.
_FUNCTIONS = {
    "logit_scaled_confidence": "._confidence",
    "per_example_epsilons": "._epsilon",
    "bucket_points": "._score",
    "example_points": "._score",
    "final_score": "._score",
    "forget_quality": "._score",
}


def __getattr__(name: str):
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ALPHA",
    "BOUNDS",
    "DELTA",
    "EPSILON_CAP",
    "MAX_ABS_CONFIDENCE",
    "bucket_points",
    "example_points",
    "final_score",
    "forget_quality",
    "logit_scaled_confidence",
    "per_example_epsilons",
]
