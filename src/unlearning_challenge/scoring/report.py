"""The detailed results page of a scored submission.

:func:`detailed_results_html` renders a :class:`~unlearning_challenge.scoring.result.ScoreResult`
and the scoring inputs with the jinja2 template ``templates/detailed_results.html``
(autoescape, StrictUndefined): one self-contained HTML page, inline CSS, plots
embedded as base64 PNG (drawn with matplotlib's Agg canvas, no pyplot state), no
external assets, readable without the project. This module computes what the
page shows; it computes no score: what the result does not hold (its statistics)
the page says was not computed.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unlearning_challenge.artifacts import IngestionManifest, ModelFamily, RunRecord
from unlearning_challenge.metric import EPSILON_CAP, bucket_points, example_points
from unlearning_challenge.scoring.mia import MembershipInference
from unlearning_challenge.scoring.originals import NOISE_NOTE, OriginalsResult
from unlearning_challenge.scoring.result import ScoreResult, ScoringInputs
from unlearning_challenge.templating import html_environment

__all__ = ["detailed_results_html"]

# Resolution of the embedded plots.
PLOT_DPI = 90
# Forget examples shown in each of the "best" and "worst" groups.
EXAMPLES_PER_GROUP = 4
# Runs with a message listed on the page.
RUNS_LISTED = 50
TEMPLATE = "detailed_results.html"

_UNLEARNED_COLOR = "#d95f02"
_RETRAINED_COLOR = "#1b9e77"


# ----------------------------------------------------------------------------- formatting


def _number(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals; ``n/a`` for None and NaN."""
    if value is None:
        return "n/a"
    number = float(value)
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.{digits}f}"


def _seconds(value: Any) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    if not math.isfinite(number):
        return "n/a"
    return f"{number:.1f} s" if number >= 10 else f"{number:.2f} s"


def _mia_text(attack: MembershipInference) -> Markup:
    if not attack.available:
        return Markup("n/a ({})").format(attack.unavailable)
    return Markup(f"{attack.mean:.3f} &plusmn; {attack.std:.3f}")


_ENVIRONMENT = html_environment(Path(__file__).parent / "templates")
_ENVIRONMENT.filters.update(
    number=_number,
    seconds=_seconds,
    percent=lambda value: f"{float(value):.0%}",
    g=lambda value: f"{float(value):g}",
    mia=_mia_text,
    nanmin=lambda values: float(np.nanmin(values)),
    nanmax=lambda values: float(np.nanmax(values)),
)


def _png(fig: Figure) -> str:
    """The figure as base64 PNG."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Buckets:
    """The epsilon buckets of N models: lower ``edges`` ``[K]``, ``points`` ``[K]``, where the last ends
    (``end``), their ``width``, examples per bucket ``counts`` ``[K]``, examples past the last bucket
    (``beyond``) and at the cap (``capped``), and each example's ``earned`` points ``[E]``."""

    edges: np.ndarray
    points: np.ndarray
    end: float
    width: float
    counts: np.ndarray
    beyond: int
    capped: int
    earned: np.ndarray

    def rows(self) -> list[dict[str, float]]:
        total = max(self.earned.size, 1)
        return [{"low": edge, "high": edge + self.width, "points": points, "count": int(count),
                 "contribution": points * count / total}
                for edge, points, count in zip(self.edges, self.points, self.counts)]

    def table(self) -> dict[str, Any]:
        return {"rows": self.rows(), "width": self.width, "end": self.end, "beyond": self.beyond,
                "capped": self.capped, "total": float(self.earned.mean()) if self.earned.size else 0.0}


def _buckets(eps: np.ndarray, num_models: int) -> _Buckets:
    edges, points = (np.asarray(a, dtype=np.float64) for a in bucket_points(num_models))
    earned = np.asarray(example_points(eps, num_models), dtype=np.float64)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 0.5
    end = float(edges[-1] + width) if edges.size else 0.0
    capped = eps >= EPSILON_CAP
    beyond = (eps >= end) & ~capped
    index = np.searchsorted(edges, eps, side="right") - 1
    counts = np.array([int(np.sum((index == k) & (eps < end))) for k in range(edges.size)], dtype=int)
    return _Buckets(edges, points, end, width, counts, int(beyond.sum()), int(capped.sum()), earned)


def _points_label(points: float) -> str:
    if points <= 0:
        return "0"
    k = int(round(-math.log2(points)))
    return "1" if k == 0 else f"$2^{{-{k}}}$"


