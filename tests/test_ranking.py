"""Paired comparison, rank intervals, U-LiRA and KLoM: calibrated on synthetic families, refusals named."""

from __future__ import annotations

import numpy as np
import pytest

from unlearning_challenge import cli
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
from unlearning_challenge.scoring.compare import CompareError, compare_folders, rank_folders, rank_table
from unlearning_challenge.scoring.klom import KLOM_EPSILON, klom
from unlearning_challenge.scoring.ranking import compare, joint_bootstrap, rank_submissions
from unlearning_challenge.scoring.statistics import FamilySample
from unlearning_challenge.scoring.ulira import ulira

N, E, RESAMPLES = 12, 20, 60


def _sample(rng, mu, shift=0.0, n=N, accuracy=0.88):
    return FamilySample.of(rng.normal(mu + shift, 1.0, (n, mu.size)), rng.uniform(accuracy - 0.02, accuracy, n),
                           rng.uniform(0.6, 0.62, n))


# ----------------------------------------------------------------------------- U-LiRA and KLoM


def test_ulira_is_a_coin_for_one_distribution_and_certain_for_separated_ones():
    rng = np.random.default_rng(0)
    same = ulira(rng.normal(size=(64, 300)), rng.normal(size=(64, 300)))
    assert abs(same.accuracy - 0.5) < 0.03 and same.per_example.shape == (300,)
    far = ulira(rng.normal(6.0, 1.0, (64, 300)), rng.normal(size=(64, 300)))
    assert far.accuracy > 0.99 and far.std < 0.02
    constant = ulira(np.full((4, 3), 2.0), np.full((4, 3), 2.0))
    assert constant.accuracy == 0.5  # every likelihood ratio ties


def test_ulira_leaves_the_held_out_model_out():
    """Held in, a model's own value pulls its Gaussian toward it; left out, two models per family still work."""
    rng = np.random.default_rng(1)
    result = ulira(rng.normal(size=(2, 50)), rng.normal(size=(2, 50)))
    assert 0.0 <= result.accuracy <= 1.0 and np.all(np.isfinite(result.per_example))
    with pytest.raises(ValueError, match="at least 2 models"):
        ulira(rng.normal(size=(1, 5)), rng.normal(size=(3, 5)))


def test_ulira_and_klom_take_non_finite_outputs():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(8, 4))
    u[:, 0] = np.nan
    u[0, 1] = np.inf
    r = rng.normal(size=(8, 4))
    assert ulira(u, r).per_example[0] == 1.0  # NaN is as wrong as a margin can be: every model told apart
    assert np.all(np.isfinite(klom(u, r).per_example))


def test_klom_is_zero_for_identical_margins_and_large_for_shifted_ones():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(32, 100))
    assert np.all(klom(values, values.copy()).per_example == 0.0)
    same = klom(rng.normal(size=(512, 100)), rng.normal(size=(512, 100)))
    shifted = klom(rng.normal(3.0, 1.0, (512, 100)), rng.normal(size=(512, 100)))
    assert same.p95 < 0.2 and shifted.p95 > 3.0
    apart = klom(np.full((8, 2), 10.0), np.zeros((8, 2)))
    assert np.allclose(apart.per_example, np.log(1 / KLOM_EPSILON))  # the bound: no overlap at all


# ----------------------------------------------------------------------------- paired comparison and ranks


def test_a_clear_difference_is_called_with_near_certainty_both_ways():
    rng = np.random.default_rng(10)
    mu = rng.normal(2.0, 1.5, E)
    retrained, good, bad = _sample(rng, mu), _sample(rng, mu), _sample(rng, mu, shift=1.5)
    ahead = compare(good, bad, retrained, num_resamples=RESAMPLES, seed=0)
    assert ahead.difference > 0 and ahead.a_beats_b >= 0.99 and ahead.low > 0 and ahead.clear
    assert "beats B in 100% of resamples: a real difference." in ahead.sentence()
    behind = compare(bad, good, retrained, num_resamples=RESAMPLES, seed=0, names=("bad", "good"))
    assert behind.a_beats_b <= 0.01 and behind.sentence().endswith("a real difference, in favour of good.")


