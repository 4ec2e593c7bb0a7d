"""The detailed results page of a scored submission.

:func:`detailed_results_html` turns the scores (see
:func:`unlearning_challenge.scoring.program.compute_scores`) and the scoring inputs into
one self-contained HTML page: inline CSS, plots embedded as base64 PNG (drawn
with matplotlib's Agg canvas, no pyplot state), no external assets, readable
without the project. Every piece of text that comes from the submission or the
manifests is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any, Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unlearning_challenge.artifacts import IngestionManifest
from unlearning_challenge.metric import (
    ALPHA,
    EPSILON_CAP,
    bucket_points,
    example_points,
    forget_quality,
    per_example_epsilons,
)
from unlearning_challenge.scoring.mia import membership_inference
from unlearning_challenge.scoring.statistics import extra_statistics, forget_confidences

__all__ = ["detailed_results_html"]

# Resolution of the embedded plots.
PLOT_DPI = 90
# Forget examples shown in each of the "best" and "worst" groups.
EXAMPLES_PER_GROUP = 4

_UNLEARNED_COLOR = "#d95f02"
_RETRAINED_COLOR = "#1b9e77"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #fafafa; line-height: 1.45; }
main { max-width: 1040px; margin: 0 auto; padding: 1.2em 1.5em 3em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.sub { color: #666; margin-top: 0; }
.banner { background: #fff3cd; border: 1px solid #e0b252; padding: 0.7em 1em; border-radius: 4px; margin: 1em 0; }
.fail { background: #fde2e1; border-color: #d9534f; }
.score { font-size: 2.6em; font-weight: 600; margin: 0.3em 0 0; }
.score small { font-size: 0.4em; font-weight: 400; color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.note { color: #444; font-size: 0.92em; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; white-space: pre-wrap; }
.muted { color: #666; font-size: 0.92em; }
"""


# ----------------------------------------------------------------------------- helpers

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _esc(value)
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


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str) -> str:
    return f'<img src="data:image/png;base64,{_png(fig)}" alt="{_esc(alt)}">'


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Rows of already-escaped cell HTML; a cell starting with '<td' is used as is."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _num(text: str) -> str:
    return f'<td class="num">{text}</td>'


def _note(text: str) -> str:
    return f'<td class="note">{text}</td>'


# ----------------------------------------------------------------------------- data

