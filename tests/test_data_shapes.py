"""Data of any example shape: flat feature vectors (D,) next to images (C, H, W) through
normalisation, training with every rule that takes an MLP, and export; the loader receives the
spec's seed; a data set that breaks its own declaration is an error naming it and its package."""

from __future__ import annotations

import fake_datasets
import pytest
import torch
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.components.base import DataSplits
from altlearn.data.batches import prepare
from altlearn.registry import registry as plugins
from altlearn.spec.load import validate
from altlearn.spec.model import DataOptions
from altlearn.training.trainer import Trainer
from tests.test_run import write_spec
from tests.test_spec import problems_of

PACKAGE = "altlearn-test-datasets"


@pytest.fixture
def with_fake_datasets(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_datasets, PACKAGE, "1.2")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    return registry


def flat_mlp(data: dict, rule: dict, hidden: int = 64, classes: int = 10, head: bool = True) -> dict:
    layers = [{"type": "linear", "out_features": hidden}, {"type": "relu"}]
    layers += [{"type": "linear", "out_features": hidden}, {"type": "relu"}]
    if head:
        layers.append({"type": "linear", "out_features": classes})
    spec = {"name": "flat", "seed": 4, "data": data, "network": {"layers": layers}, "rule": rule}
    return spec | {"train": {"epochs": 3, "device": "cpu"}, "tracking": {"log_model": False}}


def test_flat_examples_are_normalised_per_feature():
    x = torch.randn(500, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 7.0])
    y = torch.zeros(500, dtype=torch.long)
    data = prepare(DataSplits(x, y, x[:10], y[:10]), DataOptions(val_size=50), 0, torch.device("cpu"))
    assert data.mean.shape == (3,) and data.train_x.shape == (450, 3) and data.val_x.shape == (50, 3)
    assert torch.allclose(data.train_x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(data.train_x.std(0), torch.ones(3), atol=1e-4)


def test_image_examples_are_still_normalised_per_channel():
    x = torch.rand(40, 2, 3, 3) * torch.tensor([1.0, 4.0]).view(1, 2, 1, 1)
    y = torch.zeros(40, dtype=torch.long)
    data = prepare(DataSplits(x, y, x, y), DataOptions(), 0, torch.device("cpu"))
    assert data.mean.shape == (2,)
    assert torch.allclose(data.train_x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)


# every rule that trains an MLP (built-in, and the sign-symmetry plugin); ff needs no output layer (it reads its own head)
RULES = [
    ({"type": "bp"}, True),
    ({"type": "fa"}, True),
    ({"type": "dfa"}, True),
    ({"type": "ifa"}, True),
    ({"type": "goup", "lr": 0.05, "noise_scale": 0.1, "source": "dfa"}, True),
    ({"type": "ff", "inference": "softmax_head"}, False),
    ({"type": "signsym"}, True),  # the plugin package in plugins/, installed with the tests
]


@pytest.mark.parametrize("rule, head", RULES, ids=[r["type"] for r, _ in RULES])
def test_flat_digits_train_with_every_rule_that_takes_an_mlp(rule, head, one_thread):
    spec = validate(flat_mlp({"type": "digits", "flat": True, "batch_size": 32}, rule, head=head))
    trainer = Trainer(spec)
    assert trainer.data.train_x.shape[1:] == (64,)
    metrics = trainer.fit()
    assert metrics["test_accuracy"] > 0.5, metrics  # chance is 0.1
    model = trainer.inference_model()
    raw = torch.from_numpy(trainer.example_input())
    assert raw.shape == (2, 64) and model(raw).shape == (2, 10)


def test_a_two_feature_data_set_trains_and_its_loader_gets_the_spec_seed(with_fake_datasets, one_thread):
    fake_datasets.SEEDS_SEEN.clear()
    raw = flat_mlp({"type": "spirals", "batch_size": 32, "val_size": 100}, {"type": "bp"}, classes=2)
    raw["seed"], raw["train"]["epochs"] = 11, 25
    raw["optimizer"] = {"type": "adam", "lr": 0.01}
    trainer = Trainer(validate(raw))
    assert fake_datasets.SEEDS_SEEN == [11]
    metrics = trainer.fit()
    assert metrics["test_accuracy"] > 0.8, metrics  # not linearly separable: the hidden layers work


def test_a_loader_without_a_seed_argument_still_loads(with_fake_datasets):
    trainer = Trainer(validate(flat_mlp({"type": "old_style"}, {"type": "bp"}, classes=2)))
    assert trainer.data.test_x.shape == (50, 2)


@pytest.mark.parametrize(
    "dataset, words",
    [
        ("wrong_shape", ["declares examples of shape (1, 2, 1)", "have shape (2,)"]),
        ("not_finite", ["1 of its train examples contain NaN or infinite values"]),
    ],
)
def test_a_data_set_that_breaks_its_declaration_is_a_clear_error(
    tmp_path, with_fake_datasets, dataset, words
):
    layers = [{"type": "flatten"}, {"type": "linear", "out_features": 2}]
    raw = flat_mlp({"type": dataset}, {"type": "bp"}, classes=2) | {"network": {"layers": layers}}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, raw)), "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert f"data set {dataset!r} (package {PACKAGE})" in result.output
    for word in words:
        assert word in result.output
    assert "Traceback" not in result.output


def test_a_declared_shape_that_is_neither_image_nor_flat_is_a_validation_error(with_fake_datasets):
    problems = problems_of(flat_mlp({"type": "bad_shape_info"}, {"type": "bp"}, classes=2))
    assert list(problems) == ["data"]
    assert "(2, 3)" in problems["data"] and PACKAGE in problems["data"]
