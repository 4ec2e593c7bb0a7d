"""The scoring program: compare the unlearned models with the retrained ones, write the scores and the report.

``python -m unlearning_challenge.scoring`` and ``from unlearning_challenge.scoring import main``
run the program (:mod:`.program`), which computes a :class:`.result.ScoreResult`; :mod:`.statistics`, :mod:`.mia` and :mod:`.report` add the
detailed results.
"""

import importlib

# Imported on first use (the program imports torch): the light parts, such as the score's keys in
# scoring.result, which competition.yaml's leaderboard is checked against, come without it.
_EXPORTS = {
    "ScoringError": ".program",
    "add_statistics": ".program",
    "compute_scores": ".program",
    "main": ".program",
    "read_inputs": ".program",
    "write_scores": ".program",
    "ScoreResult": ".result",
    "ScoringInputs": ".result",
    "scores_txt": ".result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
