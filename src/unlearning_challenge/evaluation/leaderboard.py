"""The leaderboard of an evaluation: one row per submission, scored ones by score, the others at the bottom.

With at least two scored submissions each row also has its score's 95% interval, the
interval of ranks it takes and its probability of ranking first, from the joint
resamples of :func:`~unlearning_challenge.scoring.ranking.rank_submissions`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unlearning_challenge.atomic import write_text
from unlearning_challenge.config import Choice
from unlearning_challenge.scoring.ranking import COMPARE_CONFIDENCE, Ranking
from unlearning_challenge.templating import html_environment

LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_HTML = "leaderboard.html"
COLUMNS = ("rank", "submission", "score", "score_low", "score_high", "rank_low", "rank_high", "p_first", "status",
           "message")


class Outcome(Choice):
    """Where a submission stands."""

    SCORED = "scored"
    FAILED = "failed"  # its ingestion failed (a run failed), or its output could not be scored
    INCOMPLETE = "incomplete"  # some of its runs could not be run (lost tasks): run the command again


@dataclass(frozen=True)
class Entry:
    """One submission's outcome: its score when scored, else why not (the ingestion's message)."""

    name: str
    outcome: Outcome
    score: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Row:
    """A leaderboard line (``rank`` and the intervals None where they do not apply)."""

    rank: int | None
    submission: str
    score: float | None
    score_low: float | None
    score_high: float | None
    rank_low: int | None
    rank_high: int | None
    p_first: float | None
    status: str
    message: str


def leaderboard_rows(entries: Sequence[Entry], ranking: Ranking | None = None) -> list[Row]:
    """Scored entries by score (best first, ties by name), with ``ranking``'s intervals when given;
    then the failed and incomplete ones, by name."""
    intervals = {rank.name: rank for rank in ranking.rows} if ranking is not None else {}
    scored = sorted((e for e in entries if e.outcome == Outcome.SCORED), key=lambda e: (-e.score, e.name))
    rows = []
    for position, entry in enumerate(scored, start=1):
        rank = intervals.get(entry.name)
        rows.append(Row(position, entry.name, entry.score, rank and rank.low, rank and rank.high,
                        rank and rank.rank_low, rank and rank.rank_high, rank and rank.p_first,
                        entry.outcome.value, entry.message))
    others = sorted((e for e in entries if e.outcome != Outcome.SCORED), key=lambda e: (e.outcome.value, e.name))
    rows += [Row(None, e.name, None, None, None, None, None, None, e.outcome.value, e.message) for e in others]
    return rows


def leaderboard_csv(rows: Sequence[Row]) -> str:
    """The rows as CSV with a header (``COLUMNS``; empty cells where a value does not apply)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if getattr(row, key) is None else getattr(row, key) for key in COLUMNS])
    return buffer.getvalue()


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard: {{ phase }}</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
td.text { text-align: left; white-space: pre-wrap; max-width: 50em; }
tr.failed, tr.incomplete { color: #888; }
</style></head><body>
<h1>Leaderboard: phase {{ phase }}</h1>
<p>{{ note }}</p>
<table>
<tr><th>rank</th><th>submission</th><th>score</th><th>{{ confidence }} interval</th><th>ranks ({{ confidence }})</th>
<th>P(first)</th><th>status</th><th>message</th></tr>
{% for row in rows %}<tr class="{{ row.status }}">
<td>{{ row.rank if row.rank is not none else "" }}</td><td class="text">{{ row.submission }}</td>
<td>{{ "%.4f"|format(row.score) if row.score is not none else "" }}</td>
<td>{{ "[%.4f, %.4f]"|format(row.score_low, row.score_high) if row.score_low is not none else "" }}</td>
<td>{% if row.rank_low is not none %}{{ row.rank_low if row.rank_low == row.rank_high else "%d-%d"|format(row.rank_low, row.rank_high) }}{% endif %}</td>
<td>{{ "%.0f%%"|format(100 * row.p_first) if row.p_first is not none else "" }}</td>
<td class="text">{{ row.status }}</td><td class="text">{{ row.message }}</td></tr>
{% endfor %}</table>
</body></html>
"""


def leaderboard_note(ranking: Ranking | None, num_models: int) -> str:
    """What the intervals are (or why there are none)."""
    if ranking is None:
        return f"N = {num_models} runs per submission. Intervals need at least two scored submissions."
    what = ("models and forget examples" if ranking.num_originals is None else
            f"the {ranking.num_originals} original models, the runs from each, the retrained models and the forget "
            "examples (so the intervals are over trained models too)")
    return (f"N = {num_models} runs per submission. Intervals from {ranking.num_resamples} joint resamples of "
            f"{what}, the same for every submission (seed {ranking.seed}); rank 1 is the "
            "best; P(first): the share of resamples in which the submission ranks first.")


def write_leaderboard(folder: Path, rows: Sequence[Row], *, phase: str, note: str) -> tuple[Path, Path]:
    """``leaderboard.csv`` and ``leaderboard.html`` into ``folder``; their paths."""
    html = html_environment().from_string(_HTML).render(rows=rows, phase=phase, note=note,
                                                         confidence=f"{COMPARE_CONFIDENCE:.0%}")
    write_text(folder / LEADERBOARD_CSV, leaderboard_csv(rows))
    write_text(folder / LEADERBOARD_HTML, html)
    return folder / LEADERBOARD_CSV, folder / LEADERBOARD_HTML
