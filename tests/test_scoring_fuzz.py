"""Mutated ingestion outputs and reference files are refused or, where the mutation
cannot matter, scored exactly as before: nothing is ever scored silently."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import SUBMISSIONS
from unlearning_challenge.artifacts import ArtifactError
from unlearning_challenge.scoring.program import ScoringError, compute_scores, read_inputs

FILES = ["res/unlearned.npz", "res/ingestion.json", "ref/reference.npz", "ref/manifest.json"]


@pytest.fixture(scope="module")
def scored_pair(tiny_phase, ingested, tmp_path_factory):
    """res/ and ref/ of a successful ingestion (all 3 runs), and its scores."""
    _, reference_dir, _ = tiny_phase
    root = tmp_path_factory.mktemp("fuzz")
    done, res = ingested(SUBMISSIONS / "in_place_no_return")  # test_pipeline checks it is accepted
    assert done.returncode == 0, done.stderr
    shutil.copytree(res, root / "res")
    shutil.copytree(reference_dir, root / "ref")
    return root, _numbers(root)


def _numbers(root):
    result = compute_scores(read_inputs(root / "res", root / "ref"))
    return result.numbers(), result.epsilons


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(4)
    position = int(rng.integers(len(data)))
    if kind == 0:  # flip bits of one byte
        return data[:position] + bytes([data[position] ^ int(rng.integers(1, 256))]) + data[position + 1:]
    if kind == 1:  # truncate
        return data[:position]
    if kind == 2:  # drop a span
        return data[:position] + data[position + int(rng.integers(1, 64)):]
    return data[:position] + bytes(rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8)) + data[position:]


@pytest.mark.parametrize("case", range(48))
def test_mutated_files_are_refused_or_change_nothing(scored_pair, tmp_path, case):
    root, (expected, expected_eps) = scored_pair
    work = tmp_path / "w"
    shutil.copytree(root, work)
    rng = np.random.default_rng(case)
    target = work / FILES[case % len(FILES)]
    original = target.read_bytes()
    mutated = _mutate(original, rng)
    target.write_bytes(mutated)
    try:
        scores, eps = _numbers(work)
    except (ArtifactError, ScoringError) as exc:  # the scoring's own refusals; any other error fails the test
        assert str(exc)  # refused, with a message
        return
    assert scores == expected and np.array_equal(eps, expected_eps), f"{target.name} mutated and scored differently"


def test_tampered_values_with_a_matching_manifest_are_still_checked(scored_pair, tmp_path):
    """Even a consistent rewrite (new arrays and the matching checksum) cannot pass wrong shapes or values."""
    from unlearning_challenge.artifacts import read_family, write_family

    root, _ = scored_pair
    work = tmp_path / "w"
    shutil.copytree(root, work)
    manifest = json.loads((work / "res" / "ingestion.json").read_text())
    family = read_family(work / "res" / "unlearned.npz", expected_sha256=None, what="x")
    bad = family.__class__(**{**family.arrays(), "retain_accuracy": family.retain_accuracy + 5})
    manifest["arrays_sha256"] = write_family(work / "res" / "unlearned.npz", bad)
    (work / "res" / "ingestion.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="retain_accuracy must hold finite fractions in"):
        read_inputs(work / "res", work / "ref")