def _plot_epsilons(eps: np.ndarray, buckets: _Buckets) -> str:
    fig = Figure(figsize=(10, 6.6))
    top, bottom = fig.subplots(2, 1)
    edges, end = buckets.edges, buckets.end
    shown = eps[eps < EPSILON_CAP]
    # Past twice the last bucket's end every epsilon earns the same 0 points: gather those in the last bin.
    limit = max(2.0 * end, end + 2.0)
    upper = max(min(float(shown.max()) if shown.size else 0.0, limit), end, 0.5)
    gathered = int(np.sum(shown > upper))
    if shown.size:
        top.hist(np.minimum(shown, upper), bins=np.linspace(0.0, upper * 1.0001, 61), color="#7570b3", alpha=0.85)
    for edge in edges:
        top.axvline(edge, color="#999", lw=0.8, ls="--")
    top.axvline(end, color="#d62728", lw=1.4, label=f"last bucket ends ({end:g}): 0 points past it")
    top.set_xlabel("per-example epsilon (lower = better forgetting); dashed lines: bucket edges"
                   + (f"; {gathered} above {upper:g} drawn at {upper:g}" if gathered else ""))
    top.set_ylabel("forget examples")
    top.set_title(f"Epsilons below the cap ({buckets.capped} example(s) capped at {EPSILON_CAP:g} not shown)",
                  fontsize=10)
    top.legend(fontsize=8, loc="upper left")

    labels = [f"[{e:g}, {e + buckets.width:g})" for e in edges] + [f"[{end:g}, {EPSILON_CAP:g})", f"= {EPSILON_CAP:g}"]
    counts = list(buckets.counts) + [buckets.beyond, buckets.capped]
    points = list(buckets.points) + [0.0, 0.0]
    colors = [_points_color(p) for p in points[:-2]] + ["#bbbbbb", "#555555"]
    x = np.arange(len(labels))
    bars = bottom.bar(x, counts, color=colors)
    for bar, count in zip(bars, counts):
        bottom.annotate(str(count), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    bottom.set_xticks(x)
    bottom.set_xticklabels([f"{label}\n{_points_label(p)}" for label, p in zip(labels, points)], fontsize=7)
    bottom.set_xlabel("epsilon bucket, and the points an example in it earns (past the last bucket and capped: 0)")
    bottom.set_ylabel("forget examples")
    bottom.set_ylim(0, max(counts + [1]) * 1.18)
    bottom.set_title("Examples per bucket", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _points_color(points: float) -> str:
    # Green for 1 point, fading towards yellow for fewer points.
    t = float(np.clip(points, 0.0, 1.0))
    r, g, b = (1 - t) * np.array([0.95, 0.8, 0.3]) + t * np.array([0.11, 0.62, 0.47])
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _plot_examples(indices: list[int], group: list[str], eps: np.ndarray, conf_u: np.ndarray,
                   conf_r: np.ndarray, image_ids: np.ndarray | None) -> str:
    cols = min(EXAMPLES_PER_GROUP, len(indices))
    rows = int(math.ceil(len(indices) / cols))
    fig = Figure(figsize=(2.8 * cols, 2.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, e, name in zip(axes, indices, group):
        u, r = _finite(conf_u[:, e]), _finite(conf_r[:, e])
        pooled = np.concatenate([u, r])
        if pooled.size:
            lo, hi = float(pooled.min()), float(pooled.max())
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, int(np.clip(max(u.size, r.size) // 2, 6, 30)) + 1)
            ax.hist(r, bins=bins, color=_RETRAINED_COLOR, alpha=0.55, label="retrained")
            ax.hist(u, bins=bins, color=_UNLEARNED_COLOR, alpha=0.55, label="unlearned")
        ident = f"#{e}" + (f" (id {int(image_ids[e])})" if image_ids is not None and e < len(image_ids) else "")
        ax.set_title(f"{name}: {ident}\nepsilon {eps[e]:.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("confidence", fontsize=7)
    for ax in axes[len(indices):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _plot_accuracies(u: ModelFamily, r: ModelFamily) -> str:
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    sets = [("retain", "retain_accuracy"), ("test", "test_accuracy"), ("forget", "forget_accuracy")]
    rng = np.random.default_rng(0)
    width = 0.36
    for offset, family, name, color in ((-width / 2, u, "unlearned", _UNLEARNED_COLOR),
                                        (width / 2, r, "retrained", _RETRAINED_COLOR)):
        for i, (_, key) in enumerate(sets):
            values = _finite(getattr(family, key))
            if not values.size:
                continue
            x = i + offset
            ax.bar(x, values.mean(), width=width, color=color, alpha=0.75, label=name if i == 0 else None,
                   yerr=values.std() if values.size > 1 else None, capsize=3)
            jitter = rng.uniform(-width / 4, width / 4, values.size)
            ax.scatter(x + jitter, values, s=6, color="#333", alpha=0.5, zorder=3, linewidths=0)
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels([f"{label} set" for label, _ in sets])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Mean accuracy per family (bar), one dot per model, error bar = std over models", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _plot_run_times(seconds: np.ndarray, budget: float | None, retrain_seconds: float | None,
                    cpu_clock: bool = False) -> str:
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    x = np.arange(seconds.size)
    over = np.zeros(seconds.size, dtype=bool) if budget is None else seconds > budget
    ax.bar(x, seconds, width=1.0 if seconds.size > 64 else 0.8,
           color=np.where(over, "#d62728", "#7570b3").tolist())
    if budget is not None:
        ax.axhline(budget, color="#d62728", lw=1.5, ls="--", label=f"time budget per run ({budget:.2f} s)")
    if retrain_seconds is not None and math.isfinite(retrain_seconds) and (budget is None or retrain_seconds < 5 * budget):
        ax.axhline(retrain_seconds, color=_RETRAINED_COLOR, lw=1.0, ls=":",
                   label=f"mean retrain time ({retrain_seconds:.2f} s)")
    ax.set_xlabel("run")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("CPU seconds" if cpu_clock else "seconds")
    what = "CPU time (all threads and processes)" if cpu_clock else "Wall time"
    ax.set_title(f"{what} of each unlearning run" + (" (no time limit)" if budget is None else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _png(fig)


def _plot_mia(accuracies: np.ndarray, forget_losses: np.ndarray, test_losses: np.ndarray,
              retrained_mean: float | None) -> str:
    fig = Figure(figsize=(10, 3.4))
    left, right = fig.subplots(1, 2)
    finite = _finite(accuracies)
    left.hist(finite, bins=np.linspace(0.0, 1.0, 21), color="#7570b3", alpha=0.85)
    left.axvline(0.5, color="#222", lw=1.5, ls="--", label="0.5: indistinguishable")
    if finite.size:
        left.axvline(float(finite.mean()), color=_UNLEARNED_COLOR, lw=1.8, label=f"mean {finite.mean():.3f}")
    if retrained_mean is not None and math.isfinite(retrained_mean):
        left.axvline(retrained_mean, color=_RETRAINED_COLOR, lw=1.5, ls=":", label=f"retrained {retrained_mean:.3f}")
    left.set_xlabel("attack accuracy (cross-validated)")
    left.set_ylabel("unlearned models")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8, loc="upper left")
    left.set_title("Attack accuracy per unlearned model", fontsize=10)
    f, t = _finite(forget_losses), _finite(test_losses)
    pooled = np.concatenate([f, t])
    if pooled.size:
        bins = np.linspace(0.0, max(float(pooled.max()), 1e-6), 41)
        right.hist(t, bins=bins, density=True, color="#999", alpha=0.6, label="test set")
        right.hist(f, bins=bins, density=True, color=_UNLEARNED_COLOR, alpha=0.6, label="forget set")
        right.legend(fontsize=8)
    right.set_yscale("log")
    right.set_xlabel("cross-entropy loss (all unlearned models)")
    right.set_ylabel("density")
    right.set_title("Losses the attack sees", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plot_attacks(eps: np.ndarray, accuracy: np.ndarray, divergence: np.ndarray, end: float) -> str:
    """Per-example U-LiRA accuracy against epsilon, colored by KLoM (all read from the result)."""
    fig = Figure(figsize=(9.5, 3.6))
    ax = fig.subplots()
    shown = np.minimum(eps, max(2.0 * end, end + 2.0))
    points = ax.scatter(shown, accuracy, c=divergence, cmap="viridis", s=14, alpha=0.85, linewidths=0)
    fig.colorbar(points, ax=ax).set_label("KLoM of the example", fontsize=8)
    ax.axhline(0.5, color="#222", lw=1.2, ls="--", label="0.5: the attack is a coin flip")
    ax.axvline(end, color="#d62728", lw=1.2, label=f"last bucket ends ({end:g}): 0 points past it")
    ax.set_xlabel("per-example epsilon (capped and very large values drawn at the right edge)")
    ax.set_ylabel("U-LiRA accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Each forget example: how often the likelihood-ratio attack tells the models apart", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plot_bootstrap(samples: np.ndarray, score: float, low: float, high: float, confidence: float,
                    centered: bool, perfect: float | None) -> str:
    fig = Figure(figsize=(9.5, 3.0))
    ax = fig.subplots()
    shown = samples - np.median(samples) + score if centered else samples
    ax.hist(shown, bins=int(np.clip(samples.size // 5, 5, 30)), color="#999", alpha=0.8,
            label="resampled scores" + (", moved to center on the score" if centered else ""))
    ax.axvline(score, color="#222", lw=1.8, label=f"score {score:.4f}")
    ax.axvspan(low, high, color="#7570b3", alpha=0.2, label=f"{confidence:.0%} interval [{low:.4f}, {high:.4f}]")
    if perfect is not None and math.isfinite(perfect):
        ax.axvline(perfect, color=_RETRAINED_COLOR, lw=1.5, ls="--", label=f"perfect-unlearner F {perfect:.4f}")
    ax.set_xlabel("final score")
    ax.set_ylabel("resamples")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Bootstrap over models ({samples.size} resamples)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plot_originals(originals: OriginalsResult, score: float, quality: float) -> str:
    """Each original's score and F (bars) beside the leaderboard's score and F (lines)."""
    rows = originals.per_original
    fig = Figure(figsize=(8.5, 3.4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    width = 0.38
    for offset, key, label, color in ((-width / 2, "score", "score", "#7570b3"),
                                      (width / 2, "forget_quality", "F", "#999999")):
        values = [getattr(row, key) for row in rows]
        ax.bar(x + offset, [np.nan if v is None else v for v in values], width=width, color=color, alpha=0.85,
               label=f"{label} of the original's runs")
    ax.axhline(score, color="#222", lw=1.6, label=f"score over all runs {score:.4f}")
    ax.axhline(quality, color="#222", lw=1.2, ls="--", label=f"F over all runs {quality:.4f}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"original {row.original}\n{row.num_models} runs" for row in rows], fontsize=8)
    ax.set_ylabel("score, F")
    ax.set_title("Each original's runs scored on their own (fewer models, fewer buckets: noisier)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------- sections


def _header_parts(result: ScoreResult, inputs: ScoringInputs) -> list[str]:
    ingestion, reference = inputs.ingestion, inputs.reference
    parts = [f"N = {result.num_models} models per family", f"E = {result.num_forget_examples} forget examples"]
    phase = ingestion.phase or reference.phase
    if phase:
        parts.insert(0, f"phase {phase}")
    if ingestion.device:
        parts.append(f"unlearning ran on {ingestion.device}")
    return parts


def _examples(result: ScoreResult, inputs: ScoringInputs) -> tuple[dict[str, Any] | None, str | None]:
    """What the best/worst examples section says, and its plot (None, None without forget examples)."""
    eps = result.epsilons
    if eps.size == 0:
        return None, None
    order = np.argsort(eps, kind="stable")
    if eps.size <= 2 * EXAMPLES_PER_GROUP:
        indices, group = [int(i) for i in order], ["example"] * eps.size
    else:
        best = [int(i) for i in order[:EXAMPLES_PER_GROUP]]
        worst = [int(i) for i in order[::-1][:EXAMPLES_PER_GROUP]]
        indices, group = best + worst, ["best"] * len(best) + ["worst"] * len(worst)
    plot = _plot_examples(indices, group, eps, result.unlearned.confidences, result.retrained.confidences,
                          inputs.unlearned.forget_image_ids)
    return {"all": eps.size <= 2 * EXAMPLES_PER_GROUP, "per_group": EXAMPLES_PER_GROUP}, plot


def _noted_runs(ingestion: IngestionManifest) -> list[RunRecord]:
    return [run for run in ingestion.runs if not run.ok or run.message]


def _time(result: ScoreResult, inputs: ScoringInputs) -> tuple[dict[str, Any], str]:
    """The run-time section's numbers and plot: the budget's clock (CPU seconds when the runs recorded
    them), the slowest run and the runs over the budget."""
    ingestion = inputs.ingestion
    budget = None if ingestion.time_budget_seconds is None else float(ingestion.time_budget_seconds)
    seconds = np.asarray(inputs.unlearned.seconds, dtype=np.float64)
    cpu = [run.cpu_seconds for run in ingestion.runs]
    cpu_clock = ingestion.budget_clock == "cpu" and len(cpu) == seconds.size and None not in cpu
    used = np.asarray(cpu, dtype=np.float64) if cpu_clock else seconds
    noted = _noted_runs(ingestion)
    numbers = {
        "budget": budget,
        "unit": " CPU" if cpu_clock else "",
        "cpu_clock": cpu_clock,
        "slowest": float(used.max()),
        "over": int(np.sum(used > budget)) if budget is not None else 0,
        "mean_wall": float(seconds.mean()),
        "noted_runs": noted[:RUNS_LISTED],
        "more_runs": max(len(noted) - RUNS_LISTED, 0),
    }
    plot = _plot_run_times(used, budget, None if cpu_clock else result.mean_retrain_seconds, cpu_clock)
    return numbers, plot


def _mia_plot(result: ScoreResult, inputs: ScoringInputs) -> str | None:
    attack = result.mia_unlearned
    if not attack.available:
        return None
    retrained = result.mia_retrained
    retrained_mean = retrained.mean if retrained is not None and retrained.available else None
    return _plot_mia(attack.accuracies, inputs.unlearned.forget_losses, inputs.unlearned.test_losses, retrained_mean)


def _mia_rows(result: ScoreResult) -> list[tuple[str, MembershipInference]]:
    rows = [("unlearned", result.mia_unlearned)] if result.mia_unlearned.available else []
    if rows and result.mia_retrained is not None and result.mia_retrained.available:
        rows.append(("retrained", result.mia_retrained))
    return rows


def _bootstrap_plot(result: ScoreResult) -> str | None:
    statistics = result.statistics
    boot = statistics.bootstrap if statistics is not None else None
    if boot is None or boot.num_resamples < 2:
        return None
    perfect = statistics.perfect.forget_quality if statistics.perfect.computed else None
    return _plot_bootstrap(boot.scores, result.score, boot.low, boot.high, boot.confidence, boot.centered, perfect)


def _sample_sizes(family: ModelFamily) -> dict[str, Any]:
    """How many retain and validation examples the sample numbers read ("n/a" when the family has none)."""
    if not family.has_samples:
        return {"retain": "n/a", "validation": "n/a"}
    return {"retain": family.retain_sample_indices.size, "validation": family.validation_sample_indices.size}


def _originals(result: ScoreResult) -> tuple[dict[str, Any] | None, str | None]:
    """The original models section's numbers and plot (None, None when the runs started from one original)."""
    originals = result.originals
    if originals is None:
        return None, None
    share = originals.seed_share
    shares = [("retain accuracy", share.retain_accuracy, "per-model retain accuracy"),
              ("test accuracy", share.test_accuracy, "per-model test accuracy"),
              ("forget confidence (median over examples)", share.forget_confidence,
               "each forget example's confidence, the median of the examples' shares"),
              ("forget confidence (mean over examples)", share.forget_confidence_mean,
               "each forget example's confidence, the mean of the examples' shares")]
    numbers = {"num_originals": originals.num_originals, "rows": originals.per_original, "shares": shares,
               "confidence": share.retain_accuracy.confidence, "resamples": share.num_resamples,
               "note": NOISE_NOTE}
    return numbers, _plot_originals(originals, result.score, result.forget_quality)


def detailed_results_html(result: ScoreResult, inputs: ScoringInputs, *, per_example: bool = True) -> str:
    """A self-contained HTML page explaining a submission's score.

    ``result`` comes from :func:`unlearning_challenge.scoring.program.compute_scores`
    (with its statistics when the page should show them); ``inputs`` are both model
    families and both manifests; ``per_example`` False leaves out the plots of single
    forget examples (a phase on private images: a submission could draw with its outputs
    there). Returns the page: inline CSS, plots as base64 PNG, no external resources.
    """
    buckets = _buckets(result.epsilons, result.num_models)
    examples, examples_plot = _examples(result, inputs) if per_example else (None, None)
    time_numbers, run_times_plot = _time(result, inputs)
    originals, originals_plot = _originals(result)
    statistics = result.statistics
    plots = {
        "epsilons": _plot_epsilons(result.epsilons, buckets),
        "examples": examples_plot,
        "accuracies": _plot_accuracies(inputs.unlearned, inputs.retrained),
        "mia": _mia_plot(result, inputs),
        "run_times": run_times_plot,
        "bootstrap": _bootstrap_plot(result),
        "attacks": (_plot_attacks(result.epsilons, result.ulira_per_example, result.klom_per_example, buckets.end)
                    if per_example else None),
        "originals": originals_plot,
    }
    return _ENVIRONMENT.get_template(TEMPLATE).render(
        result=result,
        inputs=inputs,
        header={"parts": _header_parts(result, inputs)},
        statistics=statistics,
        perfect=statistics.perfect if statistics is not None else None,
        bounds_name="Clopper-Pearson" if result.bounds == "clopper-pearson" else "empirical",
        buckets=buckets.table(),
        epsilon_cap=EPSILON_CAP,
        examples=examples,
        mia_rows=_mia_rows(result),
        time=time_numbers,
        samples=_sample_sizes(inputs.retrained),
        plots=plots,
        per_example=per_example,
        originals=originals,
    )
