"""altlearn-signsym: the rule contract (altlearn.testing), the feedback used in the backward pass,
its magnitudes, per-batch redraws, seeds, and the package as altlearn sees it (registered with its
version, spec valid, option typos caught, a run trains). Only altlearn.api and altlearn.testing are
imported from altlearn: what any plugin package may rely on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from altlearn.api import RuleContext, SpecError, train, validate_spec
from altlearn.testing import parametrize_rule_checks
from altlearn_signsym.rules import BatchwiseRandomSignSymmetry, SignSymmetry

PACKAGE = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- the contract


@parametrize_rule_checks("signsym", ("signsym", {"magnitude": "constant"}), "signsym_brsf")
def test_follows_the_rule_contract(check):
    """Every check of altlearn.testing: grads, metrics, seeds, checkpoints, the alignment
    diagnostic (also right after a restore, brsf's generators not yet re-made), devices."""
    check()


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
    )


def make(rule_cls, network=None, seed: int = 0, **options):
    network = network if network is not None else mlp()
    return rule_cls(
        rule_cls.Params(**options), RuleContext(network, F.cross_entropy, num_classes=3, seed=seed)
    )


def batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(8, 6, generator=generator), torch.randint(0, 3, (8,), generator=generator)


class Recording:
    """Mixin: remember every feedback matrix the backward pass asked for."""

    def __init__(self, params, context):
        super().__init__(params, context)
        self.used: list[tuple[int, torch.Tensor]] = []

    def feedback_weight(self, index, layer):
        matrix = super().feedback_weight(index, layer)
        self.used.append((index, matrix.clone()))
        return matrix


class RecordingSignSymmetry(Recording, SignSymmetry):
    pass


class RecordingBrsf(Recording, BatchwiseRandomSignSymmetry):
    pass


def hand_gradients(network: nn.Sequential, x, y, feedback: dict[int, torch.Tensor]):
    """dW of every linear layer, computed by hand: the error goes down through feedback[i]
    (or W_i itself when feedback[i] is None) and through tanh' between layers."""
    linears = [i for i, m in enumerate(network) if isinstance(m, nn.Linear)]
    with torch.no_grad():
        inputs, pre = {}, {}
        h = x.flatten(1)
        for i in linears:
            inputs[i] = h  # (B, in)
            pre[i] = network[i](h)  # (B, out)
            h = torch.tanh(pre[i]) if i != linears[-1] else pre[i]
    scores = pre[linears[-1]].clone().requires_grad_(True)
    (delta,) = torch.autograd.grad(F.cross_entropy(scores, y), scores)  # (B, K)
    grads = {}
    for position in range(len(linears) - 1, -1, -1):
        i = linears[position]
        grads[i] = delta.T @ inputs[i]  # (out, in)
        if position:
            below = linears[position - 1]
            back = feedback[i] if feedback.get(i) is not None else network[i].weight.detach()
            delta = (delta @ back) * (1 - torch.tanh(pre[below]) ** 2)  # (B, in) through tanh'
    return grads


# ------------------------------------------------------------------------------------- signsym


def test_fixed_random_feedback_has_the_sign_of_w_and_fa_magnitudes():
    rule = make(SignSymmetry)
    assert rule.feedback_indices() == [3, 5]  # every trainable layer but the first
    for index in rule.feedback_indices():
        layer = rule.network[index]
        matrix = rule.feedback_weight(index, layer)
        assert matrix.shape == layer.weight.shape
        assert torch.equal(matrix.sign(), layer.weight.sign())
        assert torch.equal(matrix.abs(), rule.fixed_feedback(index).abs())
        assert not torch.allclose(matrix, layer.weight)  # sign-concordant, not symmetric


def test_constant_magnitude_is_one_number_per_layer():
    rule = make(SignSymmetry, magnitude="constant")
    for index in rule.feedback_indices():
        layer = rule.network[index]
        matrix = rule.feedback_weight(index, layer)
        assert torch.equal(matrix.sign(), layer.weight.sign())
        expected = rule.fixed_feedback(index).abs().mean()
        assert torch.allclose(matrix.abs(), expected.expand_as(matrix))
        # default uniform draw U(+-1/sqrt(n)), n = out_features: mean |F| is near 1/(2 sqrt(n))
        n = layer.weight.shape[0]
        assert 0.2 / math.sqrt(n) < expected.item() < 0.8 / math.sqrt(n)


