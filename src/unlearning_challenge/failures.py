"""Why a run failed: the closed vocabulary of ``ingestion.json``'s ``failure`` key, each kind with a fixed sentence.

The trusted side decides the kind (from the stage the worker was in, the limit that
stopped it, or its own check of the returned weights); the sentence names nothing
the submission controls, so it may be shown even where the run's own text may not
(see :mod:`unlearning_challenge.runner.disclosure`).
"""

from __future__ import annotations

from unlearning_challenge.config import Choice


class Failure(Choice):
    """Why a run failed, as the trusted side classified it (written as ``failure`` in ``ingestion.json``)."""

    SETUP = "setup"
    RAISED_ON_IMPORT = "raised_on_import"
    RAISED_IN_CALL = "raised_in_call"
    BAD_RETURN = "bad_return"
    REPORTED_ERROR = "reported_error"
    EXITED = "exited"
    TIMED_OUT = "timed_out"
    OVER_BUDGET = "over_budget"
    NO_WEIGHTS = "no_weights"
    UNREADABLE_WEIGHTS = "unreadable_weights"
    WRONG_ARCHITECTURE = "wrong_architecture"
    NONFINITE_WEIGHTS = "nonfinite_weights"
    OUT_OF_MEMORY = "out_of_memory"

    @property
    def sentence(self) -> str:
        """The failure in words, naming nothing the submission controls."""
        return _SENTENCES[self]


_SENTENCES = {
    Failure.SETUP: "the run's setup failed before the submission's code ran (loading the data or the original model)",
    Failure.RAISED_ON_IMPORT: "the submission raised an exception while unlearning.py was imported",
    Failure.RAISED_IN_CALL: "the submission raised an exception inside unlearning()",
    Failure.BAD_RETURN: "unlearning() returned something other than a model, or a model that could not be saved",
    Failure.REPORTED_ERROR: "the run reported an error at no known stage",
    Failure.EXITED: "the worker process ended without finishing the run (it exited, or was killed, for instance "
                    "for using too much memory)",
    Failure.TIMED_OUT: "the run was killed past its hard time limit",
    Failure.OVER_BUDGET: "the run took longer than its time budget",
    Failure.NO_WEIGHTS: "the run reported done but left no model weights",
    Failure.UNREADABLE_WEIGHTS: "the returned model's weights could not be read",
    Failure.WRONG_ARCHITECTURE: "the returned model's weights do not fit the phase's model (names or shapes differ)",
    Failure.NONFINITE_WEIGHTS: "the returned model has NaN or infinite weights",
    Failure.OUT_OF_MEMORY: "the run was killed for using more memory than its run slot holds (use less memory, "
                           "or the organizers may give each run more with --memory-per-run)",
}