@pytest.mark.parametrize("seed", range(5))
def test_noise_alone_is_never_a_confident_difference(seed):
    rng = np.random.default_rng(100 + seed)
    mu = rng.normal(2.0, 1.5, E)
    retrained, a, b = _sample(rng, mu), _sample(rng, mu), _sample(rng, mu)
    result = compare(a, b, retrained, num_resamples=RESAMPLES, seed=seed)
    assert 0.01 < result.a_beats_b < 0.99, result.lines()
    assert result.low <= result.difference <= result.high


def test_resampling_is_seeded_and_joint():
    rng = np.random.default_rng(11)
    mu = rng.normal(2.0, 1.5, E)
    retrained, a, b = _sample(rng, mu), _sample(rng, mu), _sample(rng, mu)
    first = joint_bootstrap([a, b], retrained, num_resamples=12, seed=5)
    again = joint_bootstrap([a, b], retrained, num_resamples=12, seed=5)
    assert np.array_equal(first.scores, again.scores) and first.scores.shape == (12, 2)
    # Two copies of one submission get the same score on every joint resample: same model and example indices.
    twins = joint_bootstrap([a, a], retrained, num_resamples=12, seed=5)
    assert np.array_equal(twins.scores[:, 0], twins.scores[:, 1])
    assert compare(a, a, retrained, num_resamples=12).a_beats_b == 0.5
    with pytest.raises(ValueError, match="same phase"):
        joint_bootstrap([a, _sample(rng, mu, n=N + 1)], retrained)


def test_a_dominant_submission_ranks_first():
    rng = np.random.default_rng(12)
    mu = rng.normal(2.0, 1.5, E)
    retrained = _sample(rng, mu)
    families = [_sample(rng, mu, shift=2.0), _sample(rng, mu), _sample(rng, mu, shift=1.0)]
    ranking = rank_submissions(families, retrained, names=["worst", "best", "middle"], num_resamples=RESAMPLES)
    rows = {row.name: row for row in ranking.rows}
    assert ranking.rows[0].name == "best" and rows["best"].p_first >= 0.95
    assert (rows["best"].rank_low, rows["best"].rank_high) == (1, 1)
    assert rows["worst"].rank_high == 3 and rows["worst"].p_first <= 0.05
    assert abs(sum(row.p_first for row in ranking.rows) - 1.0) < 1e-9
    assert all(1 <= row.rank_low <= row.rank_high <= 3 and row.low <= row.score <= row.high for row in ranking.rows)


# ----------------------------------------------------------------------------- folders and the command


def _family(rng, mu, labels, shift=0.0, n=N) -> ModelFamily:
    logits = rng.normal(size=(n, mu.size, 4)).astype(np.float32)
    logits[:, np.arange(mu.size), labels] += (mu + shift + rng.normal(size=(n, mu.size))).astype(np.float32)
    return ModelFamily(logits, labels, np.arange(mu.size, dtype=np.int64), rng.uniform(0.86, 0.88, n),
                       rng.uniform(0.6, 0.62, n), rng.uniform(0.5, 0.7, n), np.ones(n), np.arange(n, dtype=np.int64))


