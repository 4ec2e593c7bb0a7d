"""The competition's web pages (jinja2 templates) and its logo.

Pages are rendered with autoescape and StrictUndefined: a placeholder that
names no known value is an error, and every value is escaped except the phase
table, which is HTML rendered from its own template.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import jinja2
from markupsafe import Markup

from unlearning_challenge.atomic import write_bytes
from unlearning_challenge.templating import html_environment
from unlearning_challenge.platforms.competition import Competition, date_only
from unlearning_challenge.platforms.errors import BundleError
from unlearning_challenge.platforms.phases import PhasePlan

__all__ = ["PAGE_PLACEHOLDERS", "logo_bytes", "page_context", "phases_table", "render_logo", "render_page"]

# The values a page may use, e.g. ``{{ title }}``.
PAGE_PLACEHOLDERS = ("title", "phases_table", "safety_factor", "per_run_overhead_seconds", "startup_seconds",
                     "worker_speed_ratio")

_ENVIRONMENT = html_environment()

_PHASES_TABLE = _ENVIRONMENT.from_string(
    "<table>\n<thead><tr><th>Phase</th><th>Starts</th><th>Runs N</th><th>Time budget per run</th>"
    "<th>Platform time limit per step</th><th>Submissions</th></tr></thead>\n<tbody>\n"
    "{% for row in rows %}"
    "<tr><td>{{ row.name }}</td><td>{{ row.start }}</td><td>{{ row.num_models }}</td>"
    "<td>{{ row.budget }} s (about {{ row.retain_epochs }} retain epochs)</td>"
    "<td>{{ row.time_limit }} s</td>"
    "<td>{{ row.max_submissions }} ({{ row.max_submissions_per_day }} per day)</td></tr>"
    "{% if not loop.last %}\n{% endif %}"
    "{% endfor %}"
    "\n</tbody>\n</table>\n<p>Dates are UTC.{% if end_date %} The competition ends on {{ end_date }}.{% endif %}</p>"
)


def phases_table(plans: list[PhasePlan], competition: Competition) -> Markup:
    """The included phases as an HTML table: start, N, per-run budget, time limit, submissions."""
    rows = [
        {
            "name": plan.phase.name,
            "start": date_only(plan.phase.start).isoformat(),
            "num_models": plan.num_models,
            "budget": f"{plan.time_budget_seconds:.1f}",
            "retain_epochs": f"{plan.budget_retain_epochs:g}",
            "time_limit": plan.execution_time_limit,
            "max_submissions": plan.phase.max_submissions,
            "max_submissions_per_day": plan.phase.max_submissions_per_day,
        }
        for plan in plans if plan.included
    ]
    end_date = date_only(competition.end_date).isoformat() if competition.end_date else None
    return Markup(_PHASES_TABLE.render(rows=rows, end_date=end_date))


def page_context(competition: Competition, plans: list[PhasePlan]) -> dict[str, object]:
    """The values of :data:`PAGE_PLACEHOLDERS`."""
    limits = competition.time_limit
    return {
        "title": competition.title,
        "phases_table": phases_table(plans, competition),
        "safety_factor": f"{limits.safety_factor:g}",
        "per_run_overhead_seconds": f"{limits.per_run_overhead_seconds:g}",
        "startup_seconds": f"{limits.startup_seconds:g}",
        "worker_speed_ratio": f"{limits.worker_speed_ratio:g}",
    }


def render_page(text: str, context: dict[str, object], source: str) -> str:
    """Render one page's template; an unknown placeholder or an empty page is a BundleError naming ``source``."""
    try:
        rendered = _ENVIRONMENT.from_string(text).render(context)
    except jinja2.UndefinedError as exc:
        raise BundleError(f"{source}: unknown placeholder ({exc}); known: {sorted(context)}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise BundleError(f"{source}, line {exc.lineno}: not a valid page template: {exc.message}") from None
    if not rendered.strip():
        raise BundleError(f"{source} is empty (Codabench refuses empty pages)")
    return rendered


def render_logo(path: Path) -> None:
    """Draw the competition logo (a PNG) with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig = plt.figure(figsize=(2.56, 2.56), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.patch.set_facecolor("#10263f")
    rng = np.random.default_rng(2023)
    # A grid of "training examples"; the forgotten ones fade out.
    xs, ys = np.meshgrid(np.linspace(0.14, 0.86, 7), np.linspace(0.3, 0.86, 6))
    forgotten = rng.random(xs.shape) < 0.12
    ax.scatter(xs[~forgotten], ys[~forgotten], s=150, color="#7fc8f8", edgecolors="none")
    ax.scatter(xs[forgotten], ys[forgotten], s=150, facecolors="none", edgecolors="#f5a65b", linewidths=1.5,
               linestyles="--")
    ax.text(0.5, 0.12, "UNLEARN", ha="center", va="center", color="white", fontsize=22, fontweight="bold",
            family="DejaVu Sans")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=fig.get_facecolor(), metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def logo_bytes(competition: Competition, root: Path, log: Callable[[str], None]) -> bytes:
    """The logo's PNG bytes; drawn first when the file named by ``image`` is missing."""
    path = root / competition.image
    if not path.is_file():
        log(f"logo {competition.image} is missing: drawing one")
        render_logo(path)
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BundleError(f"logo {competition.image} is not a PNG file")
    return data
