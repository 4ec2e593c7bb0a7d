"""The floating-point facts the fast metric relies on, checked against the libraries themselves."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from unlearning_challenge.metric._constants import NUM_LEFT_THRESHOLDS
from unlearning_challenge.metric._grids import (
    left_edge_rows,
    left_edges,
    left_grids_are_monotone,
    right_edges,
    single_thresholds,
)
from unlearning_challenge.metric._table import epsilon_tables


@pytest.mark.parametrize("num_models", [2, 8, 33, 64, 512, 1000])
def test_torch_mean_of_a_0_1_column_is_count_over_n_in_float32(num_models):
    counts = np.arange(num_models + 1)
    columns = (np.arange(num_models)[:, None] < counts[None, :]).astype(np.float32)
    means = torch.mean(torch.from_numpy(columns), 0).numpy()
    assert np.array_equal(means, counts.astype(np.float32) / np.float32(num_models))


@pytest.mark.parametrize("num_models, delta", [(8, 1e-5), (33, 1e-5), (512, 1e-5), (64, 0.01)])
def test_table_equals_the_formula_on_rate_vectors(num_models, delta):
    table, suffix = epsilon_tables(num_models, delta)
    rng = np.random.default_rng(num_models)
    fp = rng.integers(0, num_models + 1, 5000)
    fn = rng.integers(0, num_models + 1, 5000)
    fp[:4], fn[:4] = [0, 0, 3, num_models], [0, 5, 0, num_models]
    fpr = fp.astype(np.float32) / np.float32(num_models)
    fnr = fn.astype(np.float32) / np.float32(num_models)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eps = np.clip(
            np.nanmax([np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)], axis=0), 0, None
        )
    eps[(fp == 0) ^ (fn == 0)] = np.nan
    eps[(fp == 0) & (fn == 0)] = np.inf
    expected = np.where(np.isnan(eps), -np.inf, eps).astype(np.float32)
    assert np.array_equal(table[fp, fn], expected)
    assert table[0, 0] == np.inf and table[num_models, num_models] == -np.inf and table[0, 1] == -np.inf
    # The suffix maximum bounds every entry with more errors.
    a, b = rng.integers(0, num_models + 1, 2)
    assert suffix[a, b] == table[a:, b:].max()
    assert not table.flags.writeable


def test_single_thresholds_are_torch_linspace_with_the_default_dtype():
    rng = np.random.default_rng(0)
    for lo, hi in [(-3.2, 5.7), (0.1, 0.1), (1.0, 1.004), (-103.6, 103.6)] + [tuple(sorted(rng.normal(0, 5, 2))) for _ in range(50)]:
        num = int(torch.ceil((torch.tensor(hi, dtype=torch.float64) - torch.tensor(lo, dtype=torch.float64)) * 100))
        expected = torch.linspace(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64), num)
        assert expected.dtype == torch.float32
        assert np.array_equal(single_thresholds(lo, hi), expected.numpy().astype(np.float64))


def test_single_thresholds_ignore_a_changed_default_dtype():
    expected = single_thresholds(-2.345, 7.891)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert np.array_equal(single_thresholds(-2.345, 7.891), expected)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("center, spread", [(0.0, 1.0), (3.3, 0.01), (-95.0, 8.0), (9999.0, 0.5), (0.0, 0.0)])
def test_left_edges_equal_np_linspace_row_by_row(center, spread):
    rng = np.random.default_rng(int(abs(center)) + 1)
    peaky = np.sort(center + spread * rng.normal(0, 1, 50))
    width = peaky[-1] - peaky[0]
    right = right_edges(peaky[0], peaky[-1], width)
    lo, hi = peaky.min() + width - 2.0, peaky.max() + 2.0
    assert np.array_equal(right, np.linspace(lo, hi, int(np.ceil((hi - lo) * 100))))
    start, step, stop = left_edge_rows(right, width)
    assert left_grids_are_monotone(right, start, step, stop)
    rows = np.arange(right.size)[:, None]
    cols = np.arange(NUM_LEFT_THRESHOLDS)[None, :]
    grid = left_edges(start, step, stop, rows, cols)
    expected = np.stack([np.linspace(r - width - 2.0, r - width + 2.0, 400) for r in right])
    assert np.array_equal(grid, expected)
    assert np.all(np.diff(grid, axis=0) >= 0) and np.all(np.diff(grid, axis=1) >= 0)