def _details(scores: dict, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example epsilons and both families' confidences, from ``scores`` or recomputed."""
    details = scores.get("_details") or {}
    conf_u, conf_r = forget_confidences(scores, inputs)
    if "epsilons" in details:
        eps = np.asarray(details["epsilons"], dtype=np.float64)
    else:
        eps = np.asarray(per_example_epsilons(conf_u, conf_r), dtype=np.float64)
    return eps, conf_u, conf_r


def _qualities(scores: dict, conf_u: np.ndarray, conf_r: np.ndarray) -> dict[str, float]:
    """F under both rate estimates, from ``scores`` or recomputed."""
    alpha = float(scores.get("clopper_pearson_alpha", ALPHA))
    out = {}
    for bounds, key in (("empirical", "forget_quality_empirical"), ("clopper-pearson", "forget_quality_clopper_pearson")):
        value = scores.get(key)
        out[bounds] = float(value) if value is not None else float(forget_quality(conf_u, conf_r, bounds=bounds, alpha=alpha))
    return out


def _mia(scores: dict, inputs: Any) -> dict:
    """The membership-inference details of both families, from ``scores`` or recomputed."""
    details = (scores.get("_details") or {}).get("mia")
    if details is not None:
        return details
    out = {"unlearned": membership_inference(inputs.unlearned)}
    if getattr(inputs.retrained, "has_losses", False):
        out["retrained"] = membership_inference(inputs.retrained)
    return out


def _statistics(scores: dict, inputs: Any) -> dict:
    """Flat statistics plus ``_statistics`` details: from ``scores`` when merged in, else computed."""
    if "_statistics" in scores:
        return scores
    if "score_ci_low" in scores or "forget_quality_perfect" in scores:
        return {**scores, "_statistics": {}}
    return {**scores, **extra_statistics(scores, inputs)}


def _bucket_table(eps: np.ndarray, num_models: int) -> dict:
    """Examples and points per bucket, plus the zero-point groups (past the last bucket, capped)."""
    edges, points = (np.asarray(a, dtype=np.float64) for a in bucket_points(num_models))
    earned = np.asarray(example_points(eps, num_models), dtype=np.float64)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 0.5
    end = float(edges[-1] + width) if edges.size else 0.0
    capped = eps >= EPSILON_CAP
    beyond = (eps >= end) & ~capped
    index = np.searchsorted(edges, eps, side="right") - 1
    counts = np.array([int(np.sum((index == k) & (eps < end))) for k in range(edges.size)], dtype=int)
    return {"edges": edges, "points": points, "end": end, "width": width, "counts": counts,
            "beyond": int(beyond.sum()), "capped": int(capped.sum()), "earned": earned}


# ----------------------------------------------------------------------------- plots

def _points_label(points: float) -> str:
    if points <= 0:
        return "0"
    k = int(round(-math.log2(points)))
    return "1" if k == 0 else f"$2^{{-{k}}}$"


def _plot_epsilons(eps: np.ndarray, buckets: dict) -> str:
    fig = Figure(figsize=(10, 6.6))
    top, bottom = fig.subplots(2, 1)
    edges, end = buckets["edges"], buckets["end"]
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
    top.set_title(f"Epsilons below the cap ({buckets['capped']} example(s) capped at {EPSILON_CAP:g} not shown)",
                  fontsize=10)
    top.legend(fontsize=8, loc="upper left")

    labels = [f"[{e:g}, {e + buckets['width']:g})" for e in edges] + [f"[{end:g}, {EPSILON_CAP:g})", f"= {EPSILON_CAP:g}"]
    counts = list(buckets["counts"]) + [buckets["beyond"], buckets["capped"]]
    points = list(buckets["points"]) + [0.0, 0.0]
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
    return _img(fig, "histogram of per-example epsilons with bucket edges and points")


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
    return _img(fig, "confidence distributions of selected forget examples")


def _plot_accuracies(u: Any, r: Any) -> str:
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
    return _img(fig, "retain, test and forget accuracy of unlearned and retrained models")


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
    return _img(fig, "run time per run against the time budget")


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
    return _img(fig, "membership-inference accuracy per model and the forget and test losses")


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
    return _img(fig, "bootstrap distribution of the score")


# ----------------------------------------------------------------------------- sections

def _header(scores: dict, inputs: Any) -> str:
    ingestion, reference = inputs.ingestion, inputs.reference
    n, e = int(scores.get("num_models", inputs.unlearned.num_models)), int(
        scores.get("num_forget_examples", inputs.unlearned.forget_logits.shape[1]))
    phase = ingestion.phase or reference.phase
    parts = [f"N = {n} models per family", f"E = {e} forget examples"]
    if phase:
        parts.insert(0, f"phase {_esc(phase)}")
    if ingestion.device:
        parts.append(f"unlearning ran on {_esc(ingestion.device)}")
    out = ["<h1>Machine unlearning: detailed results</h1>", f'<p class="sub">{" &middot; ".join(parts)}</p>']
    if inputs.quick_check:
        full = reference.num_models
        out.append(
            '<div class="banner"><b>Quick check.</b> Only the first '
            f"{n} models of each family were scored" + (f", not the phase's {_esc(full)}" if full else "") +
            ". With fewer models the attacks have fewer samples and there are fewer buckets: this score is a "
            "rehearsal, not comparable with the leaderboard.</div>"
        )
    if ingestion.message:
        out.append(f'<p class="muted">Ingestion: {_esc(ingestion.message)}</p>')
    return "\n".join(out)


def _mia_text(result: dict) -> str:
    if "mean" not in result:
        return "n/a (" + _esc(result.get("unavailable", "not computed")) + ")"
    return f"{result['mean']:.3f} &plusmn; {result['std']:.3f}"


def _summary(scores: dict, stats: dict, inputs: Any, qualities: dict, mia: dict) -> str:
    alpha = float(scores.get("clopper_pearson_alpha", ALPHA))
    bounds_name = "Clopper-Pearson" if scores.get("bounds") == "clopper-pearson" else "empirical"
    score = float(scores["score"])
    budget = inputs.ingestion.time_budget_seconds
    perfect = stats.get("forget_quality_perfect")
    perfect_text = "n/a (too few models to split)"
    if perfect is not None:
        perfect_text = (f"{_fmt(perfect)} (range {_fmt(stats.get('forget_quality_perfect_min'))}&ndash;"
                        f"{_fmt(stats.get('forget_quality_perfect_max'))}, with "
                        f"{int(stats.get('forget_quality_perfect_num_models', 0))} models)")
    ci = ""
    if "score_ci_low" in stats:
        ci = (f"<small> {float(stats.get('score_ci_confidence', 0.9)):.0%} bootstrap interval "
              f"[{_fmt(stats['score_ci_low'])}, {_fmt(stats['score_ci_high'])}]</small>")
    rows = [
        ["Forgetting quality F", _num(_fmt(scores.get("forget_quality"))), _num(perfect_text),
         _note("Mean over forget examples of the points earned by how well the best threshold attack tells "
               "unlearned from retrained models apart (1 = never, 0 = always). Even retraining itself does "
               "not reach 1: the reference is F of one half of the retrained models against the other.")],
        ["Retain accuracy ratio", _num(_fmt(scores.get("retain_accuracy_ratio"))),
         _num(f"{_fmt(scores.get('retain_accuracy_unlearned'))} unlearned / "
              f"{_fmt(scores.get('retain_accuracy_retrained'))} retrained"),
         _note("How much accuracy on the data to keep survived unlearning, relative to retraining; "
               "above 1 is possible.")],
        ["Test accuracy ratio", _num(_fmt(scores.get("test_accuracy_ratio"))),
         _num(f"{_fmt(scores.get('test_accuracy_unlearned'))} unlearned / "
              f"{_fmt(scores.get('test_accuracy_retrained'))} retrained"),
         _note("How well the unlearned models generalize to unseen data, relative to retraining.")],
        ["Mean run time", _num(_seconds(scores.get("mean_run_seconds"))),
         _num(("budget " + _seconds(budget) if budget is not None else "no time limit") +
              f"; one retrain {_seconds(scores.get('mean_retrain_seconds'))}"),
         _note("Wall time of one unlearning run; a run over the budget (a fraction of one retrain) rejects "
               "the submission. Not part of the score.")],
        ["Membership inference accuracy", _num(_mia_text(mia.get("unlearned", {}))),
         _num(_mia_text(mia["retrained"]) if "retrained" in mia else "n/a (not recorded)"),
         _note("Accuracy of the 2023 starting kit's attack (logistic regression on one example's loss) telling "
               "forget examples from test examples, mean &plusmn; std over the unlearned models: 0.5 means "
               "it cannot tell them apart. Not part of the score.")],
        ["F under Clopper-Pearson bounds", _num(_fmt(qualities["clopper-pearson"])),
         _num(f"empirical F {_fmt(qualities['empirical'])}"),
         _note(f"F when each attack's FPR and FNR are replaced by one-sided {1 - alpha:.0%} Clopper-Pearson "
               "upper bounds: every epsilon becomes a high-probability lower bound, so this F is never below "
               f"the empirical one. The score above uses the {_esc(bounds_name)} rates.")],
        ["Forget accuracy", _num(_fmt(scores.get("forget_accuracy_unlearned"))),
         _num(f"{_fmt(scores.get('forget_accuracy_retrained'))} retrained"),
         _note("Accuracy on the forget set; close to the retrained value is the goal, lower is not better. "
               "Not part of the score.")],
    ]
    return "\n".join([
        "<h2>Score</h2>",
        f'<p class="score">{_fmt(score)}{ci}</p>',
        "<p>score = F &times; retain accuracy ratio &times; test accuracy ratio</p>",
        _table(["part", "submission", "retrained reference", "what it means"], rows),
    ])


def _epsilon_section(eps: np.ndarray, num_models: int) -> str:
    buckets = _bucket_table(eps, num_models)
    e = max(eps.size, 1)
    rows = []
    for k, (edge, pts, count) in enumerate(zip(buckets["edges"], buckets["points"], buckets["counts"])):
        rows.append([str(k), f"[{edge:g}, {edge + buckets['width']:g})", _num(f"{pts:g}"), _num(str(count)),
                     _num(_fmt(pts * count / e))])
    rows.append(["&ndash;", f"[{buckets['end']:g}, {EPSILON_CAP:g})", _num("0"), _num(str(buckets["beyond"])), _num("0")])
    rows.append(["&ndash;", f"capped at {EPSILON_CAP:g}", _num("0"), _num(str(buckets["capped"])), _num("0")])
    total = _fmt(buckets["earned"].mean() if eps.size else 0.0)
    rows.append(["", "<b>total</b>", _num(""), _num(str(eps.size)), _num(f"<b>{total}</b>")])
    return "\n".join([
        "<h2>Per-example epsilons</h2>",
        "<p>For each forget example, the strongest threshold attack on the N unlearned and N retrained "
        "confidences gives an epsilon (how distinguishable the two families are on that example). Epsilons "
        f"fall in buckets of width {buckets['width']:g}; bucket k earns 0.5<sup>k</sup> points, and past the "
        f"last bucket (which ends at ceil(log(N &minus; 1)) = {buckets['end']:g} for N = {num_models}) an "
        f"example earns nothing. An epsilon of {EPSILON_CAP:g} (the cap) means the families were perfectly "
        "separated or one of them was nearly constant on that example. F is the mean of the points.</p>",
        _plot_epsilons(eps, buckets),
        _table(["bucket", "epsilon range", "points", "examples", "contribution to F"], rows),
    ])


def _examples_section(eps: np.ndarray, conf_u: np.ndarray, conf_r: np.ndarray, inputs: Any) -> str:
    if eps.size == 0:
        return ""
    order = np.argsort(eps, kind="stable")
    image_ids = getattr(inputs.unlearned, "forget_image_ids", None)
    if eps.size <= 2 * EXAMPLES_PER_GROUP:
        indices, group = [int(i) for i in order], ["example"] * eps.size
        text = "All forget examples, from lowest to highest epsilon."
    else:
        best = [int(i) for i in order[:EXAMPLES_PER_GROUP]]
        worst = [int(i) for i in order[::-1][:EXAMPLES_PER_GROUP]]
        indices, group = best + worst, ["best"] * len(best) + ["worst"] * len(worst)
        text = (f"Top row: the {len(best)} forget examples with the lowest epsilon (best forgotten); bottom row: "
                f"the {len(worst)} with the highest.")
    return "\n".join([
        "<h2>Best and worst forget examples</h2>",
        f"<p>{text} Each panel overlays the logit-scaled confidence of the correct class over the unlearned "
        "models and over the retrained models; the more the two overlap, the better.</p>",
        _plot_examples(indices, group, eps, conf_u, conf_r, image_ids),
    ])


def _accuracy_section(inputs: Any) -> str:
    return "\n".join([
        "<h2>Accuracy</h2>",
        "<p>Retain and test accuracy enter the score as ratios to the retrained models; forget accuracy is shown "
        "for reference (retrained models never saw the forget set).</p>",
        _plot_accuracies(inputs.unlearned, inputs.retrained),
    ])


def _time_section(scores: dict, inputs: Any) -> str:
    ingestion, reference = inputs.ingestion, inputs.reference
    budget = ingestion.time_budget_seconds
    budget = None if budget is None else float(budget)
    seconds = np.asarray(inputs.unlearned.seconds, dtype=np.float64)
    retrain = scores.get("mean_retrain_seconds", reference.mean_retrain_seconds)
    retrain = None if retrain is None else float(retrain)
    cpu = [run.get("cpu_seconds") for run in ingestion.runs if isinstance(run, dict)]
    cpu_clock = ingestion.budget_clock == "cpu" and len(cpu) == seconds.size and None not in cpu
    used = np.asarray(cpu, dtype=np.float64) if cpu_clock else seconds
    unit = " CPU" if cpu_clock else ""
    if budget is None:
        text = "This run had <b>no time limit</b>; on the platform, runs slower than the budget are rejected."
    else:
        over = int(np.sum(used > budget))
        text = (f"Budget: {_seconds(budget)}{unit} per run; slowest run {_seconds(used.max())}{unit}; "
                f"{over} run(s) over the budget.")
    if cpu_clock:
        text += (" On a CPU the budget counts the CPU seconds of the run's processes, which do not grow when "
                 "other work shares the machine; wall time does.")
    return "\n".join([
        "<h2>Run time</h2>",
        f"<p>{text} Mean {_seconds(seconds.mean())} per run (wall).</p>",
        _plot_run_times(used, budget, None if cpu_clock else retrain, cpu_clock),
        _runs_table(ingestion),
    ])


def _mia_section(mia: dict, inputs: Any) -> str:
    result = mia.get("unlearned", {})
    head = ["<h2>Membership inference (the 2023 starting kit's attack)</h2>",
            "<p>For each unlearned model, a logistic regression learns to tell forget examples from test examples "
            "by their loss: the larger group is subsampled to the size of the smaller one, and the accuracy is "
            "the mean over 10 random 90/10 splits (scikit-learn's <code>StratifiedShuffleSplit</code>), as in the "
            "NeurIPS 2023 starting kit. 0.5 means the attack does no better than a coin; a model that still "
            "remembers the forget set gives its examples lower losses and a higher accuracy. With few forget "
            "examples each held-out split is small, so read the mean over models, not one model's number. "
            "Not part of the score.</p>"]
    if "mean" not in result:
        return "\n".join(head + [f"<p><b>Not available:</b> {_esc(result.get('unavailable', 'not computed'))}.</p>"])
    retrained = mia.get("retrained", {})
    rows = [["unlearned", _num(f"{result['mean']:.4f}"), _num(f"{result['std']:.4f}"),
             _num(_fmt(np.nanmin(result["accuracies"]))), _num(_fmt(np.nanmax(result["accuracies"]))),
             _num(str(result["num_models"]) + (f" ({result['skipped']} left out: non-finite losses)"
                                               if result.get("skipped") else ""))]]
    if "mean" in retrained:
        rows.append(["retrained", _num(f"{retrained['mean']:.4f}"), _num(f"{retrained['std']:.4f}"),
                     _num(_fmt(np.nanmin(retrained["accuracies"]))), _num(_fmt(np.nanmax(retrained["accuracies"]))),
                     _num(str(retrained["num_models"]))])
    u = inputs.unlearned
    return "\n".join(head + [
        _table(["models", "mean accuracy", "std", "min", "max", "models attacked"], rows),
        _plot_mia(np.asarray(result["accuracies"], dtype=np.float64), u.forget_losses, u.test_losses,
                  retrained.get("mean")),
    ])


def _runs_table(ingestion: IngestionManifest) -> str:
    runs = [run for run in ingestion.runs if isinstance(run, dict)]
    noted = [run for run in runs if run.get("status") != "ok" or run.get("message")]
    if not noted:
        return ""
    rows = [[_esc(run.get("index")), _esc(run.get("status")), _num(_seconds(run.get("seconds"))),
             _esc(run.get("message", ""))] for run in noted[:50]]
    more = f'<p class="muted">{len(noted) - 50} more not shown.</p>' if len(noted) > 50 else ""
    return "<p>Runs with a message:</p>" + _table(["run", "status", "seconds", "message"], rows) + more


def _statistics_section(scores: dict, stats: dict) -> str:
    details = stats.get("_statistics") or {}
    perfect, boot = details.get("perfect") or {}, details.get("bootstrap") or {}
    out = ["<h2>How good could it be, and how sure is the score?</h2>"]
    if "forget_quality_perfect" in stats:
        half = int(stats.get("forget_quality_perfect_num_models", 0))
        splits = perfect.get("num_splits")
        out.append(
            f"<p><b>Perfect unlearner.</b> Splitting the retrained models into two random halves of {half} and "
            f"scoring one against the other gives F = {_fmt(stats['forget_quality_perfect'])} "
            f"(min {_fmt(stats.get('forget_quality_perfect_min'))}, max {_fmt(stats.get('forget_quality_perfect_max'))}"
            + (f" over {int(splits)} splits" if splits else "") +
            f"): an unlearner whose models are indistinguishable from retraining scores about this much with "
            f"{half} models, before the accuracy ratios. Submission's F: {_fmt(scores.get('forget_quality'))} "
            f"with {int(scores.get('num_models', 0))} models.</p>"
        )
        out.append(f'<p class="muted">Caveat: {_esc(perfect.get("caveat", ""))}</p>' if perfect.get("caveat") else "")
    else:
        reason = perfect.get("caveat") or "not computed"
        out.append(f"<p><b>Perfect unlearner.</b> {_esc(reason)}.</p>")
    if "score_ci_low" in stats:
        confidence = float(stats.get("score_ci_confidence", boot.get("confidence", 0.9)))
        resamples = int(stats.get("score_ci_resamples", boot.get("num_resamples", 0)))
        centered = boot.get("method", "centered") == "centered"
        how = ("the resampled scores' spread, centered on the observed score (resampling repeats models, which "
               "makes the two families look more different and pulls the resampled F below the observed one; "
               "the shift removes that offset)" if centered else "the percentiles of the resampled scores")
        out.append(
            f"<p><b>Bootstrap interval.</b> Resampling the models with replacement ({resamples} resamples, both "
            f"families independently) and recomputing the score gives a {confidence:.0%} interval of "
            f"[{_fmt(stats['score_ci_low'])}, {_fmt(stats['score_ci_high'])}] for the score "
            f"{_fmt(scores['score'])}: {how}. It shows how much the score could move with other seeds for the "
            "same submission; with few resamples it is rough.</p>"
        )
        samples = boot.get("scores")
        if samples is not None and np.asarray(samples).size >= 2:
            perfect_f = stats.get("forget_quality_perfect")
            out.append(_plot_bootstrap(np.asarray(samples, dtype=np.float64), float(scores["score"]),
                                       float(stats["score_ci_low"]), float(stats["score_ci_high"]), confidence,
                                       centered, None if perfect_f is None else float(perfect_f)))
    elif boot.get("skipped"):
        out.append(f"<p><b>Bootstrap interval.</b> Not computed: {_esc(boot['skipped'])}.</p>")
    return "\n".join(out)


def detailed_results_html(scores: dict, inputs: Any) -> str:
    """A self-contained HTML page explaining a submission's score.

    Parameters
    ----------
    scores : dict
        What :func:`unlearning_challenge.scoring.program.compute_scores` returned, with
        ``_details`` (epsilons ``[E]``, confidences ``[N, E]``); the keys of
        :func:`unlearning_challenge.scoring.statistics.extra_statistics` are used when
        merged in, and computed otherwise.
    inputs : ScoringInputs
        Both model families and both manifests.

    Returns
    -------
    str
        The page: inline CSS, plots as base64 PNG, no external resources.
    """
    eps, conf_u, conf_r = _details(scores, inputs)
    stats = _statistics(scores, inputs)
    qualities, mia = _qualities(scores, conf_u, conf_r), _mia(scores, inputs)
    num_models = int(scores.get("num_models", conf_u.shape[0]))
    body = [
        _header(scores, inputs),
        _summary(scores, stats, inputs, qualities, mia),
        _epsilon_section(eps, num_models),
        _examples_section(eps, conf_u, conf_r, inputs),
        _accuracy_section(inputs),
        _mia_section(mia, inputs),
        _time_section(scores, inputs),
        _statistics_section(scores, stats),
    ]
    title = f"Detailed results: score {_fmt(scores.get('score'))}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )
