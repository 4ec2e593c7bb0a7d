"""Each starting-kit baseline imports and runs on a tiny ResNet-18 and tiny loaders."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from unlearning_challenge.artifacts import FORMAT_VERSION, REFERENCE_FORMAT, write_manifest
from unlearning_challenge.data import FaceDataset, make_loader

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "starting_kit" / "baselines"
OURS = ["do_nothing", "finetune", "neggrad_plus", "scrub", "random_relabel", "reinit_finetune"]
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}
FORBIDDEN_MODULES = {"requests", "urllib", "socket", "subprocess", "http", "shutil"}
REFERENCE_MANIFEST = {"format": REFERENCE_FORMAT, "format_version": FORMAT_VERSION, "phase": "check",
                      "config_fingerprint": "0" * 64, "split_fingerprint": "0" * 64, "num_models": 2}


def _load(name: str):
    path = BASELINES / name / "unlearning.py"
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    n = 40
    dataset = FaceDataset(
        images=rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
        age_group=rng.integers(0, 10, size=n).astype(np.int64),
        age=rng.integers(1, 90, size=n).astype(np.int64),
        person_id=np.arange(n, dtype=np.int64) // 4,
        image_id=np.arange(n, dtype=np.int64),
    )
    # 17 retain examples with batch size 8: the last batch holds one example,
    # which BatchNorm cannot train on (the baselines must skip it).
    retain, forget, val = np.arange(0, 17), np.arange(17, 22), np.arange(22, 30)
    return dataset, retain, forget, val


def _loaders(tiny_data):
    dataset, retain, forget, val = tiny_data
    return (
        make_loader(dataset, retain, batch_size=8, shuffle=True, seed=1),
        make_loader(dataset, forget, batch_size=4, shuffle=True, seed=2),
        make_loader(dataset, val, batch_size=8, shuffle=False),
    )


def test_every_baseline_folder_holds_only_unlearning_py():
    for name in OURS:
        files = sorted(p.name for p in (BASELINES / name).iterdir() if p.name != "__pycache__")
        assert files == ["unlearning.py"], name


@pytest.mark.parametrize("name", OURS)
def test_baseline_source_is_self_contained(name):
    """No network, no file writes, no prints, no hard-coded CUDA device."""
    source = (BASELINES / name / "unlearning.py").read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{name}: a module docstring explains the method"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{name} calls {node.func.id}()"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN_MODULES, f"{name} imports {module}"
                assert not module.startswith("unlearning_challenge"), f"{name} must run without the package"
    assert ".cuda(" not in source and '"cuda"' not in source and "'cuda'" not in source, name
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    args = [a.arg for a in functions["unlearning"].args.args]
    assert args == ["net", "retain_loader", "forget_loader", "val_loader"]


@pytest.mark.parametrize("name", OURS)
def test_baseline_runs_and_returns_finite_resnet18(name, tiny_data):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    retain_loader, forget_loader, val_loader = _loaders(tiny_data)
    returned = _load(name).unlearning(net, retain_loader, forget_loader, val_loader)
    assert returned is net, f"{name} must update the model in place and return it"
    assert isinstance(returned, torchvision.models.ResNet)
    assert returned.fc.out_features == 10
    assert not returned.training, f"{name} should leave the model in eval mode"
    state = returned.state_dict()
    assert set(state) == set(before)
    for key, value in state.items():
        assert value.shape == before[key].shape, key
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{name}: {key} is not finite"
    changed = any(not torch.equal(state[k], before[k]) for k in state if state[k].is_floating_point())
    assert changed == (name != "do_nothing"), f"{name}: weights changed={changed}"
    with torch.no_grad():
        logits = returned(torch.rand(2, 3, 32, 32) * 255)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_baseline_with_an_empty_forget_loader_still_runs(tiny_data):
    dataset, retain, _, val = tiny_data
    empty = make_loader(dataset, np.array([], dtype=np.int64), batch_size=4)
    net = torchvision.models.resnet18(num_classes=10)
    for name in ("neggrad_plus", "scrub", "random_relabel"):
        retain_loader = make_loader(dataset, retain, batch_size=8, shuffle=True, seed=1)
        _load(name).unlearning(net, retain_loader, empty, make_loader(dataset, val, batch_size=8))
        assert all(torch.isfinite(p).all() for p in net.parameters())


def test_table_orders_by_score_and_marks_the_oracle_and_failures():
    from unlearning_challenge.platforms.baselines import markdown_table

    scores = {"score": 0.1, "forget_quality": 0.2, "retain_accuracy_ratio": 1.0, "test_accuracy_ratio": 1.0,
              "mean_run_seconds": 3.0}
    table = markdown_table({"finetune": scores, "retrain": {**scores, "score": 0.3}, "scrub": {"failed": True},
                            "do_nothing": {**scores, "score": 0.0}}, num_models=32, machine="a CPU")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["retrain", "finetune", "do_nothing", "scrub"]
    assert "(no time limit)" in rows[0] and "failed" in rows[3]
    assert "N = 32" in table and "a CPU" in table


def test_cached_scores_are_reused_only_for_the_same_code_and_reference(tmp_path):
    from unlearning_challenge.platforms.baselines import cache_key

    folder, reference = tmp_path / "b", tmp_path / "ref"
    folder.mkdir(), reference.mkdir()
    (folder / "unlearning.py").write_text("def unlearning(net, *loaders):\n    return net\n")
    write_manifest(reference, {**REFERENCE_MANIFEST, "arrays_sha256": "aa"})
    key = cache_key(folder, reference)
    assert cache_key(folder, reference) == key
    (folder / "unlearning.py").write_text("def unlearning(net, *loaders):\n    return None\n")
    assert cache_key(folder, reference)["submission_sha256"] != key["submission_sha256"]
    write_manifest(reference, {**REFERENCE_MANIFEST, "arrays_sha256": "bb"})
    assert cache_key(folder, reference)["reference_sha256"] == "bb"


def test_table_needs_its_markers(tmp_path):
    from unlearning_challenge.platforms.baselines import replace_table

    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="no <!-- baselines-table:start --> ... <!-- baselines-table:end --> markers"):
        replace_table(readme, "| table |\n")
    readme.write_text("a\n<!-- baselines-table:start -->\nold\n<!-- baselines-table:end -->\nb\n")
    replace_table(readme, "| new |\n")
    assert readme.read_text() == "a\n<!-- baselines-table:start -->\n| new |\n<!-- baselines-table:end -->\nb\n"


def test_table_has_the_attack_and_retain_sample_columns():
    from unlearning_challenge.platforms.baselines import markdown_table

    scores = {"score": 0.1, "forget_quality": 0.2, "retain_accuracy_ratio": 1.0, "test_accuracy_ratio": 1.0,
              "mean_run_seconds": 3.0}
    table = markdown_table({"finetune": {**scores, "mia_accuracy": 0.61234, "ulira_accuracy": 0.5551,
                                         "forget_quality_retain_sample": 0.1234},
                            "scrub": scores,
                            "retrain": {**scores, "mia_accuracy": None, "forget_quality_retain_sample": None}},
                           num_models=32, machine="a CPU")
    assert table.splitlines()[0].endswith("| MIA accuracy | U-LiRA accuracy | F on retain sample |")
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    assert rows["finetune"].endswith("| 0.612 | 0.555 | 0.123 |")
    assert rows["scrub"].endswith("| n/a | n/a | n/a |") and rows["retrain"].endswith("| n/a | n/a | n/a |")


def test_skipped_baselines_are_named_under_the_table(tmp_path, capsys):
    from unlearning_challenge.cli import main
    from unlearning_challenge.platforms.baselines import markdown_table

    scores = {"score": 0.1, "forget_quality": 0.2, "retain_accuracy_ratio": 1.0, "test_accuracy_ratio": 1.0,
              "mean_run_seconds": 3.0, "mia_accuracy": 0.6}
    table = markdown_table({"finetune": scores}, num_models=32, machine="a CPU", skipped=("retrain",))
    assert "Not run for this table: `retrain`." in table
    with pytest.raises(SystemExit):
        main(["baselines", "--baselines", str(tmp_path), "--skip", "retrian"])
    assert "--skip: no baseline named retrian in" in capsys.readouterr().err


def test_table_shows_rank_intervals_when_given_them():
    from unlearning_challenge.platforms.baselines import markdown_table
    from unlearning_challenge.scoring.ranking import Rank

    scores = {"score": 0.1, "forget_quality": 0.2, "retain_accuracy_ratio": 1.0, "test_accuracy_ratio": 1.0,
              "mean_run_seconds": 3.0, "mia_accuracy": 0.6}
    ranks = {"finetune": Rank("finetune", 0.1, 0.08, 0.12, 1, 2, 0.7), "scrub": Rank("scrub", 0.09, 0.07, 0.11, 1, 2, 0.3)}
    table = markdown_table({"finetune": scores, "scrub": {**scores, "score": 0.09}, "neggrad": {"failed": True}},
                           num_models=32, machine="a CPU", ranks=ranks)
    lines = table.splitlines()
    assert lines[0].endswith("| rank (95%) | P(first) |") and lines[1].count("---:") == 10
    rows = {line.split("`")[1]: line for line in lines if line.startswith("| `")}
    assert rows["finetune"].endswith("| 0.600 | n/a | n/a | 1–2 | 70% |") and rows["scrub"].endswith("| 1–2 | 30% |")
    assert rows["neggrad"].count("|") == lines[0].count("|")
    assert "P(first): the share of resamples" in table
    assert "rank" not in markdown_table({"finetune": scores}, num_models=32, machine="a CPU").splitlines()[0]
