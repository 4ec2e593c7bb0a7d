"""The architecture and its checkpoints: a checkpoint loads into the model exactly, and one that does not fit is
refused, naming what differs."""

from __future__ import annotations

import pytest
import torch

from unlearning_challenge.config import ModelConfig
from unlearning_challenge.reference.models import (
    CheckpointError,
    architecture_problems,
    build_model,
    load_model,
    model_with_weights,
    save_weights,
)

CONFIG = ModelConfig(arch="resnet18", num_classes=8, checkpoint_dtype="float32")


@pytest.fixture
def trained():
    """A ResNet-18 whose batch-norm statistics moved (one training-mode pass), and its state dict."""
    torch.manual_seed(0)
    model = build_model(CONFIG)
    model(torch.randn(4, 3, 16, 16))
    return model.eval(), {key: value.clone() for key, value in model.state_dict().items()}


def test_a_checkpoint_loads_exactly_in_eval_mode_and_leaves_the_global_generator_alone(trained, tmp_path):
    model, state = trained
    save_weights(state, tmp_path / "m.safetensors")
    generator_before = torch.get_rng_state()
    loaded = load_model(tmp_path / "m.safetensors", CONFIG)
    assert torch.equal(torch.get_rng_state(), generator_before)  # no random initialisation drawn
    assert not loaded.training
    assert loaded.state_dict().keys() == state.keys()
    for key, value in loaded.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == state[key].dtype and torch.equal(value, state[key]), key
    assert all(parameter.requires_grad for parameter in loaded.parameters())  # trainable, as a run gets it
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_a_model_given_weights_is_trained_as_a_built_one_is(trained):
    """Its parameters are leaves an optimizer updates, as a run's own training loop needs."""
    _, state = trained
    model = model_with_weights({key: value.clone() for key, value in state.items()}, CONFIG).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    assert all(parameter.is_leaf and parameter.grad is not None for parameter in model.parameters())
    assert not torch.equal(model.fc.weight, state["fc.weight"])


def test_a_checkpoint_of_another_shape_is_refused_naming_the_differences(trained, tmp_path):
    _, state = trained
    wrong = {key: value for key, value in state.items() if key != "layer1.0.bn1.running_var"}
    wrong["fc.weight"], wrong["extra"] = torch.zeros(10, 512), torch.zeros(1)
    assert architecture_problems(wrong, CONFIG) == [
        "missing 1 parameter(s), e.g. ['layer1.0.bn1.running_var']",
        "unexpected 1 parameter(s), e.g. ['extra']",
        "fc.weight has shape (10, 512), expected (8, 512)",
    ]
    save_weights(wrong, tmp_path / "wrong.safetensors")
    with pytest.raises(CheckpointError, match=r"does not fit resnet18: missing 1 parameter\(s\)"):
        load_model(tmp_path / "wrong.safetensors", CONFIG)
