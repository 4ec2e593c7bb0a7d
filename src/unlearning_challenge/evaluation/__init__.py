"""``unlearning-challenge evaluate``: organizers run several submissions on a phase, resumably, and rank them.

Each (submission, run) pair is a unit of work, run through the ingestion's own
:class:`~unlearning_challenge.runner.session.RunSession` and trusted evaluation
(:func:`~unlearning_challenge.judged.judged_runs`), either in this process
(``local``) or on a Ray cluster's run slots, one long-lived actor each (``ray``). Every finished run is kept in a
work folder; the per-submission ingestion output, its scores and the leaderboard
are written from it.

- :mod:`.options`: the command's options and their checks (no heavy import);
- :mod:`.work`: the work folder: the submissions' copies and each finished run;
- :mod:`.runs`: runs of one submission in one session (both backends), and the local backend;
- :mod:`.slots`: a run slot (the Ray actor), its node's budget and its memory;
- :mod:`.ray_runs`: the Ray backend: the slots fed batches, runs saved as they stream back;
- :mod:`.leaderboard`: the leaderboard's rows, ``leaderboard.csv`` and ``leaderboard.html``;
- :mod:`.driver`: the command itself.
"""
