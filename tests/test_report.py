"""The detailed results page: self-contained, escaped, robust to small and odd inputs."""

from __future__ import annotations

import base64
import dataclasses
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from unlearning_challenge.scoring import statistics
from unlearning_challenge.metric import bucket_points
from unlearning_challenge.artifacts import IngestionManifest, ModelFamily, ReferenceManifest, RunRecord
from unlearning_challenge.scoring.report import detailed_results_html
from unlearning_challenge.scoring.program import add_statistics, compute_scores
from unlearning_challenge.scoring.result import SCORES_TXT_KEYS, ScoreResult, ScoringInputs, scores_txt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert('x')</script>"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


def _family(rng: np.random.Generator, n: int, e: int, labels: np.ndarray, shift: float, seconds: float) -> ModelFamily:
    logits = rng.normal(size=(n, e, 10)).astype(np.float32)
    logits[:, np.arange(e), labels] += np.float32(2.0 + shift)
    return ModelFamily(logits, labels, np.arange(e, dtype=np.int64) + 100, rng.uniform(0.8, 0.9, n),
                       rng.uniform(0.6, 0.7, n), rng.uniform(0.5, 0.7, n), rng.uniform(0.5, 1.5, n) * seconds,
                       np.arange(n, dtype=np.int64))


def make_inputs(n: int = 8, e: int = 12, *, budget: float | None = 1.2, quick: bool = False,
                message: str = "8 run(s) completed", run_message: str = "", seed: int = 0) -> ScoringInputs:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, e)
    unlearned = _family(rng, n, e, labels, 0.4, 1.0)
    retrained = _family(rng, n, e, labels, 0.0, 6.0)
    runs = [RunRecord(index=i, seed=i, status="ok", seconds=float(unlearned.seconds[i]),
                     message=run_message if i == 0 else "") for i in range(n)]
    ingestion = IngestionManifest(status="ok", message=message, phase="check", device="cpu", time_budget_seconds=budget,
                                  time_limit_enforced=budget is not None, runs=tuple(runs))
    reference = ReferenceManifest(phase="check", config_fingerprint="0" * 64, split_fingerprint="0" * 64,
                                  num_models=2 * n if quick else n, mean_retrain_seconds=6.0)
    return ScoringInputs(unlearned, retrained, ingestion, reference, quick)


def scored(inputs: ScoringInputs, *, with_statistics: bool = True) -> ScoreResult:
    result = compute_scores(inputs)
    return add_statistics(result, num_resamples=8) if with_statistics else result


class _TagChecker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def check_page(page: str) -> _TagChecker:
    assert page.startswith("<!DOCTYPE html>")
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == [] and checker.stack == []
    assert checker.tags[:3] == ["html", "head", "meta"]
    assert "script" not in checker.tags
    # Self-contained: nothing fetched from elsewhere.
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page
    assert len(page.encode("utf-8")) < 1_500_000
    return checker


