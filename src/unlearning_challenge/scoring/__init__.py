"""The scoring program: compare the unlearned models with the retrained ones, write the scores and the report.

``python -m unlearning_challenge.scoring`` and ``from unlearning_challenge.scoring import main``
run the program (:mod:`.program`), which computes a :class:`.result.ScoreResult`; :mod:`.statistics`, :mod:`.mia` and :mod:`.report` add the
detailed results.
"""

from unlearning_challenge.scoring.program import (
    ScoringError,
    add_statistics,
    compute_scores,
    main,
    read_inputs,
    write_scores,
)
from unlearning_challenge.scoring.result import ScoreResult, ScoringInputs, scores_txt

__all__ = ["ScoreResult", "ScoringError", "ScoringInputs", "add_statistics", "compute_scores", "main", "read_inputs",
           "scores_txt", "write_scores"]
