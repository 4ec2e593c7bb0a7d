"""The scoring program: compare the unlearned models with the retrained ones, write the scores and the report.

``python -m unlearning_challenge.scoring`` and ``from unlearning_challenge.scoring import main``
run the program (:mod:`.program`); :mod:`.statistics`, :mod:`.mia` and :mod:`.report` add the
detailed results.
"""

from unlearning_challenge.scoring.program import (
    ScoringError,
    ScoringInputs,
    compute_scores,
    main,
    read_inputs,
    scores_txt,
    write_scores,
)

__all__ = ["ScoringError", "ScoringInputs", "compute_scores", "main", "read_inputs", "scores_txt", "write_scores"]
