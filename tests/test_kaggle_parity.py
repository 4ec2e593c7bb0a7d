"""Code carried over from the 2023 Kaggle edition: what it sees, and the hints when it breaks.

Kaggle's loop (the competition's run notebooks): the model built with
``resnet18(weights=None, num_classes=10)``, moved to the GPU, never switched to
eval mode; loaders ``DataLoader(ds, batch_size=64, shuffle=True)`` over datasets
of dicts (keys image, image_id, age_group, age, person_id) with float32 images.
"""

from __future__ import annotations

import json

import pytest

from conftest import SUBMISSIONS, run_module
from unlearning_challenge.cli import quick_check_problem
from unlearning_challenge.data import BATCH_KEYS
from unlearning_challenge.runner.hints import run_hint


def ingest(input_dir, out, name, *extra):
    done = run_module("unlearning_challenge.ingestion", "--input", input_dir, "--output", out,
                      "--submission", SUBMISSIONS / name, "--no-time-limit", *extra)
    return done, json.loads((out / "ingestion.json").read_text())


@pytest.mark.ingestion
def test_a_kaggle_notebook_runs_unchanged_and_sees_kaggles_harness(tiny_phase, tmp_path):
    input_dir, _, config = tiny_phase
    done, manifest = ingest(input_dir, tmp_path / "res", "kaggle_notebook", "--num-models", "1")
    assert done.returncode == 0, manifest["message"]
    facts = json.loads(manifest["runs"][0]["output_tail"].split("FACTS ", 1)[1].splitlines()[0])
    assert facts["training"] and facts["device_is_DEVICE"]
    assert facts["requires_grad"] and facts["grads_are_none"] and facts["grad_enabled"]
    assert facts["param_dtypes"] == ["torch.float32"]
    assert facts["batch_keys"] == ["image", "image_id", "age_group", "age", "person_id"] == list(BATCH_KEYS)
    assert facts["batch_dtypes"] == {"image": "torch.float32", "image_id": "torch.int64",
                                     "age_group": "torch.int64", "age": "torch.int64", "person_id": "torch.int64"}
    assert facts["batch_devices"] == ["cpu"]
    assert 0 <= facts["image_range"][0] < facts["image_range"][1] <= 255 and facts["image_range"][1] > 1
    kaggle_loader = {"batch_size": config.ingestion.batch_size, "drop_last": False, "num_workers": 0,
                     "sampler": "RandomSampler", "has_own_generator": False}
    assert facts["loaders"] == [kaggle_loader] * 3
    assert facts["manual_seed_fixes_order"] and facts["shuffled"]
    assert facts["cwd_is_home"] and facts["writable"] == [True, True, True]
    assert facts["mia_scores_finite"]
    # The usual imports were done once by the fork server, not in the run's timed import.
    assert manifest["worker_start"] == "forked from a server with torch imported"
    assert facts["preloaded"] == ["matplotlib.pyplot", "pandas", "sklearn.linear_model"]


@pytest.mark.ingestion
@pytest.mark.parametrize(
    "name, error, hint",
    [
        ("tuple_batches", "ValueError: too many values to unpack (expected 2) (inside unlearning())",
         "hint: batches are dicts, not (image, label) tuples, with keys 'image', 'image_id', 'age_group', "
         "'age', 'person_id': the input is batch['image'] and the label batch['age_group']"),
        ("writes_kaggle_tmp", "/kaggle/tmp",
         "hint: there are no /kaggle folders here: the data come only through the three loaders, and a run may "
         "write only in its working directory (its run folder, which is also $HOME) and in $TMPDIR"),
        ("undefined_device", "NameError: name 'DEVICE' is not defined (inside unlearning())",
         "hint: the Kaggle notebooks set DEVICE in their first cell; unlearning.py runs on its own, so define it "
         "there, e.g. DEVICE = next(net.parameters()).device inside unlearning()"),
    ],
)
def test_carried_over_mistakes_get_a_hint(tiny_phase, tmp_path, name, error, hint):
    done, manifest = ingest(tiny_phase[0], tmp_path / "res", name, "--num-models", "1")
    assert done.returncode == 1
    assert manifest["runs"][0]["status"] == "crashed"
    assert error in manifest["message"] and hint in manifest["message"]
    assert manifest["message"].index(error) < manifest["message"].index("; hint: ")


@pytest.mark.parametrize(
    "message, stage, start",
    [
        ("ValueError: not enough values to unpack (expected 6, got 5)", "call", "hint: batches are dicts"),
        ("KeyError: 0", "call", "hint: batches are dicts"),
        ("AttributeError: 'dict' object has no attribute 'to'", "call", "hint: batches are dicts"),
        ("PermissionError: [Errno 13] Permission denied: '/kaggle'", "import", "hint: there are no /kaggle folders"),
        ("FileNotFoundError: [Errno 2] No such file or directory: '/kaggle/input/x/retain.csv'", "call",
         "hint: there are no /kaggle folders"),
        ("ModuleNotFoundError: No module named 'timm.models'", "import",
         "hint: there is no package 'timm' here; the packages a submission can import are listed in "
         "starting_kit/README.md (section 'What a run has'); a module of your own must be a file in the submission "
         "folder, next to unlearning.py"),
        ("NameError: name 'optim' is not defined", "call",
         "hint: unlearning.py runs on its own, without a notebook's other cells: import or define 'optim' in "
         "unlearning.py"),
    ],
)
def test_hint_for_each_kind_of_failure(message, stage, start):
    assert run_hint(message, stage).startswith(start)


@pytest.mark.parametrize(
    "message, stage",
    [
        ("ValueError: too many values to unpack (expected 2)", "import"),  # not about batches
        ("KeyError: 'teacher'", "call"),
        ("RuntimeError: CUDA error: out of memory", "call"),
        ("TypeError: unlearning returned a tuple; return the model", "return"),
    ],
)
def test_no_hint_for_other_failures(message, stage):
    assert run_hint(message, stage) == ""


@pytest.mark.ingestion
def test_quick_check_below_three_models_is_refused(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    for n in ("2", "1"):
        done = run_module("unlearning_challenge", "local-score", "--submission", SUBMISSIONS / "do_nothing",
                          "--input-data", input_dir, "--reference-data", reference_dir, "--num-models", n,
                          "--output", tmp_path / f"out{n}")
        assert done.returncode == 2
        assert (f"local-score: NUM_MODELS={n} cannot score: the forgetting quality's epsilon buckets reach up to "
                f"ceil(log(N - 1)), and there is none at N = {n}, so F would be 0 whatever the submission does; "
                "use NUM_MODELS=4 or more") in done.stderr
        assert not (tmp_path / f"out{n}").exists()


@pytest.mark.ingestion
def test_quick_check_with_three_models_is_warned(tiny_phase, tmp_path):
    input_dir, reference_dir, _ = tiny_phase
    done = run_module("unlearning_challenge", "local-score", "--submission", tmp_path / "no_such_folder",
                      "--input-data", input_dir, "--reference-data", reference_dir, "--num-models", "3",
                      "--output", tmp_path / "out")
    assert ("local-score: warning: NUM_MODELS=3 gives the forgetting quality only 2 epsilon buckets "
            "(up to ceil(log(N - 1)) = 1), so F is a very coarse check; use NUM_MODELS=4 or more to compare "
            "methods") in done.stderr
    assert done.returncode == 1 and "submission folder not found" in done.stderr


def test_four_models_or_more_pass_without_a_word():
    assert quick_check_problem(4) == quick_check_problem(32) == ("", "")
