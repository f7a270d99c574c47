"""Forward-Forward: label overlay, negative sampling, locality of learning, schedules, inference."""

from __future__ import annotations

import copy

import pydantic
import pytest
import torch
from torch import nn

from altlearn.optim.losses import cross_entropy
from altlearn.rules.base import RuleContext
from altlearn.rules.forward_forward.model import (
    hard_wrong_labels,
    overlay_label,
    overlay_neutral,
    run_block,
    wrong_labels,
)
from altlearn.rules.forward_forward.rule import ForwardForward

K = 10
pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def mlp(*widths: int, inputs: int = 784, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, width in enumerate(widths):
        layers.append(nn.Linear(inputs, width))
        if last_activation or i < len(widths) - 1:
            layers.append(nn.ReLU())
        inputs = width
    return nn.Sequential(*layers)


def make_rule(network: nn.Sequential, seed: int = 0, **options) -> ForwardForward:
    return ForwardForward(ForwardForward.Params(**options), RuleContext(network, cross_entropy, K, seed))


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, K, (n,), generator=g)


# --- negative sampling and the overlay -------------------------------------------------------


def test_wrong_labels_never_equal_the_true_label_and_cover_all_others():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(K).repeat(20_000)  # (200000,)
    wrong = wrong_labels(labels, K, g)
    assert not (wrong == labels).any()
    assert wrong.min() >= 0 and wrong.max() < K
    # uniform over the 9 other classes: each (true, wrong) pair about 20000 / 9 times
    counts = torch.zeros(K, K)
    counts.index_put_((labels, wrong), torch.ones(len(labels)), accumulate=True)
    off_diagonal = counts[~torch.eye(K, dtype=torch.bool)]
    assert off_diagonal.min() > 0.9 * 20_000 / 9 and off_diagonal.max() < 1.1 * 20_000 / 9


def test_hard_wrong_labels_follow_the_scores_and_never_pick_the_true_label():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(20_000, dtype=torch.long)
    scores = torch.full((20_000, K), -5.0)
    scores[:, 0] = 80.0  # a confident head: the true class holds all the probability
    scores[:, 3] = 2.0  # the confusable wrong class
    wrong = hard_wrong_labels(labels, scores, g)
    assert not (wrong == labels).any()
    assert (wrong == 3).float().mean() > 0.95


def test_overlay_writes_exactly_the_label_and_nothing_else():
    flat = torch.randn(5, 784)
    labels = torch.tensor([0, 3, 9, 3, 7])
    out = overlay_label(flat, labels, K, 2.5)
    expected = torch.zeros(5, K)
    expected[torch.arange(5), labels] = 2.5
    assert torch.equal(out[:, :K], expected)
    assert torch.equal(out[:, K:], flat[:, K:])  # only the label pixels change
    assert not torch.equal(out, flat) and flat.shape == out.shape  # the input is not modified
    neutral = overlay_neutral(flat, K, 0.1)
    assert torch.equal(neutral[:, :K], torch.full((5, K), 0.1))
    assert torch.equal(neutral[:, K:], flat[:, K:])


def test_train_step_shows_layer0_the_true_label_for_positives_and_a_wrong_one_for_negatives():
    rule = make_rule(mlp(32, 32))
    seen = []
    first = rule.inference_model.blocks[0][0]
    first.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    x, y = batch(64)
    rule.train_step(x, y)
    training_pass = [inp for inp in seen if inp.shape[0] == 2 * 64]  # (2B, D); the other is the head's
    assert len(training_pass) == 1
    positives, negatives = training_pass[0].chunk(2)
    assert torch.equal(positives[:, :K].argmax(1), y)
    assert (positives[:, :K] > 0).sum(1).eq(1).all() and (negatives[:, :K] > 0).sum(1).eq(1).all()
    assert not (negatives[:, :K].argmax(1) == y).any()


# --- initialisation ----------------------------------------------------------------------------


