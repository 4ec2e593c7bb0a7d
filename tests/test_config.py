from pathlib import Path

import pytest

from unlearning_challenge.config import ConfigError, config_from_dict, dump_config, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_phase_configs_load_and_round_trip():
    for path in (ROOT / "phases").glob("*.yaml"):
        config = load_config(path)
        import yaml

        again = config_from_dict(yaml.safe_load(dump_config(config)))
        assert again == config
        assert again.fingerprint() == config.fingerprint()


def test_fingerprint_ignores_ingestion_settings_but_not_training():
    base = {"name": "x"}
    a = config_from_dict(base)
    assert config_from_dict({**base, "ingestion": {"time_fraction": 0.5}}).fingerprint() == a.fingerprint()
    assert config_from_dict({**base, "training": {"epochs": 3}}).fingerprint() != a.fingerprint()


def test_fingerprint_ignores_n_so_that_a_reference_can_grow_but_not_the_seeds():
    base = {"name": "x"}
    a = config_from_dict(base)
    assert config_from_dict({**base, "reference": {"num_models": 64}}).fingerprint() == a.fingerprint()
    assert config_from_dict({**base, "reference": {"seed_start": 7}}).fingerprint() != a.fingerprint()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "missing required key 'name'"),
        ({"name": "x", "trainig": {}}, "unknown top-level key(s) ['trainig']"),
        ({"name": "x", "training": {"epoch": 3}}, "unknown key(s) ['epoch'] in 'training'"),
        ({"name": "x", "training": {"lr": "fast"}}, "'training.lr' must be a number, got 'fast'"),
        ({"name": "x", "reference": {"num_models": 1}}, "'reference.num_models' must be at least 2, got 1"),
        ({"name": "x", "dataset": {"kind": "imagenet"}}, "'dataset.kind' must be synthetic, kaggle, casia or csv"),
        ({"name": "x", "training": {"epochs": 2.5}}, "'training.epochs' must be an integer, got 2.5"),
        ({"name": "x", "training": {"batch_size": True}}, "'training.batch_size' must be an integer, got True"),
        ({"name": "x", "training": {"class_weighted_loss": 1}}, "'training.class_weighted_loss' must be true or false"),
        ({"name": "x", "ingestion": {"memory_limit_gib": -1}}, "'ingestion.memory_limit_gib' must be at least 0 (GiB)"),
        ({"name": "x", "ingestion": {"time_fraction": 0}}, "'ingestion.time_fraction' must be greater than 0, got 0"),
        ({"name": "x", "scoring": {"alpha": float("nan")}}, "'scoring.alpha' must be a finite number, got nan"),
        ({"name": 7}, "'name' must be a string, got 7"),
        ({"name": "x", "training": []}, "'training' must be a mapping, got []"),
        ([], "the top level must be a mapping, got []"),
        ({"name": "x", "model": {"arch": "vit"}}, "'model.arch' must be resnet18, got 'vit'"),
        ({"name": "x", "split": {"forget_fraction": 0}}, "'split.forget_fraction' must be in (0, 1), got 0"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, source="phase.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("phase.yaml: ")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="phase config not found"):
        load_config(tmp_path / "nope.yaml")


def test_closed_choices_are_str_enums_that_round_trip_as_strings():
    import yaml

    from unlearning_challenge.config import BudgetScaling, CheckpointDtype, DatasetKind, RateBounds

    config = config_from_dict({"name": "x", "dataset": {"kind": "kaggle", "root": "data"},
                               "model": {"checkpoint_dtype": "float16"}, "ingestion": {"budget_scaling": "none"},
                               "scoring": {"bounds": "clopper-pearson"}})
    assert config.dataset.kind is DatasetKind.KAGGLE and config.dataset.kind == "kaggle"
    assert config.model.checkpoint_dtype is CheckpointDtype.FLOAT16
    assert config.ingestion.budget_scaling is BudgetScaling.NONE
    assert config.scoring.bounds is RateBounds.CLOPPER_PEARSON and f"{config.scoring.bounds}" == "clopper-pearson"
    text = dump_config(config)
    assert "kind: kaggle" in text and "!!python" not in text
    assert config_from_dict(yaml.safe_load(text)) == config


def test_an_invalid_choice_lists_the_valid_values():
    with pytest.raises(ConfigError, match="'dataset.kind' must be synthetic, kaggle, casia or csv, got 'lfw'"):
        config_from_dict({"name": "x", "dataset": {"kind": "lfw"}})
    with pytest.raises(ConfigError, match="'model.checkpoint_dtype' must be float32 or float16"):
        config_from_dict({"name": "x", "model": {"checkpoint_dtype": "bfloat16"}})
    with pytest.raises(ConfigError, match="'ingestion.budget_scaling' must be machine or none, got 'fast'"):
        config_from_dict({"name": "x", "ingestion": {"budget_scaling": "fast"}})


def test_an_int_is_a_float_where_a_float_belongs_and_an_empty_section_holds_the_defaults():
    config = config_from_dict({"name": "x", "training": {"lr": 1}, "scoring": None})
    assert config.training.lr == 1.0 and isinstance(config.training.lr, float)
    assert config.scoring == config_from_dict({"name": "x"}).scoring


def test_a_float_for_an_integer_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ntraining:\n  epochs: 2.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: 'training.epochs' must be an integer, got 2.5"
