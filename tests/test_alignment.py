"""altlearn.training.alignment: the angle and norm ratio between a rule's update and the BP gradient."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.training.alignment import alignment

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class ComparableBackprop(Backprop):
    """BP itself opts out of the comparison (it is the reference); here we want exactly that."""

    def gradient_rule(self):
        return self


class ForwardWeightFeedback(FeedbackAlignment):
    """FA whose feedback is W itself: BP computed along FA's code path."""

    def feedback_weight(self, index, layer):
        return layer.weight


def network(dropout=0.5):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Dropout(dropout),  # 0..3
        nn.Linear(8, 8), nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, 3),  # 4..7
    )  # fmt: skip


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)


def make(cls, net):
    return cls(cls.Params(), RuleContext(net, cross_entropy, num_classes=3, seed=0))


@pytest.mark.parametrize("cls", [ComparableBackprop, ForwardWeightFeedback])
def test_bp_against_itself_is_aligned_even_with_dropout(cls):
    values = alignment(make(cls, network()), *batch())
    assert set(values) == {f"{kind}_layer{i}" for kind in ("angle", "norm_ratio") for i in (1, 4, 7)}
    for i in (1, 4, 7):
        assert values[f"angle_layer{i}"] < 1e-3  # same dropout masks in both passes
        assert values[f"norm_ratio_layer{i}"] == pytest.approx(1.0, rel=1e-5)


def test_dfa_hidden_layers_are_not_aligned_at_init_but_the_output_is():
    values = alignment(make(DirectFeedbackAlignment, network()), *batch())
    assert values["angle_layer7"] < 1e-3 and values["norm_ratio_layer7"] == pytest.approx(1.0, rel=1e-5)
    for i in (1, 4):
        assert 1.0 < values[f"angle_layer{i}"] <= 180.0
        assert values[f"norm_ratio_layer{i}"] > 0 and math.isfinite(values[f"norm_ratio_layer{i}"])


def test_angle_and_ratio_values_by_hand():
    """A rule whose update is a known multiple of the gradient: 0 degrees, ratio = the multiple;
    and the negated gradient: 180 degrees."""

    class Scaled(ComparableBackprop):
        factor = 1.0

        def train_step(self, x, y):
            metrics = super().train_step(x, y)
            for p in self.parameters():
                p.grad.mul_(self.factor)
            return metrics

    rule = make(Scaled, network(dropout=0.0))
    rule.factor = 2.5
    values = alignment(rule, *batch())
    assert values["angle_layer4"] < 1e-3 and values["norm_ratio_layer4"] == pytest.approx(2.5)
    rule.factor = -1.0
    assert alignment(rule, *batch())["angle_layer1"] == pytest.approx(180.0, abs=1e-3)


def test_leaves_grads_and_random_state_as_they_were():
    rule = make(FeedbackAlignment, network())
    params = list(rule.parameters())
    before = [torch.full_like(p, 7.0) if i % 2 else None for i, p in enumerate(params)]
    for p, g in zip(params, before):
        p.grad = g
    rng = torch.get_rng_state()
    alignment(rule, *batch())
    for p, g in zip(params, before):
        assert p.grad is g
    assert torch.equal(torch.get_rng_state(), rng)


class OwnGeneratorFeedback(FeedbackAlignment):
    """Feedback redrawn every step from the rule's own generator, kept as its extra state."""

    def __init__(self, params, context):
        super().__init__(params, context)
        self.generator = torch.Generator().manual_seed(3)

    def feedback_weight(self, index, layer):
        return torch.randn(layer.weight.shape, generator=self.generator)

    def get_extra_state(self):
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state):
        self.generator.set_state(state["generator"])


def test_leaves_the_rules_own_random_streams_as_they_were():
    x, y = batch()
    measured, plain = make(OwnGeneratorFeedback, network(0.0)), make(OwnGeneratorFeedback, network(0.0))
    assert alignment(measured, x, y)  # it did draw feedback from the rule's generator...
    for rule in (measured, plain):
        rule.zero_grad(set_to_none=True)
        rule.train_step(x, y)
    for a, b in zip(measured.parameters(), plain.parameters()):  # ...and put the stream back
        assert torch.equal(a.grad, b.grad)


def test_rules_without_bp_counterpart_give_nothing():
    rule = make(Backprop, network())  # the reference itself: gradient_rule() is None
    assert alignment(rule, *batch()) == {}
