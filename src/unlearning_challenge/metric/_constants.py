"""Named constants of the scoring rule (values of the published scoring code)."""

from __future__ import annotations

import math

#: The ``delta`` of the (epsilon, delta) guarantee the attacks are scored against.
DELTA = 1e-5

#: How the false positive and false negative rates of an attack are estimated:
#: ``"empirical"`` (the published rule: counts / N) or ``"clopper-pearson"`` (one-sided
#: upper confidence bounds, which make each epsilon a high-probability lower bound).
BOUNDS = ("empirical", "clopper-pearson")

#: Default ``alpha`` of the Clopper-Pearson bounds: each rate is a (1 - alpha) upper bound.
ALPHA = 0.05

#: Largest epsilon an example can get; also what peaky and non-finite examples get.
EPSILON_CAP = 50.0

#: Density of the threshold grids: thresholds per unit of confidence.
THRESHOLDS_PER_UNIT = 100

#: Margin (in confidence units) around the peakier sample swept by the double threshold.
DOUBLE_THRESHOLD_BUFFER = 2.0

#: Left edges tried for every right edge of the double threshold: ceil(2 * 2.0 * 100) = 400.
NUM_LEFT_THRESHOLDS = int(math.ceil(2 * DOUBLE_THRESHOLD_BUFFER * THRESHOLDS_PER_UNIT))

#: An example is "peaky" (epsilon = cap) when min(range) / max(range) is below this.
PEAKY_RANGE_RATIO = 0.01

#: Width of the forgetting-quality buckets on the epsilon axis.
BUCKET_WIDTH = 0.5

#: Largest accepted magnitude of a confidence. Logit-scaled confidences lie within
#: about +-104 (``log(1e-45)``); larger values mean the input is not a confidence, and
#: the threshold grids (100 per unit of range) would no longer fit in memory.
MAX_ABS_CONFIDENCE = 1e4