def _write_submission(folder, family: ModelFamily, *, phase="check", status="ok"):
    folder.mkdir(parents=True)
    digest = write_family(folder / UNLEARNED_ARRAYS, family)
    runs = tuple(RunRecord(index=i, seed=i, status="ok", seconds=1.0) for i in range(family.num_models))
    write_manifest(folder, IngestionManifest(
        status=status, message="done", runs=runs, phase=phase, config_fingerprint="c" * 64,
        split_fingerprint="s" * 64, num_models=family.num_models, num_models_reference=N, arrays_sha256=digest))


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(20)
    mu, labels = rng.normal(2.0, 1.0, E), rng.integers(0, 4, E)
    ref = tmp_path / "reference_data"
    ref.mkdir()
    digest = write_family(ref / REFERENCE_ARRAYS, _family(rng, mu, labels))
    write_manifest(ref, ReferenceManifest(phase="check", config_fingerprint="c" * 64, split_fingerprint="s" * 64,
                                          num_models=N, mean_retrain_seconds=5.0, arrays_sha256=digest))
    _write_submission(tmp_path / "runs" / "good" / "res", _family(rng, mu, labels))
    _write_submission(tmp_path / "bad", _family(rng, mu, labels, shift=2.0))
    _write_submission(tmp_path / "runs" / "shifted" / "res", _family(rng, mu, labels, shift=2.0))
    return tmp_path, ref