def test_weight_init_ff_redraws_with_the_seed_and_keep_leaves_the_network_alone():
    torch.manual_seed(0)
    network = mlp(64, 32)
    before = copy.deepcopy(network.state_dict())
    kept = copy.deepcopy(network)
    make_rule(kept, weight_init="keep")
    assert all(torch.equal(before[k], v) for k, v in kept.state_dict().items())
    a, b = copy.deepcopy(network), copy.deepcopy(network)
    make_rule(a, seed=3)
    make_rule(b, seed=3)
    assert torch.equal(a[1].weight, b[1].weight) and not torch.equal(a[1].weight, network[1].weight)
    assert a[3].bias.abs().sum() == 0
    assert abs(a[3].weight.std().item() - 32**-0.5) < 0.01  # N(0, 1/out_features)


# --- locality ----------------------------------------------------------------------------------


def test_a_layer_gets_no_gradient_from_the_layers_above():
    # the same first layer trained alone and under a second layer: identical gradients
    torch.manual_seed(0)
    deep = mlp(32, 32)
    shallow = nn.Sequential(*copy.deepcopy(list(deep)[:3]))  # flatten, linear, relu
    options = dict(inference="goodness", skip_first_layer=False, peer_norm_weight=0.0)
    x, y = batch(32)
    make_rule(deep, **options).train_step(x, y)
    make_rule(shallow, **options).train_step(x, y)
    assert deep[1].weight.grad is not None and deep[3].weight.grad is not None
    torch.testing.assert_close(deep[1].weight.grad, shallow[1].weight.grad, rtol=0, atol=0)
    torch.testing.assert_close(deep[1].bias.grad, shallow[1].bias.grad, rtol=0, atol=0)


def test_the_softmax_head_trains_only_itself():
    torch.manual_seed(0)
    with_head = mlp(32, 32)
    without = copy.deepcopy(with_head)
    x, y = batch(32)
    rule = make_rule(with_head, inference="softmax_head")
    rule.train_step(x, y)
    make_rule(without, inference="goodness").train_step(x, y)
    assert rule.head.weight.grad is not None and rule.head.weight.grad.abs().sum() > 0
    for a, b in zip(with_head.parameters(), without.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


def test_straight_through_relu_passes_gradient_where_the_unit_is_silent():
    block = nn.Sequential(nn.ReLU())
    h = torch.tensor([[-1.0, 2.0]], requires_grad=True)
    out = run_block(block, h, straight_through_relu=True)
    assert torch.equal(out.detach(), torch.tensor([[0.0, 2.0]]))
    out.sum().backward()
    assert torch.equal(h.grad, torch.ones(1, 2))


# --- schedules ---------------------------------------------------------------------------------


def test_greedy_schedule_trains_only_the_active_layer():
    network = mlp(16, 16, 16)
    rule = make_rule(network, schedule="greedy", greedy_steps_per_layer=2)
    linears = [m for m in network if isinstance(m, nn.Linear)]
    x, y = batch(8)
    active = []
    for _ in range(8):
        for p in rule.parameters():
            p.grad = None
        metrics = rule.train_step(x, y)
        trained = [i for i, m in enumerate(linears) if m.weight.grad is not None]
        active.append(trained)
        assert metrics["active_layer"].item() == trained[0]
    # two steps per layer, then the last layer keeps training
    assert active == [[0], [0], [1], [1], [2], [2], [2], [2]]


def test_greedy_needs_steps_per_layer_and_simultaneous_refuses_them():
    with pytest.raises(pydantic.ValidationError, match="greedy_steps_per_layer"):
        ForwardForward.Params(schedule="greedy")
    with pytest.raises(pydantic.ValidationError, match="only applies"):
        ForwardForward.Params(greedy_steps_per_layer=5)
    with pytest.raises(pydantic.ValidationError):
        ForwardForward.Params(goodness="max")


def test_greedy_step_count_survives_a_state_dict_round_trip():
    rule = make_rule(mlp(16, 16), schedule="greedy", greedy_steps_per_layer=3)
    x, y = batch(8)
    for _ in range(4):
        rule.train_step(x, y)
    restored = make_rule(mlp(16, 16), schedule="greedy", greedy_steps_per_layer=3)
    restored.load_state_dict(rule.state_dict())
    assert list(restored.active_layers()) == [1]


# --- network checks ------------------------------------------------------------------------------


def test_check_network_rejects_conv_layers():
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 26 * 26, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
    )
    problems = ForwardForward.check_network(network, ForwardForward.Params())
    assert problems == [(0, pytest.approx(problems[0][1]))]
    assert problems[0][1].startswith("supports linear layers only; Conv2d has")  # no rule's name
    with pytest.raises(ValueError, match="linear layers only"):
        make_rule(network)