def images(page: str) -> list[bytes]:
    return [base64.b64decode(b, validate=True) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


@pytest.fixture(scope="module")
def typical():
    inputs = make_inputs(message=f"done {HOSTILE}", run_message=f"warning {HOSTILE} & more")
    scores = scored(inputs)
    return scores, inputs, detailed_results_html(scores, inputs)


def test_page_is_valid_looking_self_contained_html(typical):
    _, _, page = typical
    check_page(page)
    pngs = images(page)
    assert len(pngs) == 6
    assert all(png.startswith(PNG_SIGNATURE) for png in pngs)


def test_a_private_phase_page_plots_no_single_example_and_scores_json_holds_no_epsilons(typical):
    result, inputs, page = typical
    private = detailed_results_html(result, inputs, per_example=False)
    check_page(private)
    assert len(images(private)) == len(images(page)) - 2  # the best and worst examples, the per-example attacks
    assert "the page shows no plot of single forget examples" in private
    assert "Best and worst forget examples" not in private and "Each dot is a forget example" not in private
    assert f"{result.ulira_accuracy:.4f}" in private  # the summaries stay
    assert "epsilons" in result.to_json(quick_check=False)
    assert "epsilons" not in result.to_json(quick_check=False, per_example=False)


def test_page_shows_the_score_its_parts_and_the_references(typical):
    result, _, page = typical
    scores = result.numbers()
    assert f"{scores['score']:.4f}" in page
    for key in ("forget_quality", "retain_accuracy_ratio", "test_accuracy_ratio", "retain_accuracy_retrained",
                "forget_quality_perfect", "score_ci_low", "score_ci_high"):
        assert f"{scores[key]:.4f}" in page, key
    assert "Forgetting quality F" in page and "Retain accuracy ratio" in page and "Test accuracy ratio" in page
    assert "budget 1.20 s" in page
    assert f"{scores['score_ci_resamples']} resamples" in page
    assert "Quick check" not in page


def test_page_escapes_text_from_the_submission(typical):
    _, _, page = typical
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "warning &lt;script&gt;" in page and "&amp; more" in page


def test_bucket_table_adds_up_to_forget_quality(typical):
    result, inputs, page = typical
    examples = re.search(r"<b>total</b></td><td class=\"num\"></td><td class=\"num\">(\d+)</td>", page)
    assert examples and int(examples.group(1)) == inputs.unlearned.forget_logits.shape[1]
    assert f"<b>{result.forget_quality:.4f}</b>" in page


def test_no_time_limit_and_quick_check():
    inputs = make_inputs(budget=None, quick=True)
    page = detailed_results_html(scored(inputs), inputs)
    check_page(page)
    assert "no time limit" in page
    assert "Quick check" in page and "not the phase's 16" in page


def test_two_models_and_few_examples_do_not_crash():
    inputs = make_inputs(n=2, e=3, seed=3)
    scores = scored(inputs)
    page = detailed_results_html(scores, inputs)
    check_page(page)
    assert all(png.startswith(PNG_SIGNATURE) for png in images(page))
    assert "All forget examples" in page
    assert "cannot be split" in page


def test_the_page_computes_no_statistics(monkeypatch):
    inputs = make_inputs(n=4, e=5, seed=4)

    def fail(*args, **kwargs):
        raise AssertionError("the page recomputed a statistic")

    bare = compute_scores(inputs)
    monkeypatch.setattr(statistics, "bootstrap_scores", fail)
    monkeypatch.setattr(statistics, "perfect_unlearner_quality", fail)
    page = detailed_results_html(bare, inputs)
    check_page(page)
    assert "Not computed: the score was computed without its statistics." in page
    assert "n/a (not computed)" in page and "bootstrap interval" not in page
    monkeypatch.undo()

    result = add_statistics(bare, num_resamples=12)
    monkeypatch.setattr(statistics, "bootstrap_scores", fail)
    page = detailed_results_html(result, inputs)
    assert f"{result.statistics.bootstrap.high:.4f}" in page and "(12 resamples" in page
    assert "Perfect unlearner" in page


def test_page_states_n_the_buckets_and_the_attacks(typical):
    result, _, page = typical
    assert result.num_buckets == bucket_points(result.num_models)[0].size
    text = scores_txt(result)
    assert f"num_models: {result.num_models:.6f}\nnum_buckets: {result.num_buckets:.6f}\n" in text
    assert "ulira_accuracy: " in text and "ulira_accuracy_std: " in text and "klom_forget_p95: " in text
    assert "num_buckets" in SCORES_TXT_KEYS
    assert f"N = {result.num_models} models per family, hence {result.num_buckets} epsilon buckets" in page
    assert "comparable only between submissions of the same phase" in page
    assert f"{result.ulira_accuracy:.4f} ± {result.ulira_accuracy_std:.4f}" in page
    assert f"{result.klom_forget_p95:.4f}" in page
    assert "per-example U-LiRA accuracy against epsilon" in page


def test_the_page_computes_no_attack(monkeypatch):
    from unlearning_challenge.scoring import klom, program, ulira

    inputs = make_inputs(n=4, e=5, seed=6)
    result = compute_scores(inputs)

    def fail(*args, **kwargs):
        raise AssertionError("the page recomputed an attack")

    for module, name in ((ulira, "ulira"), (klom, "klom"), (program, "ulira"), (program, "klom")):
        monkeypatch.setattr(module, name, fail)
    page = detailed_results_html(result, inputs)
    assert f"{result.ulira_accuracy:.4f}" in page


def test_capped_examples_are_counted_separately():
    inputs = make_inputs(n=6, e=10, seed=5)
    result = scored(inputs)
    eps = result.epsilons.copy()
    eps[:3] = 50.0
    page = detailed_results_html(dataclasses.replace(result, epsilons=eps), inputs)
    assert re.search(r"capped at 50</td><td class=\"num\">0</td><td class=\"num\">3</td>", page)