def test_compare_reads_run_folders_and_ingestion_outputs(folders, capsys):
    root, ref = folders
    comparison = compare_folders(root / "runs" / "good", root / "bad", ref, num_resamples=RESAMPLES)
    assert comparison.a_beats_b >= 0.99 and comparison.name_a.endswith("good")
    code = cli.main(["compare", str(root / "runs" / "good"), str(root / "bad"), "--reference-data", str(ref),
                     "--resamples", "20", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "difference" in out and "95% interval" in out and "of resamples: a real difference." in out
    ranking = rank_folders([root / "bad", root / "runs" / "good"], ref, num_resamples=20)
    assert ranking.rows[0].name.endswith("good") and "P(first)" in rank_table(ranking)
    assert cli.main(["rank", str(root / "bad"), str(root / "runs" / "good"), "--reference-data", str(ref),
                     "--resamples", "20"]) == 0


def test_compare_refuses_other_phases_failed_ingestions_and_non_outputs(folders, capsys):
    root, ref = folders
    rng = np.random.default_rng(21)
    family = _family(rng, rng.normal(size=E), rng.integers(0, 4, E))
    _write_submission(root / "final", family, phase="final")
    _write_submission(root / "failed", family, status="failed")
    with pytest.raises(CompareError, match=r"final is of phase 'final' but the reference data .* of phase 'check': scores of different phases cannot"):
        compare_folders(root / "bad", root / "final", ref)
    with pytest.raises(CompareError, match=r"failed: the submission failed during ingestion"):
        compare_folders(root / "failed", root / "bad", ref)
    with pytest.raises(CompareError, match=r"nowhere: not an ingestion output"):
        compare_folders(root / "nowhere", root / "bad", ref)
    assert cli.main(["compare", str(root / "failed"), str(root / "bad"), "--reference-data", str(ref)]) == 2
    assert "failed: the submission failed during ingestion" in capsys.readouterr().err


def test_the_baselines_table_ranks_the_baselines_from_their_outputs(folders):
    from unlearning_challenge.platforms.baselines import baseline_ranks, markdown_table

    root, ref = folders
    results = {"good": {"score": 0.2}, "shifted": {"score": 0.01}, "broken": {"failed": True}}
    ranks = baseline_ranks(results, root / "runs", ref)
    assert set(ranks) == {"good", "shifted"} and ranks["good"].p_first > 0.9
    table = markdown_table(results, num_models=N, machine="a CPU", ranks=ranks)
    assert "| rank (95%) | P(first) |" in table
    assert baseline_ranks({"good": {}, "gone": {}}, root / "runs", ref) == {}  # no output: no columns


# ----------------------------------------------------------------------------- rehearsals: k < N models


K = 4


@pytest.fixture
def rehearsals(folders):
    """Two outputs of a rehearsal that ran the first K of the phase's N runs, and one that ran 6."""
    root, ref = folders
    same = np.random.default_rng(20)  # the folders fixture's forget set
    mu, labels = same.normal(2.0, 1.0, E), same.integers(0, 4, E)
    rng = np.random.default_rng(22)
    _write_submission(root / "runs" / "k4-good" / "res", _family(rng, mu, labels, n=K))
    _write_submission(root / "runs" / "k4-shifted" / "res", _family(rng, mu, labels, shift=2.0, n=K))
    _write_submission(root / "runs" / "k6" / "res", _family(rng, mu, labels, n=6))
    return root / "runs", ref


def test_compare_and_rank_score_rehearsal_outputs_on_the_first_k_reference_models(rehearsals, capsys):
    from unlearning_challenge.scoring.program import _family_sample, read_inputs

    runs, ref = rehearsals
    comparison = compare_folders(runs / "k4-good", runs / "k4-shifted", ref, num_resamples=RESAMPLES)
    assert (comparison.num_models, comparison.reference_models) == (K, N)
    # The same numbers as the scoring program's inputs for k = 4 (the first 4 models of each side).
    a, b = (read_inputs(runs / name / "res", ref, num_models=K) for name in ("k4-good", "k4-shifted"))
    assert a.retrained.num_models == K
    expected = compare(_family_sample(a.unlearned), _family_sample(b.unlearned), _family_sample(a.retrained),
                       names=(comparison.name_a, comparison.name_b), num_resamples=RESAMPLES, seed=0)
    assert (comparison.score_a, comparison.score_b, comparison.a_beats_b) == (
        expected.score_a, expected.score_b, expected.a_beats_b)
    note = (f"scores of k = {K} models (a rehearsal with NUM_MODELS={K}, or the runs that fit in the phase's time "
            f"limit) against the first {K} reference models: not comparable with the leaderboard's (N = {N} models)")
    lines = comparison.lines()
    assert f"examples, k = {K} of the phase's N = {N}, seed 0)" in lines[1] and lines[-1] == note
    assert cli.main(["compare", str(runs / "k4-good"), str(runs / "k4-shifted"), "--reference-data", str(ref),
                     "--resamples", "20"]) == 0
    assert note in capsys.readouterr().out

    ranking = rank_folders([runs / "k4-shifted", runs / "k4-good"], ref, num_resamples=20)
    assert (ranking.num_models, ranking.reference_models) == (K, N)
    table = rank_table(ranking)
    assert f"; k = {K} of the phase's N = {N}, seed 0." in table and table.endswith(note)
    assert cli.main(["rank", str(runs / "k4-shifted"), str(runs / "k4-good"), "--reference-data", str(ref),
                     "--resamples", "20"]) == 0
    assert note in capsys.readouterr().out


def test_outputs_that_ran_the_phases_n_print_as_before(folders):
    root, ref = folders
    comparison = compare_folders(root / "runs" / "good", root / "bad", ref, num_resamples=20)
    assert (comparison.num_models, comparison.reference_models) == (N, N)
    assert f"examples, N = {N}, seed 0)" in comparison.lines()[1] and len(comparison.lines()) == 3
    table = rank_table(rank_folders([root / "bad", root / "runs" / "good"], ref, num_resamples=20))
    assert f"; N = {N}, seed 0." in table and "not comparable" not in table


def test_outputs_of_different_k_are_refused_naming_both(folders, rehearsals, capsys):
    root, ref = folders
    runs = rehearsals[0]
    with pytest.raises(CompareError, match=(
            rf"^the outputs ran different numbers of models: {runs / 'k4-good'} k = 4, {runs / 'k6'} k = 6; "
            r"compare outputs that ran the same k \(rehearse each with the same NUM_MODELS\)$")):
        compare_folders(runs / "k4-good", runs / "k6", ref)
    with pytest.raises(CompareError, match=rf"{root / 'bad'} k = {N}, {runs / 'k4-good'} k = 4;"):
        compare_folders(root / "bad", runs / "k4-good", ref)
    with pytest.raises(CompareError, match=rf"{runs / 'k4-shifted'} k = 4, {runs / 'k6'} k = 6;"):
        rank_folders([runs / "k4-good", runs / "k4-shifted", runs / "k6"], ref)
    assert cli.main(["rank", str(runs / "k4-good"), str(runs / "k6"), "--reference-data", str(ref)]) == 2
    assert "the outputs ran different numbers of models" in capsys.readouterr().err