def test_check_network_rejects_a_backprop_output_layer():
    problems = ForwardForward.check_network(mlp(32, 32, K, last_activation=False), ForwardForward.Params())
    assert [index for index, _ in problems] == [5]
    assert "backprop output layer" in problems[0][1]


def test_check_network_wants_an_activation_after_every_linear_layer_and_two_layers_to_skip_one():
    stacked = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Linear(32, 32), nn.ReLU())
    assert [i for i, _ in ForwardForward.check_network(stacked, ForwardForward.Params())] == [1]
    single = mlp(32)
    assert ForwardForward.check_network(single, ForwardForward.Params())[0][0] is None
    assert ForwardForward.check_network(single, ForwardForward.Params(skip_first_layer=False)) == []
    assert ForwardForward.check_network(mlp(32, 32), ForwardForward.Params()) == []


# --- inference ----------------------------------------------------------------------------------


@pytest.mark.parametrize("inference", ["goodness", "softmax_head"])
def test_the_inference_module_returns_class_scores_and_classifies_alone(inference):
    rule = make_rule(mlp(32, 32), inference=inference, eval_layer_accuracy=True)
    x, y = batch(12)
    rule.train_step(x, y)
    rule.eval()
    with torch.no_grad():
        scores = rule.inference_module()(x)
        metrics = rule.eval_step(x, y)
        exported = copy.deepcopy(rule.inference_module())
        assert isinstance(exported, nn.Module)
        torch.testing.assert_close(exported(x), scores)
    assert scores.shape == (12, K)
    assert {"loss", "accuracy", "layer0_accuracy", "layer1_accuracy", "goodness_accuracy"} <= set(metrics)
    assert all(v.ndim == 0 for v in metrics.values())


def test_goodness_inference_picks_the_label_with_the_highest_goodness_above_the_first_layer():
    rule = make_rule(mlp(8, 8, 8), inference="goodness")
    model = rule.inference_model
    x, _ = batch(4)
    with torch.no_grad():
        per_layer = model.layer_goodness_scores(model.flat_input(x))  # (L, B, K)
        torch.testing.assert_close(rule.inference_module()(x), per_layer[1] + per_layer[2])


# --- learning on real data -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_subset():
    from altlearn.data.datasets import MNIST
    from altlearn.errors import DataUnavailable

    try:
        splits = MNIST.load(MNIST.Params())
    except DataUnavailable as exc:  # pragma: no cover - the package ships the data
        pytest.skip(str(exc))
    x = splits.train_x[:512]
    x = (x - splits.train_x.mean()) / splits.train_x.std()
    return x, splits.train_y[:512]


def test_ff_loss_and_head_loss_fall_on_real_mnist(mnist_subset):
    # the spec's recipe (SGD + momentum, sum goodness, head at 10x) on 512 images, 40 steps
    torch.manual_seed(0)
    x, y = mnist_subset
    rule = make_rule(mlp(256, 256), head_grad_scale=10)
    optimizer = torch.optim.SGD(rule.parameters(), lr=1e-3, momentum=0.9)
    history = []
    for _epoch in range(10):
        for start in range(0, len(x), 128):
            optimizer.zero_grad(set_to_none=True)
            metrics = rule.train_step(x[start : start + 128], y[start : start + 128])
            optimizer.step()
            history.append({k: v.item() for k, v in metrics.items()})
    first, last = history[:4], history[-4:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "loss") < 0.7 * mean(first, "loss")
    assert mean(last, "head_loss") < 0.5 * mean(first, "head_loss")
    for layer in range(2):
        assert mean(last, f"layer{layer}_loss") < 0.7 * mean(first, f"layer{layer}_loss")
    assert mean(last, "layer0_pos_goodness") > mean(last, "layer0_neg_goodness")
    assert mean(last, "accuracy") > 0.8
