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

from ._confidence import logit_scaled_confidence
from ._constants import ALPHA, BOUNDS, DELTA, EPSILON_CAP, MAX_ABS_CONFIDENCE
from ._epsilon import per_example_epsilons
from ._score import bucket_points, example_points, final_score, forget_quality

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
