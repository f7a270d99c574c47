"""Every rule on residual and normalised networks: which train them, which refuse, and how problems
and alignment metrics name a nested layer (its YAML path, from one mapping)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from altlearn.nn.composite import Residual
from altlearn.nn.network import metric_path, trainable_layers, yaml_path
from altlearn.optim.losses import cross_entropy
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.feedback.ifa import IndirectFeedbackAlignment
from altlearn.rules.forward_forward.rule import ForwardForward
from altlearn.rules.goup import GoUp
from altlearn.training.alignment import alignment

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def conv_resnet(seed: int = 0) -> nn.Sequential:
    """A conv stem, a strided block with a 1x1-conv + batch-norm projection, an identity block."""
    torch.manual_seed(seed)
    down = Residual(
        nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1)),
        nn.Sequential(nn.Conv2d(4, 8, 1, 2), nn.BatchNorm2d(8)),
        nn.ReLU(),
    )
    same = Residual(nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8)), None, nn.ReLU())
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(), down, same,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)


def make(cls, network, **options):
    return cls(cls.Params(**options), RuleContext(network, cross_entropy, num_classes=3, seed=0))


def test_yaml_paths_and_metric_names_of_nested_layers():
    assert yaml_path(3) == yaml_path("3") == "network.layers[3]"
    assert yaml_path("3.body.1") == "network.layers[3].layers[1]"
    assert yaml_path("3.body.1.body.0") == "network.layers[3].layers[1].layers[0]"
    assert yaml_path("3.shortcut") == "network.layers[3].shortcut"
    # a projection with a norm: one (conv, norm) container in the model, two options in the spec
    assert yaml_path("3.shortcut.0") == "network.layers[3].shortcut"
    assert yaml_path("3.shortcut.1") == "network.layers[3].shortcut_norm"
    assert yaml_path("3.body.2.shortcut.1") == "network.layers[3].layers[2].shortcut_norm"
    assert [metric_path(k) for k in (3, "3.body.1", "3.shortcut.0", "3.shortcut.1")] == [
        "3",
        "3.layers.1",
        "3.shortcut",
        "3.shortcut_norm",
    ]


@pytest.mark.parametrize("source", ["bp", "fa", "dfa", "signsym", "signsym_brsf"])
def test_every_gradient_source_trains_every_parameter_of_a_residual_network(source):
    rule = make(GoUp, conv_resnet(), source=source, lr=0.01)
    rule.train_step(*batch())
    missing = [name for name, p in rule.network.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("source", ["fa", "signsym", "signsym_brsf"])
def test_fa_family_sends_feedback_through_every_nested_conv(source):
    rule = make(GoUp, conv_resnet(), source=source).source
    assert rule.feedback_indices() == [
        "3.body.0", "3.body.3", "3.shortcut.0", "4.body.0", 7,
    ]  # fmt: skip  # every trainable layer but the stem, projections included


def test_alignment_names_every_nested_layer_by_its_yaml_path():
    values = alignment(make(FeedbackAlignment, conv_resnet()), *batch())
    names = ["0", "3.layers.0", "3.layers.3", "3.shortcut", "4.layers.0", "7"]
    assert set(values) == {f"{kind}_layer{n}" for kind in ("angle", "norm_ratio") for n in names}
    assert values["angle_layer7"] == pytest.approx(0.0, abs=1e-3)  # the output layer's gradient is exact
    assert values["angle_layer3.layers.0"] > 1.0


def test_check_network_names_a_bad_nested_layer_by_its_yaml_path():
    net = conv_resnet()
    net[3].body[2] = nn.PReLU()
    for cls in (FeedbackAlignment, DirectFeedbackAlignment):
        ((key, message),) = cls.check_network(net, cls.Params())
        assert key == "3.body.2" and yaml_path(key) == "network.layers[3].layers[2]"
        assert "network.layers[3].layers[2] (PReLU)" in message


def test_ifa_refuses_residual_blocks_and_normalisation_with_a_reason():
    problems = IndirectFeedbackAlignment.check_network(conv_resnet(), IndirectFeedbackAlignment.Params())
    assert [key for key, _ in problems] == [1, 3, 4, 5]  # batch norm, two blocks, the pooling
    assert all("chain" in message for _, message in problems)
    with pytest.raises(ValueError, match="Residual"):
        make(IndirectFeedbackAlignment, conv_resnet())


def test_ff_refuses_residual_blocks_and_normalisation_layers():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.LayerNorm(16),
        Residual(nn.Sequential(nn.Linear(16, 16), nn.ReLU())), nn.Linear(16, 16), nn.ReLU(),
    )  # fmt: skip
    problems = ForwardForward.check_network(net, ForwardForward.Params())
    assert [key for key, _ in problems] == [3, 4]
    assert "normalisation" in problems[0][1] and "no defined form for residual blocks" in problems[1][1]


def test_fa_leaves_the_network_a_plain_torch_module_after_a_step():
    rule = make(FeedbackAlignment, conv_resnet())
    rule.train_step(*batch())
    assert all("forward" not in layer.__dict__ for _, layer in trainable_layers(rule.network))
    scores = rule.network(batch()[0])
    scores.sum().backward()  # ordinary BP outside train_step: no feedback route left behind


@pytest.fixture(scope="module")
def digits():
    from altlearn.data.datasets import Digits

    splits = Digits.load(Digits.Params())
    normalise = lambda images: (images.flatten(1) - 0.3) / 0.4  # noqa: E731 - digits' mean and std
    return normalise(splits.train_x), splits.train_y, normalise(splits.test_x), splits.test_y


def residual_mlp(seed: int = 0) -> nn.Sequential:
    """64 -> 32 with batch norm, two residual blocks (one with a linear + norm projection), 10."""
    torch.manual_seed(seed)
    first = Residual(
        nn.Sequential(nn.Linear(32, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 48)),
        nn.Sequential(nn.Linear(32, 48), nn.BatchNorm1d(48)),
        nn.ReLU(),
    )
    second = Residual(
        nn.Sequential(nn.Linear(48, 48), nn.LayerNorm(48), nn.ReLU(), nn.Linear(48, 48)), None, nn.ReLU()
    )
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), first, second, nn.Linear(48, 10))


@pytest.mark.parametrize(
    "name, options",
    [("fa", {}), ("dfa", {}), ("dfa", {"feedback_points": "layers"}), ("signsym", {}), ("signsym_brsf", {})],
)
def test_rules_learn_real_digits_on_a_residual_mlp_with_normalisation(digits, name, options):
    from altlearn.registry.registry import build_registry

    cls = build_registry().get("rule", name).load()
    train_x, train_y, test_x, test_y = digits
    network = residual_mlp()
    rule = cls(cls.Params(**options), RuleContext(network, cross_entropy, num_classes=10, seed=0))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    for _ in range(3):  # epochs
        for start in range(0, len(train_x), 64):
            optimizer.zero_grad()
            rule.train_step(train_x[start : start + 64], train_y[start : start + 64])
            optimizer.step()
    network.eval()
    with torch.no_grad():
        accuracy = (network(test_x).argmax(1) == test_y).float().mean().item()
    assert accuracy > 0.85, accuracy  # chance 0.1; seeds 0-2 gave bp 0.97-0.98, these 0.89-0.98