@pytest.mark.parametrize("magnitude", ["fixed_random", "constant"])
def test_backward_uses_sign_feedback_and_differs_from_bp(magnitude):
    rule = make(RecordingSignSymmetry, magnitude=magnitude)
    x, y = batch()
    rule.train_step(x, y)
    used = dict(rule.used)
    assert sorted(used) == [3, 5]  # each downward route asked once this step
    expected = hand_gradients(rule.network, x, y, used)
    bp = hand_gradients(rule.network, x, y, {})
    for index in (1, 3, 5):
        assert torch.allclose(rule.network[index].weight.grad, expected[index], atol=1e-6), index
    assert torch.allclose(rule.network[5].weight.grad, bp[5], atol=1e-6)  # output layer: exact
    for index in (1, 3):  # hidden layers: not BP (the rule must never fall back to it)
        assert not torch.allclose(rule.network[index].weight.grad, bp[index], atol=1e-4), index


def test_feedback_follows_w_when_w_changes_sign():
    rule = make(SignSymmetry)
    layer = rule.network[3]
    before = rule.feedback_weight(3, layer)
    with torch.no_grad():
        layer.weight.neg_()
    after = rule.feedback_weight(3, layer)
    assert torch.equal(after, -before)  # fa's fixed B would not change; sign-symmetry does


def test_conv_layers_get_sign_feedback_too():
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.ReLU(),
        nn.Conv2d(2, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3),
    )
    for rule_cls in (SignSymmetry, BatchwiseRandomSignSymmetry):
        rule = make(rule_cls, network=network)
        conv = network[2]
        assert torch.equal(rule.feedback_weight(2, conv).sign(), conv.weight.sign())
        x, y = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
        rule.zero_grad()
        rule.train_step(x, y)
        first = network[0].weight.grad.clone()
        network.zero_grad()
        F.cross_entropy(network(x), y).backward()
        assert torch.isfinite(first).all()
        assert not torch.allclose(first, network[0].weight.grad, atol=1e-5)


def test_params_are_validated():
    with pytest.raises(ValidationError):
        SignSymmetry.Params(magnitude="big")
    with pytest.raises(ValidationError):
        SignSymmetry.Params(magnitde="constant")  # unknown keys are errors
    with pytest.raises(ValidationError):
        BatchwiseRandomSignSymmetry.Params(feedback_scale=0)


# ---------------------------------------------------------------------------------------- brsf


def steps(rule, count: int = 3):
    """Run ``count`` steps on the same batch and weights; return each step's hidden grads."""
    x, y = batch()
    grads = []
    for _ in range(count):
        rule.zero_grad(set_to_none=True)
        rule.train_step(x, y)
        grads.append(rule.network[1].weight.grad.clone())
    return grads


def test_brsf_redraws_magnitudes_every_batch_keeping_the_sign_of_w():
    rule = make(RecordingBrsf)
    x, y = batch()
    per_step = []
    for _ in range(3):
        rule.used.clear()
        rule.zero_grad(set_to_none=True)
        rule.train_step(x, y)
        used = dict(rule.used)
        assert sorted(used) == [3, 5]
        expected = hand_gradients(rule.network, x, y, used)
        assert torch.allclose(rule.network[1].weight.grad, expected[1], atol=1e-6)
        for index, matrix in used.items():
            weight = rule.network[index].weight
            assert torch.equal(matrix.sign(), weight.sign())
            bound = 1 / math.sqrt(weight.shape[0])  # |U(+-1/sqrt(n))| lies in [0, 1/sqrt(n)]
            assert matrix.abs().max() <= bound
        per_step.append(used)
    for index in (3, 5):  # same weights, same batch, new magnitudes every step
        assert not torch.equal(per_step[0][index], per_step[1][index])
        assert not torch.equal(per_step[1][index], per_step[2][index])


