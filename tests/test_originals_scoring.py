"""Scoring runs that start from K original models: per-original results, the training-seed share and the
two-level bootstrap, on synthetic families where the answer is known; K = 1 gives what it gave before."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from unlearning_challenge.artifacts import (
    REFERENCE_ARRAYS,
    UNLEARNED_ARRAYS,
    IngestionManifest,
    ModelFamily,
    ReferenceManifest,
    RunRecord,
    write_family,
    write_manifest,
)
from unlearning_challenge.metric import final_score, forget_quality
from unlearning_challenge.scoring.compare import compare_folders, rank_folders, rank_table
from unlearning_challenge.scoring.originals import (
    model_resampler,
    original_groups,
    per_original_results,
    run_originals,
    seed_share,
    training_seed_share,
    two_level_indices,
)
from unlearning_challenge.scoring.program import add_statistics, compute_scores, read_inputs, write_scores
from unlearning_challenge.scoring.ranking import compare, joint_bootstrap, rank_submissions
from unlearning_challenge.scoring.statistics import FamilySample

N, E, RESAMPLES = 16, 12, 20
TRAINED_MODELS_TOO = "over trained models too"


def _originals(n: int, k: int) -> np.ndarray:
    return np.arange(n) % k


def _family_between(rng, n: int, k: int, e: int, *, between: float, within: float) -> FamilySample:
    """Runs of original i mod k: an effect per original (scale ``between``) plus noise per run (``within``)."""
    originals = _originals(n, k)
    effect = rng.normal(size=(k, e + 2)) * between
    z = effect[originals] + rng.normal(size=(n, e + 2)) * within
    return FamilySample.of(z[:, 2:], 0.85 + 0.01 * z[:, 0], 0.6 + 0.01 * z[:, 1])


def _sample(rng, mu, shift=0.0, n=N) -> FamilySample:
    return FamilySample.of(rng.normal(mu + shift, 1.0, (n, mu.size)), rng.uniform(0.86, 0.88, n),
                           rng.uniform(0.6, 0.62, n))


# ----------------------------------------------------------------------------- the two-level bootstrap


def test_two_level_draws_keep_each_slot_within_one_original_and_n_runs():
    originals = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])  # uneven: 4, 3, 3 runs
    groups = original_groups(originals)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        runs, slots = two_level_indices(rng, groups)
        assert runs.shape == slots.shape == (originals.size,)
        assert np.array_equal(np.bincount(slots), [4, 3, 3])  # every draw holds N runs
        for slot in range(3):
            drawn = np.unique(originals[runs[slots == slot]])
            assert drawn.size == 1  # a slot's runs come from one original
            seen.add(int(drawn[0]))
    assert seen == {0, 1, 2}
    again = two_level_indices(np.random.default_rng(0), groups)
    first = two_level_indices(np.random.default_rng(0), groups)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_one_level_resampler_is_the_draw_used_before():
    draw = model_resampler(None, 7)
    assert np.array_equal(draw(np.random.default_rng(3)), np.random.default_rng(3).integers(0, 7, size=7))
    with pytest.raises(ValueError, match="5 originals for 7 models"):
        model_resampler(np.zeros(5, dtype=int), 7)


def test_all_variance_between_originals_gives_a_share_near_one():
    rng = np.random.default_rng(1)
    family = _family_between(rng, 64, 8, E, between=1.0, within=1e-4)
    share = training_seed_share(family, _originals(64, 8), num_resamples=300)
    for part in (share.retain_accuracy, share.test_accuracy, share.forget_confidence, share.forget_confidence_mean):
        assert part.value > 0.999 and part.low > 0.99 and part.high <= 1.0, part
    assert np.all(share.per_example > 0.999) and share.per_example.shape == (E,)


def test_runs_that_ignore_their_original_give_a_share_near_zero():
    rng = np.random.default_rng(2)
    n, k = 256, 4
    family = _family_between(rng, n, k, E, between=0.0, within=1.0)
    share = training_seed_share(family, _originals(n, k), num_resamples=300)
    for part in (share.retain_accuracy, share.test_accuracy, share.forget_confidence, share.forget_confidence_mean):
        assert part.value < 0.05 and part.low >= 0.0 and part.high < 0.1, part
    # The plug-in share's floor with no effect: about (K - 1) / (N - 1).
    assert abs(share.forget_confidence_mean.value - (k - 1) / (n - 1)) < 0.01


def test_the_share_is_seeded_and_per_example():
    rng = np.random.default_rng(3)
    n, k = 32, 4
    between = _family_between(rng, n, k, 3, between=1.0, within=0.0)
    none = _family_between(rng, n, k, 3, between=0.0, within=1.0)
    mixed = FamilySample.of(np.hstack([between.confidences, none.confidences]), none.retain_accuracy,
                            none.test_accuracy)
    first = training_seed_share(mixed, _originals(n, k), num_resamples=50, seed=4)
    again = training_seed_share(mixed, _originals(n, k), num_resamples=50, seed=4)
    assert first == dataclasses.replace(again, per_example=first.per_example)
    assert np.array_equal(first.per_example, again.per_example)
    assert np.all(first.per_example[:3] > 0.999) and np.all(first.per_example[3:] < 0.5)


def test_seed_share_is_the_law_of_total_variance_and_nan_for_a_constant():
    z = np.array([1.0, 3.0, 10.0, 14.0, 20.0])
    labels = np.array([0, 0, 1, 1, 1])
    means = np.array([2.0, 2.0, 44 / 3, 44 / 3, 44 / 3])
    assert seed_share(z, labels) == pytest.approx(np.var(means) / np.var(z))
    assert np.isnan(seed_share(np.full(5, 0.3), labels))
    assert seed_share(np.column_stack([z, z]), labels).shape == (2,)


# ----------------------------------------------------------------------------- per original


def test_per_original_results_are_the_metric_on_the_subsets():
    rng = np.random.default_rng(5)
    mu = rng.normal(2.0, 1.0, E)
    unlearned, retrained = _sample(rng, mu, 0.3, n=10), _sample(rng, mu, n=10)
    originals = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])  # 3, 3, 2, 2 runs
    results = per_original_results(unlearned, retrained, originals)
    assert [r.original for r in results] == [0, 1, 2, 3] and [r.num_models for r in results] == [3, 3, 2, 2]
    for result in results:
        runs = np.flatnonzero(originals == result.original)
        u = unlearned.take(runs)
        size = runs.size
        blocks = [retrained.confidences[start:start + size] for start in range(0, 10 - size + 1, size)]
        expected_f = np.mean([forget_quality(u.confidences, block) for block in blocks])
        assert result.retrained_blocks == len(blocks)
        assert result.forget_quality == pytest.approx(expected_f, abs=1e-15)
        assert result.score == pytest.approx(final_score(expected_f, u.retain_accuracy, retrained.retain_accuracy,
                                                         u.test_accuracy, retrained.test_accuracy), abs=1e-15)
        assert result.retain_accuracy_ratio == pytest.approx(u.retain_accuracy.mean() / retrained.retain_accuracy.mean())
        assert result.test_accuracy_ratio == pytest.approx(u.test_accuracy.mean() / retrained.test_accuracy.mean())


def test_an_original_with_one_run_has_no_f():
    rng = np.random.default_rng(6)
    mu = rng.normal(2.0, 1.0, E)
    results = per_original_results(_sample(rng, mu, n=5), _sample(rng, mu, n=5), np.array([0, 0, 0, 0, 1]))
    assert results[1].num_models == 1 and results[1].forget_quality is None and results[1].score is None
    assert results[0].forget_quality is not None


def test_run_originals_reads_the_records_and_is_none_for_one_original():
    def runs(originals):
        return [RunRecord(index=i, status="ok", original=o) for i, o in enumerate(originals)]

    assert run_originals(runs([None] * 4), 4) is None
    assert run_originals(runs([0] * 4), 4) is None
    assert run_originals([], 4) is None
    assert np.array_equal(run_originals(list(reversed(runs([0, 1, 0, 1, 0]))), 4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="name no original"):
        run_originals(runs([0, None, 0, 1]), 4)


# ----------------------------------------------------------------------------- compare and rank


@pytest.fixture
def families():
    rng = np.random.default_rng(7)
    mu = rng.normal(2.0, 1.5, E)
    return _sample(rng, mu), [_sample(rng, mu, 0.4), _sample(rng, mu), _sample(rng, mu, 0.2)]


def test_one_original_compares_and_ranks_exactly_as_before(families):
    retrained, (a, b, c) = families
    options = {"num_resamples": RESAMPLES, "seed": 3}
    before = compare(a, b, retrained, **options)
    for originals in ([None, None], [np.zeros(N, dtype=int)] * 2, None):
        runs = None if originals is None else [run_originals(
            [RunRecord(index=i, status="ok", original=None if o is None else int(o[i])) for i in range(N)], N)
            for o in originals]
        assert compare(a, b, retrained, originals=runs, **options) == before
    ranked = rank_submissions([a, b, c], retrained, names=["a", "b", "c"], **options)
    assert rank_submissions([a, b, c], retrained, names=["a", "b", "c"], originals=[None] * 3, **options) == ranked
    assert before.num_originals is None and TRAINED_MODELS_TOO not in " ".join(before.lines())


def test_several_originals_resample_on_two_levels_and_say_so(families):
    retrained, (a, b, c) = families
    originals = _originals(N, 4)
    options = {"num_resamples": RESAMPLES, "seed": 3}
    one = joint_bootstrap([a, b], retrained, **options)
    two = joint_bootstrap([a, b], retrained, originals=[originals, originals], **options)
    assert np.array_equal(one.observed, two.observed) and not np.array_equal(one.scores, two.scores)
    assert two.num_originals == 4
    twins = joint_bootstrap([a, a], retrained, originals=[originals, originals], **options)
    assert np.array_equal(twins.scores[:, 0], twins.scores[:, 1])  # still paired
    comparison = compare(a, b, retrained, originals=[originals, originals], **options)
    assert comparison.num_originals == 4 and TRAINED_MODELS_TOO in " ".join(comparison.lines())
    ranking = rank_submissions([a, b, c], retrained, names=["a", "b", "c"], originals=[originals] * 3, **options)
    assert ranking.num_originals == 4
    with pytest.raises(ValueError, match="same original models"):
        joint_bootstrap([a, b], retrained, originals=[originals, _originals(N, 2)], **options)
    with pytest.raises(ValueError, match="same original models"):
        joint_bootstrap([a, b], retrained, originals=[originals, None], **options)


# ----------------------------------------------------------------------------- scores.json, the page, the folders


def _model_family(rng, mu, labels, shift=0.0, n=N) -> ModelFamily:
    logits = rng.normal(size=(n, mu.size, 4)).astype(np.float32)
    logits[:, np.arange(mu.size), labels] += (mu + shift + rng.normal(size=(n, mu.size))).astype(np.float32)
    return ModelFamily(logits, labels, np.arange(mu.size, dtype=np.int64), rng.uniform(0.86, 0.88, n),
                       rng.uniform(0.6, 0.62, n), rng.uniform(0.5, 0.7, n), np.ones(n), np.arange(n, dtype=np.int64))


def _write_output(folder, family: ModelFamily, originals):
    folder.mkdir(parents=True)
    digest = write_family(folder / UNLEARNED_ARRAYS, family)
    runs = tuple(RunRecord(index=i, seed=i, status="ok", seconds=1.0, original=originals[i])
                 for i in range(family.num_models))
    write_manifest(folder, IngestionManifest(
        status="ok", message="done", runs=runs, phase="check", config_fingerprint="c" * 64,
        split_fingerprint="s" * 64, num_models=family.num_models, num_models_reference=N, arrays_sha256=digest))


@pytest.fixture
def folders(tmp_path):
    """The same arrays twice, as runs of one original and as runs of original i mod 2, a second submission
    of two originals, and their reference data."""
    rng = np.random.default_rng(8)
    mu, labels = rng.normal(2.0, 1.0, E), rng.integers(0, 4, E)
    ref = tmp_path / "ref"
    ref.mkdir()
    digest = write_family(ref / REFERENCE_ARRAYS, _model_family(rng, mu, labels))
    write_manifest(ref, ReferenceManifest(phase="check", config_fingerprint="c" * 64, split_fingerprint="s" * 64,
                                          num_models=N, mean_retrain_seconds=5.0, arrays_sha256=digest))
    family = _model_family(rng, mu, labels, shift=0.3)
    _write_output(tmp_path / "one", family, [None] * N)
    _write_output(tmp_path / "two", family, [i % 2 for i in range(N)])
    _write_output(tmp_path / "other", _model_family(rng, mu, labels), [i % 2 for i in range(N)])
    return tmp_path, ref


def _scored(root, ref, name: str) -> tuple[dict, str, str, dict]:
    """scores.json, scores.txt and the page of folder ``name`` as the scoring program writes them, and
    scores.json in a phase that hides per-example details (few resamples: the numbers are not what is tested)."""
    inputs = read_inputs(root / name, ref)
    result = add_statistics(compute_scores(inputs), num_resamples=4)
    out = root / f"scores-{name}"
    write_scores(out, result, inputs)
    hidden = result.to_json(quick_check=False, per_example=False)
    return (json.loads((out / "scores.json").read_text()), (out / "scores.txt").read_text(),
            (out / "detailed_results.html").read_text(), hidden)


def test_scores_json_and_the_page_have_the_originals_only_with_several(folders):
    root, ref = folders
    (one, one_txt, one_page, one_hidden), (two, two_txt, two_page, two_hidden) = (
        _scored(root, ref, name) for name in ("one", "two"))
    assert "originals" not in one and "originals" not in one_hidden
    originals = two.pop("originals")
    assert two == one and two_txt == one_txt  # the rest is the same: the leaderboard score is the published rule
    assert originals["num_originals"] == 2 and "noisier" in originals["note"]
    assert [row["original"] for row in originals["per_original"]] == [0, 1]
    for row in originals["per_original"]:
        assert row["num_models"] == N // 2
        assert {"forget_quality", "retain_accuracy_ratio", "test_accuracy_ratio", "score"} <= row.keys()
    shares = originals["training_seed_share"]
    for key in ("retain_accuracy", "test_accuracy", "forget_confidence"):
        share = shares[key]
        assert share["confidence"] == 0.95 and share["low"] <= share["value"] <= share["high"], share
    assert len(shares["forget_confidence"]["per_example"]) == E
    # A phase that hides per-example details keeps the section, without the per-example shares.
    hidden = json.loads(json.dumps(two_hidden["originals"]))
    assert "per_example" not in hidden["training_seed_share"]["forget_confidence"]
    shares["forget_confidence"].pop("per_example")
    assert hidden == originals and "epsilons" not in two_hidden
    heading = "original models: how much is luck of the training seed?"
    assert heading not in one_page and f"2 {heading}" in two_page
    assert two_page.count("data:image/png") == one_page.count("data:image/png") + 1
    assert "Training-seed share of the variance" in two_page and "noisier" in two_page


def test_compare_and_rank_folders_resample_originals(folders):
    root, ref = folders
    comparison = compare_folders(root / "two", root / "other", ref, num_resamples=RESAMPLES)
    assert comparison.num_originals == 2 and TRAINED_MODELS_TOO in " ".join(comparison.lines())
    ranking = rank_folders([root / "two", root / "other"], ref, num_resamples=RESAMPLES)
    assert ranking.num_originals == 2 and TRAINED_MODELS_TOO in rank_table(ranking)
    with pytest.raises(ValueError, match="same original models"):
        compare_folders(root / "one", root / "two", ref, num_resamples=RESAMPLES)


def test_originals_of_one_run_each_give_no_share():
    rng = np.random.default_rng(9)
    family = _family_between(rng, 3, 3, E, between=1.0, within=1.0)
    share = training_seed_share(family, _originals(3, 3), num_resamples=10)
    assert share.retain_accuracy.value is None and share.forget_confidence.low is None
    assert np.all(np.isnan(share.per_example))