def test_brsf_is_reproducible_with_a_seed_and_leaves_the_global_stream_alone():
    state = torch.random.get_rng_state()
    first = steps(make(BatchwiseRandomSignSymmetry, network=mlp(), seed=5))
    assert torch.equal(torch.random.get_rng_state(), state)  # dropout masks stay as with bp
    again = steps(make(BatchwiseRandomSignSymmetry, network=mlp(), seed=5))
    other_spec_seed = steps(make(BatchwiseRandomSignSymmetry, network=mlp(), seed=6))
    chosen_seed = steps(make(BatchwiseRandomSignSymmetry, network=mlp(), seed=6, feedback_seed=5))
    for a, b, c, d in zip(first, again, other_spec_seed, chosen_seed):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert torch.equal(a, d)  # feedback_seed overrides the spec's seed


def restored_after_two_steps():
    """(grads of steps 3-4 of an uninterrupted rule, a fresh rule loaded from its step-2 state_dict)."""
    rule = make(BatchwiseRandomSignSymmetry, network=mlp(), seed=5)
    steps(rule, 2)
    checkpoint = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in rule.state_dict().items()}
    expected = steps(rule, 2)
    fresh = make(BatchwiseRandomSignSymmetry, network=mlp(), seed=5)
    fresh.load_state_dict(checkpoint)
    return expected, fresh


def test_brsf_generator_states_survive_a_checkpoint():
    """altlearn resume restores the rule's state_dict: the draws must go on where they stopped."""
    expected, fresh = restored_after_two_steps()
    for a, b in zip(expected, steps(fresh, 2)):
        assert torch.equal(a, b)
    unrestored = steps(make(BatchwiseRandomSignSymmetry, network=mlp(), seed=5), 1)[0]
    assert not torch.equal(unrestored, expected[0])  # the first draws differ from the later ones


@pytest.mark.parametrize("init", ["gaussian", "like_forward"])
def test_brsf_magnitudes_follow_the_feedback_init(init):
    rule = make(BatchwiseRandomSignSymmetry, feedback_init=init, feedback_scale=2.0)
    layer = rule.network[3]  # Linear(5, 4): n = 4 outputs, fan_in 5
    draws = torch.stack([rule.feedback_weight(3, layer).abs() for _ in range(2000)])
    if init == "gaussian":  # 2 * |N(0, 1/4)|: mean 2 * 0.5 * sqrt(2/pi)
        assert draws.mean().item() == pytest.approx(2 * 0.5 * math.sqrt(2 / math.pi), rel=0.03)
    else:  # 2 * U(0, 1/sqrt(5))
        assert draws.max().item() <= 2 / math.sqrt(5)
        assert draws.mean().item() == pytest.approx(1 / math.sqrt(5), rel=0.03)


# ------------------------------------------------------------------------- as altlearn sees it


def test_registered_with_the_package_version():
    from altlearn_signsym import __version__

    for name in ("signsym", "signsym_brsf"):
        spec = validate_spec(PACKAGE / "specs" / "mnist_mlp_signsym.yaml", [f"rule={{type: {name}}}"])
        assert (spec.rule.type, spec.rule.package, spec.rule.version) == (
            name,
            "altlearn-signsym",
            __version__,
        )


def test_packaged_spec_is_valid_and_option_typos_are_caught():
    spec = PACKAGE / "specs" / "mnist_mlp_signsym.yaml"
    assert validate_spec(spec).rule.params.magnitude == "fixed_random"
    with pytest.raises(SpecError) as raised:
        validate_spec(spec, ["rule.magnitde=constant"])
    assert "rule.magnitde: 'magnitde' is not an option of rule 'signsym'; did you mean 'magnitude'?" in str(
        raised.value
    )
    with pytest.raises(SpecError) as raised:  # brsf has no magnitude option
        validate_spec(spec, ["rule.type=signsym_brsf"])
    assert "rule.magnitude" in str(raised.value) and "feedback_init" in str(raised.value)


def test_trains_digits_in_process():
    spec = {
        "name": "signsym-digits",
        "data": {"type": "digits", "batch_size": 32},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 64},
                {"type": "tanh"},
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": {"type": "signsym_brsf"},
        "optimizer": {"type": "adam", "lr": 0.003},
        "train": {"epochs": 2, "device": "cpu", "threads": 1},
    }
    metrics = train(spec)  # no MLflow, no subprocess
    assert metrics["test_accuracy"] > 0.6, metrics  # chance is 0.1
