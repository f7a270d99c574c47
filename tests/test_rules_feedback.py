"""fa, dfa and ifa against references computed by hand with explicit matrix algebra.

Every reference below is written out from the rule's equations (see docs/rules/): forward pass,
error e = (softmax(s) - onehot(y)) / B, then each rule's route for the error, then dW = delta^T h.
Convolutions are written as matrices over unfolded patches (im2col), so no reference relies on
autograd or on the rules' own code. Everything runs in float64 so "equal" means allclose at 1e-10.
"""

from __future__ import annotations

import math

import pydantic
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.base import FeedbackParams
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.feedback.ifa import IndirectFeedbackAlignment

BATCH = 5
RULES = {"fa": FeedbackAlignment, "dfa": DirectFeedbackAlignment, "ifa": IndirectFeedbackAlignment}
TOL = dict(rtol=1e-10, atol=1e-12)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ----------------------------------------------------------------------------- helpers


def make_rule(cls, network, seed=0, **params):
    return cls(cls.Params(**params), RuleContext(network, cross_entropy, num_classes=2, seed=seed))


def grads_of(rule, x, y):
    for p in rule.parameters():
        p.grad = None
    rule.train_step(x, y)
    return {name: p.grad.clone() for name, p in rule.network.named_parameters()}


def output_error(scores, y):
    """dLoss/dscores of the mean cross-entropy: (softmax - onehot) / B."""
    onehot = torch.zeros_like(scores)
    onehot[torch.arange(len(y)), y] = 1.0
    return (scores.softmax(dim=1) - onehot) / len(y)


def dtanh(h):
    """tanh'(a) written with h = tanh(a)."""
    return 1.0 - h * h


def mlp(bias=True):
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(4, 3, bias=bias), nn.Tanh(),  # 0, 1
        nn.Linear(3, 3, bias=bias), nn.Tanh(),  # 2, 3
        nn.Linear(3, 2, bias=bias),  # 4
    ).double()  # fmt: skip


def mlp_batch():
    g = torch.Generator().manual_seed(2)
    return torch.randn(BATCH, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])


def mlp_forward(net, x):
    W1, W2, W3 = net[0].weight, net[2].weight, net[4].weight
    b = [
        net[i].bias if net[i].bias is not None else torch.zeros(net[i].out_features, dtype=x.dtype)
        for i in (0, 2, 4)
    ]
    h1 = torch.tanh(x @ W1.T + b[0])
    h2 = torch.tanh(h1 @ W2.T + b[1])
    s = h2 @ W3.T + b[2]
    return h1, h2, s


def linear_grads(deltas_and_inputs):
    """{layer index: (dW = delta^T h_in, db = sum of delta)}."""
    return {i: (d.T @ h, d.sum(0)) for i, (d, h) in deltas_and_inputs.items()}


def assert_grads(rule_grads, reference, bias=True):
    for index, (dw, db) in reference.items():
        torch.testing.assert_close(rule_grads[f"{index}.weight"], dw, **TOL)
        if bias:
            torch.testing.assert_close(rule_grads[f"{index}.bias"], db, **TOL)


def conv_as_matrix(x, weight, stride):
    """A conv as a matrix product over patches: returns (patches (B, Cin*k*k, L), output (B, Cout, L))."""
    k = weight.shape[-1]
    cols = F.unfold(x, k, stride=stride)  # (B, Cin*k*k, L)
    return cols, weight.reshape(weight.shape[0], -1) @ cols  # (Cout, Cin*k*k) @ (B, Cin*k*k, L)


def conv_weight_grad(delta, cols):
    """dW for a conv from its output delta (B, Cout, L) and input patches (B, Cin*k*k, L)."""
    return (delta @ cols.transpose(1, 2)).sum(0)  # (Cout, Cin*k*k)


# ----------------------------------------------------------------------------- MLP, by hand


@pytest.mark.parametrize("bias", [True, False])
def test_bp_reference_is_right(bias):
    """The hand-written BP reference equals autograd: the references' algebra is trustworthy."""
    net, (x, y) = mlp(bias), mlp_batch()
    h1, h2, s = mlp_forward(net, x)
    e = output_error(s, y)
    d2 = (e @ net[4].weight) * dtanh(h2)
    d1 = (d2 @ net[2].weight) * dtanh(h1)
    reference = linear_grads({4: (e, h2), 2: (d2, h1), 0: (d1, x)})
    assert_grads(
        grads_of(Backprop(Backprop.Params(), RuleContext(net, cross_entropy, num_classes=2)), x, y),
        reference,
        bias,
    )


@pytest.mark.parametrize("bias", [True, False])
def test_fa_matches_hand_computation(bias):
    net, (x, y) = mlp(bias), mlp_batch()
    rule = make_rule(FeedbackAlignment, net)
    B2, B4 = rule.feedback_2, rule.feedback_4  # shaped like W2 (3, 3) and W3 (2, 3)
    assert B2.shape == net[2].weight.shape and B4.shape == net[4].weight.shape
    h1, h2, s = mlp_forward(net, x)
    e = output_error(s, y)
    d2 = (e @ B4) * dtanh(h2)  # B_l where BP uses W_l
    d1 = (d2 @ B2) * dtanh(h1)
    reference = linear_grads({4: (e, h2), 2: (d2, h1), 0: (d1, x)})
    assert_grads(grads_of(rule, x, y), reference, bias)


@pytest.mark.parametrize("bias", [True, False])
def test_dfa_matches_hand_computation(bias):
    net, (x, y) = mlp(bias), mlp_batch()
    rule = make_rule(DirectFeedbackAlignment, net)
    B0, B2 = rule.feedback_0, rule.feedback_2  # (K=2, 3) each: output width -> layer width
    assert B0.shape == (2, 3) and B2.shape == (2, 3)
    h1, h2, s = mlp_forward(net, x)
    e = output_error(s, y)
    d1 = (e @ B0) * dtanh(h1)
    d2 = (e @ B2) * dtanh(h2)
    reference = linear_grads({4: (e, h2), 2: (d2, h1), 0: (d1, x)})
    assert_grads(grads_of(rule, x, y), reference, bias)


@pytest.mark.parametrize("bias", [True, False])
def test_ifa_matches_hand_computation(bias):
    net, (x, y) = mlp(bias), mlp_batch()
    rule = make_rule(IndirectFeedbackAlignment, net)
    assert [name for name, _ in rule.named_buffers()] == ["feedback_0"]  # first hidden layer only
    B0 = rule.feedback_0  # (K=2, 3)
    h1, h2, s = mlp_forward(net, x)
    e = output_error(s, y)
    d1 = (e @ B0) * dtanh(h1)
    d2 = (d1 @ net[2].weight.T) * dtanh(h2)  # delta_2 = f'(a_2) * (W_2 delta_1), no bias
    reference = linear_grads({4: (e, h2), 2: (d2, h1), 0: (d1, x)})
    assert_grads(grads_of(rule, x, y), reference, bias)


@pytest.mark.parametrize("name", list(RULES))
def test_update_differs_from_bp(name):
    """No silent fallback to BP: hidden-layer updates differ, the output layer's is BP's."""
    net, (x, y) = mlp(), mlp_batch()
    bp = grads_of(Backprop(Backprop.Params(), RuleContext(net, cross_entropy, num_classes=2)), x, y)
    ours = grads_of(make_rule(RULES[name], net), x, y)
    torch.testing.assert_close(ours["4.weight"], bp["4.weight"], **TOL)
    for key in ("0.weight", "2.weight"):
        assert not torch.allclose(ours[key], bp[key], rtol=1e-3, atol=1e-6), key


@pytest.mark.parametrize("bias", [True, False])
def test_fa_with_forward_weights_as_feedback_is_bp(bias):
    net, (x, y) = mlp(bias), mlp_batch()
    bp = grads_of(Backprop(Backprop.Params(), RuleContext(net, cross_entropy, num_classes=2)), x, y)
    rule = make_rule(FeedbackAlignment, net)
    with torch.no_grad():
        rule.feedback_2.copy_(net[2].weight)
        rule.feedback_4.copy_(net[4].weight)
    fa = grads_of(rule, x, y)
    for key in bp:
        torch.testing.assert_close(fa[key], bp[key], **TOL)


# ----------------------------------------------------------------------------- conv, by hand


def conv_net(bias=True, pool=False):
    """x (B,1,5,5) -conv k2-> (2,4,4) -tanh- [avgpool -> (2,2,2) -conv k2-> (3,1,1)]
    or [-conv k2 s2-> (2,2,2)] -tanh- flatten - linear -> 2."""
    torch.manual_seed(3)
    if pool:
        layers = [nn.Conv2d(1, 2, 2, bias=bias), nn.Tanh(), nn.AvgPool2d(2),
                  nn.Conv2d(2, 3, 2, bias=bias), nn.Tanh(), nn.Flatten(), nn.Linear(3, 2, bias=bias)]  # fmt: skip
    else:
        layers = [nn.Conv2d(1, 2, 2, bias=bias), nn.Tanh(),
                  nn.Conv2d(2, 2, 2, stride=2, bias=bias), nn.Tanh(), nn.Flatten(), nn.Linear(8, 2, bias=bias)]  # fmt: skip
    return nn.Sequential(*layers).double()


def conv_batch():
    g = torch.Generator().manual_seed(4)
    return torch.randn(BATCH, 1, 5, 5, generator=g, dtype=torch.float64), torch.tensor([1, 0, 0, 1, 1])


def bias_or_zero(layer):
    return layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0], dtype=torch.float64)


def strided_forward(net, x):
    """Forward pass of conv_net(pool=False) as matrix algebra."""
    cols0, a0 = conv_as_matrix(x, net[0].weight, 1)  # a0 (B, 2, 16)
    h1 = torch.tanh(a0 + bias_or_zero(net[0])[:, None]).reshape(BATCH, 2, 4, 4)
    cols2, a2 = conv_as_matrix(h1, net[2].weight, 2)  # a2 (B, 2, 4)
    h3 = torch.tanh(a2 + bias_or_zero(net[2])[:, None])  # (B, 2, 4)
    flat = h3.reshape(BATCH, 8)
    s = flat @ net[5].weight.T + bias_or_zero(net[5])
    return cols0, h1, cols2, h3, flat, s


def assert_conv_grads(grads, reference, bias):
    for index, (dw, db) in reference.items():
        torch.testing.assert_close(grads[f"{index}.weight"].reshape(dw.shape), dw, **TOL)
        if bias:
            torch.testing.assert_close(grads[f"{index}.bias"], db, **TOL)


@pytest.mark.parametrize("bias", [True, False])
def test_fa_conv_matches_hand_computation(bias):
    net, (x, y) = conv_net(bias), conv_batch()
    rule = make_rule(FeedbackAlignment, net)
    K2, B5 = rule.feedback_2, rule.feedback_5  # fixed random kernel (2, 2, 2, 2) and (2, 8)
    assert K2.shape == net[2].weight.shape
    cols0, h1, cols2, h3, flat, s = strided_forward(net, x)
    e = output_error(s, y)
    d2 = (e @ B5).reshape(BATCH, 2, 4) * dtanh(h3)  # (B, Cout, L)
    # The error reaches conv 2's input through the feedback kernel: patches-gradient, then fold.
    grad_cols = K2.reshape(2, -1).T @ d2  # (B, Cin*k*k, L)
    grad_h1 = F.fold(grad_cols, (4, 4), 2, stride=2)  # (B, 2, 4, 4)
    d0 = (grad_h1 * dtanh(h1)).reshape(BATCH, 2, 16)
    reference = {
        5: (e.T @ flat, e.sum(0)),
        2: (conv_weight_grad(d2, cols2), d2.sum((0, 2))),
        0: (conv_weight_grad(d0, cols0), d0.sum((0, 2))),
    }
    assert_conv_grads(grads_of(rule, x, y), reference, bias)


def test_fa_conv_with_forward_kernels_as_feedback_is_bp():
    net, (x, y) = conv_net(), conv_batch()
    bp = grads_of(Backprop(Backprop.Params(), RuleContext(net, cross_entropy, num_classes=2)), x, y)
    rule = make_rule(FeedbackAlignment, net)
    with torch.no_grad():
        rule.feedback_2.copy_(net[2].weight)
        rule.feedback_5.copy_(net[5].weight)
    fa = grads_of(rule, x, y)
    for key in bp:
        torch.testing.assert_close(fa[key], bp[key], **TOL)
    # ...and with the random kernel it is not BP
    assert not torch.allclose(
        grads_of(make_rule(FeedbackAlignment, net), x, y)["0.weight"], bp["0.weight"], rtol=1e-3
    )


@pytest.mark.parametrize("bias", [True, False])
def test_dfa_conv_with_pooling_matches_hand_computation(bias):
    net, (x, y) = conv_net(bias, pool=True), conv_batch()
    rule = make_rule(DirectFeedbackAlignment, net)
    grads = grads_of(rule, x, y)  # conv feedback is drawn at the first step (image size known)
    B0, B3 = rule.feedback_0, rule.feedback_3  # (K, 2*2*2) block output after pooling; (K, 3)
    assert B0.shape == (2, 8) and B3.shape == (2, 3)
    cols0, a0 = conv_as_matrix(x, net[0].weight, 1)
    h1 = torch.tanh(a0 + bias_or_zero(net[0])[:, None]).reshape(BATCH, 2, 4, 4)
    pooled = h1.reshape(BATCH, 2, 2, 2, 2, 2).mean((3, 5))  # 2x2 average pooling, (B, 2, 2, 2)
    cols3, a3 = conv_as_matrix(pooled, net[3].weight, 1)  # (B, 3, 1)
    h4 = torch.tanh(a3 + bias_or_zero(net[3])[:, None]).reshape(BATCH, 3)
    s = h4 @ net[6].weight.T + bias_or_zero(net[6])
    e = output_error(s, y)
    d3 = ((e @ B3) * dtanh(h4)).reshape(BATCH, 3, 1)
    g_pooled = (e @ B0).reshape(BATCH, 2, 2, 2)
    g_h1 = g_pooled.repeat_interleave(2, 2).repeat_interleave(2, 3) / 4  # avg-pool backward
    d0 = (g_h1 * dtanh(h1)).reshape(BATCH, 2, 16)
    reference = {
        6: (e.T @ h4, e.sum(0)),
        3: (conv_weight_grad(d3, cols3), d3.sum((0, 2))),
        0: (conv_weight_grad(d0, cols0), d0.sum((0, 2))),
    }
    assert_conv_grads(grads, reference, bias)


def test_dfa_kernel_conv_feedback_matches_hand_computation():
    """conv_feedback: kernel (BioTorch's DFA conv layers): the point feeding the conv layer 3 gets
    the error as a constant map over that conv's output, back through a random kernel shaped like
    its weight (K, C, kh, kw); the point feeding the linear layer keeps its dense matrix."""
    net, (x, y) = conv_net(True, pool=True), conv_batch()
    rule = make_rule(DirectFeedbackAlignment, net, conv_feedback="kernel")
    grads = grads_of(rule, x, y)
    B0, B3 = rule.feedback_0, rule.feedback_3
    assert B0.shape == (2, 2, 2, 2) and B3.shape == (2, 3)  # conv 3's kernel is 2x2 over 2 channels
    cols0, a0 = conv_as_matrix(x, net[0].weight, 1)
    h1 = torch.tanh(a0 + net[0].bias[:, None]).reshape(BATCH, 2, 4, 4)
    pooled = h1.reshape(BATCH, 2, 2, 2, 2, 2).mean((3, 5))
    cols3, a3 = conv_as_matrix(pooled, net[3].weight, 1)
    h4 = torch.tanh(a3 + net[3].bias[:, None]).reshape(BATCH, 3)
    e = output_error(h4 @ net[6].weight.T + net[6].bias, y)
    d3 = ((e @ B3) * dtanh(h4)).reshape(BATCH, 3, 1)
    # conv 3 makes one output position of its 2x2 input: input (i, j) meets kernel tap (i, j) once
    g_pooled = torch.einsum("bk,kcij->bcij", e, B0)
    g_h1 = g_pooled.repeat_interleave(2, 2).repeat_interleave(2, 3) / 4
    d0 = (g_h1 * dtanh(h1)).reshape(BATCH, 2, 16)
    reference = {
        6: (e.T @ h4, e.sum(0)),
        3: (conv_weight_grad(d3, cols3), d3.sum((0, 2))),
        0: (conv_weight_grad(d0, cols0), d0.sum((0, 2))),
    }
    assert_conv_grads(grads, reference, True)
    dense = grads_of(make_rule(DirectFeedbackAlignment, net), x, y)
    assert not torch.allclose(dense["0.weight"], grads["0.weight"])  # another signal for conv inputs
    assert torch.equal(dense["6.weight"], grads["6.weight"])  # the output layer's gradient is the same


def test_dfa_kernel_feedback_counts_every_output_position_a_tap_meets():
    """With a 2x2 map out of a 3x3 input (kernel 2, stride 1), the centre input meets all four
    taps, a corner one: the signal there is the kernel's sum, resp. one tap."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Tanh(), nn.Conv2d(2, 2, 2), nn.Flatten(), nn.Linear(8, 2))
    rule = make_rule(DirectFeedbackAlignment, net, conv_feedback="kernel")
    out = torch.zeros(1, 2, 3, 3)
    signal = torch.tensor([[1.0, -2.0]])
    got = rule._point_signal(signal, rule._units[0].key, out)
    kernel = rule.feedback_0  # (K=2, C=2, 2, 2)
    per_tap = torch.einsum("bk,kcij->bcij", signal, kernel)  # (1, 2, 2, 2)
    assert torch.allclose(got[0, :, 1, 1], per_tap[0].sum((1, 2)))  # the centre: every tap
    assert torch.allclose(got[0, :, 0, 0], per_tap[0, :, 0, 0])  # top-left: the top-left tap only
    assert torch.allclose(got[0, :, 2, 2], per_tap[0, :, 1, 1])


def test_dfa_kernel_feedback_reaches_every_channel_of_a_grouped_conv_input():
    """A grouped conv (3 groups; 2 classes, not divisible by them) gets a full (K, C, kh, kw)
    kernel: every input channel receives every class's error, as with an ordinary conv."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 1), nn.Tanh(), nn.Conv2d(6, 6, 2, groups=3), nn.Flatten(), nn.Linear(24, 2)
    )
    rule = make_rule(DirectFeedbackAlignment, net, conv_feedback="kernel")  # K = 2 classes
    signal = torch.randn(4, 2)
    got = rule._point_signal(signal, rule._units[0].key, torch.zeros(4, 6, 3, 3))
    kernel = rule.feedback_0
    assert kernel.shape == (2, 6, 2, 2)
    centre = torch.einsum("bk,kcij->bc", signal, kernel)  # the centre of a 3x3 map meets all 4 taps
    assert torch.allclose(got[:, :, 1, 1], centre, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
def test_ifa_conv_matches_hand_computation(bias):
    net, (x, y) = conv_net(bias), conv_batch()
    rule = make_rule(IndirectFeedbackAlignment, net)
    grads = grads_of(rule, x, y)
    B0 = rule.feedback_0  # (K, 2*4*4)
    cols0, h1, cols2, h3, flat, s = strided_forward(net, x)
    e = output_error(s, y)
    d0 = (e @ B0).reshape(BATCH, 2, 4, 4) * dtanh(h1)
    _, w_d0 = conv_as_matrix(d0, net[2].weight, 2)  # W_2 delta_1: conv 2 applied to delta, no bias
    d2 = w_d0 * dtanh(h3)  # (B, 2, 4)
    d0 = d0.reshape(BATCH, 2, 16)
    reference = {
        5: (e.T @ flat, e.sum(0)),
        2: (conv_weight_grad(d2, cols2), d2.sum((0, 2))),
        0: (conv_weight_grad(d0, cols0), d0.sum((0, 2))),
    }
    assert_conv_grads(grads, reference, bias)


# ----------------------------------------------------------------------------- the plugin hook


def test_feedback_weight_override_is_the_backward_matrix():
    """A subclass that returns W itself (perfect symmetry) gets BP; the hook sees every layer but the first."""
    seen = []

    class Symmetric(FeedbackAlignment):
        def feedback_weight(self, index, layer):
            seen.append(index)
            assert not torch.is_grad_enabled()
            return layer.weight

    net, (x, y) = mlp(), mlp_batch()
    bp = grads_of(Backprop(Backprop.Params(), RuleContext(net, cross_entropy, num_classes=2)), x, y)
    sym = grads_of(make_rule(Symmetric, net), x, y)
    assert sorted(seen) == [2, 4]
    for key in bp:
        torch.testing.assert_close(sym[key], bp[key], **TOL)


def test_sign_symmetry_style_override():
    class SignSymmetry(FeedbackAlignment):
        def feedback_weight(self, index, layer):
            return layer.weight.sign() * self.fixed_feedback(index).abs()

    net, (x, y) = mlp(), mlp_batch()
    rule = make_rule(SignSymmetry, net)
    h1, h2, s = mlp_forward(net, x)
    e = output_error(s, y)
    B4 = net[4].weight.sign() * rule.feedback_4.abs()
    d2 = (e @ B4) * dtanh(h2)
    torch.testing.assert_close(grads_of(rule, x, y)["2.weight"], d2.T @ h1, **TOL)


# ----------------------------------------------------------------------------- buffers and seeds


@pytest.mark.parametrize("name", list(RULES))
def test_feedback_buffers_are_saved_moved_and_never_trained(name):
    rule = make_rule(RULES[name], mlp())
    state = rule.state_dict()
    buffers = [key for key in state if key.startswith("feedback_")]
    assert buffers
    assert all(not b.requires_grad for b in rule.buffers())
    assert not any(key.startswith("feedback_") for key, _ in rule.named_parameters())
    rule.to(torch.float32)
    assert all(getattr(rule, key).dtype == torch.float32 for key in buffers)
    rule.to("meta")
    assert all(getattr(rule, key).device.type == "meta" for key in buffers)


def test_lazily_drawn_conv_feedback_loads_from_a_checkpoint():
    trained = make_rule(DirectFeedbackAlignment, conv_net(pool=True))
    grads_of(trained, *conv_batch())  # draws the conv feedback
    fresh = make_rule(DirectFeedbackAlignment, conv_net(pool=True), seed=7)
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh.feedback_0, trained.feedback_0)
    x, y = conv_batch()
    torch.testing.assert_close(grads_of(fresh, x, y)["0.weight"], grads_of(trained, x, y)["0.weight"])


@pytest.mark.parametrize("name", list(RULES))
def test_feedback_depends_on_seed_only(name):
    def buffers(**kwargs):
        rule = make_rule(RULES[name], mlp(), **kwargs)
        return {k: v.clone() for k, v in rule.state_dict().items() if k.startswith("feedback_")}

    same, again, other = buffers(seed=0), buffers(seed=0), buffers(seed=1)
    for key in same:
        torch.testing.assert_close(same[key], again[key])
        assert not torch.allclose(same[key], other[key])
    pinned = buffers(seed=1, feedback_seed=0)  # feedback_seed overrides the spec seed
    for key in same:
        torch.testing.assert_close(same[key], pinned[key])


def test_feedback_is_not_the_forward_weights_stream():
    """Same seed for the network and the feedback must not make B a copy of W (FA would be BP)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    rule = make_rule(FeedbackAlignment, net, seed=0, feedback_init="like_forward")
    for index in (2, 4):
        for w in (net[0].weight, net[2].weight, net[4].weight):
            assert not torch.allclose(rule.fixed_feedback(index), w)


@pytest.mark.parametrize("init", ["uniform", "gaussian", "like_forward"])
def test_feedback_init_and_scale(init):
    net = nn.Sequential(nn.Linear(50, 400), nn.Tanh(), nn.Linear(400, 100), nn.Tanh(), nn.Linear(100, 2))
    fa = make_rule(FeedbackAlignment, net, feedback_init=init, feedback_scale=3.0)
    B = fa.feedback_2  # shaped like W (100, 400): feedback fan-in 100, forward fan-in 400
    n = {"uniform": 100, "gaussian": 100, "like_forward": 400}[init]
    if init == "gaussian":
        assert abs(B.std().item() - 3.0 / n**0.5) < 0.05 * 3.0 / n**0.5
    else:
        bound = 3.0 / n**0.5
        assert B.abs().max().item() <= bound and B.abs().max().item() > 0.95 * bound
    dfa = make_rule(DirectFeedbackAlignment, net, feedback_init=init)
    B = dfa.feedback_0  # (K=2, 400): feedback fan-in 2, forward fan-in 50
    n = {"uniform": 2, "gaussian": 2, "like_forward": 50}[init]
    if init != "gaussian":
        assert B.abs().max().item() <= 1 / n**0.5 and B.abs().max().item() > 0.95 / n**0.5


def test_xavier_feedback_is_glorot_for_each_matrix_shape():
    """fa's B like W: sqrt(6/(in*k*k + out*k*k)); dfa's (K, n_p) shrinks with the point's size n_p."""
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 2)
    )
    fa = make_rule(FeedbackAlignment, net, feedback_init="xavier")
    bound = math.sqrt(6 / (4 * 9 + 6 * 9))  # the conv kernel (6, 4, 3, 3)
    assert bound * 0.95 < fa.feedback_2.abs().max().item() <= bound
    dfa = make_rule(DirectFeedbackAlignment, net, feedback_init="xavier")
    dfa.train_step(torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 1, 0, 1]))  # conv points drawn now
    for key, n_p in ((0, 4 * 6 * 6), (2, 6 * 4 * 4)):
        matrix = dfa.fixed_feedback(key)
        assert matrix.shape == (2, n_p)
        bound = math.sqrt(6 / (2 + n_p))
        assert bound * 0.9 < matrix.abs().max().item() <= bound


@pytest.mark.parametrize(
    "options",
    [{"feedback_scale": 0.0}, {"feedback_init": "orthogonal"}, {"feedback_seed": -1}, {"feedbak_scale": 1.0}],
)
def test_params_are_validated(options):
    with pytest.raises(pydantic.ValidationError):
        FeedbackParams(**options)


# ----------------------------------------------------------------------------- check_network


@pytest.mark.parametrize("name", list(RULES))
def test_check_network_rejects_unsupported_layers(name):
    cls = RULES[name]
    with_weight = nn.Sequential(nn.Linear(4, 3), nn.PReLU(), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    problems = cls.check_network(with_weight, cls.Params())
    assert [index for index, _ in problems] == [1]
    # no rule's name: the spec's validator prefixes the registered one ("rule 'fa': ")
    assert problems[0][1].startswith(
        "cannot train network.layers[1] (PReLU): its trainable layers are linear"
    )
    unknown = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    (problem,) = cls.check_network(unknown, cls.Params())
    assert problem[0] == 1 and problem[1].startswith("does not know network.layers[1] (Softmax)")
    assert "tanh" in problem[1]
    # built in Python there is no registered name: the error names the class
    with pytest.raises(
        ValueError, match=rf"^{cls.__name__} cannot train this network: does not know .*Softmax"
    ):
        make_rule(cls, unknown)


@pytest.mark.parametrize("name", list(RULES))
def test_check_network_accepts_the_usual_layers_on_the_meta_device(name):
    cls = RULES[name]
    with torch.device("meta"):
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 20), nn.ReLU(), nn.Dropout(0.1),
                            nn.Linear(20, 20), nn.GELU(), nn.Linear(20, 10))  # fmt: skip
    assert cls.check_network(net, cls.Params()) == []


def test_check_network_needs_trainable_and_hidden_layers():
    only_output = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert FeedbackAlignment.check_network(only_output, FeedbackParams()) == []
    for cls in (DirectFeedbackAlignment, IndirectFeedbackAlignment):
        ((index, message),) = cls.check_network(only_output, FeedbackParams())
        assert index is None and "hidden" in message
    ((index, message),) = FeedbackAlignment.check_network(nn.Sequential(nn.Flatten()), FeedbackParams())
    assert index is None and "at least one trainable layer" in message


def test_normalisation_layers_are_trained_by_fa_and_dfa_but_refused_by_ifa():
    with_norm = nn.Sequential(
        nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 2)
    )
    assert FeedbackAlignment.check_network(with_norm, FeedbackParams()) == []
    assert DirectFeedbackAlignment.check_network(with_norm, DirectFeedbackAlignment.Params()) == []
    problems = IndirectFeedbackAlignment.check_network(with_norm, FeedbackParams())
    assert [index for index, _ in problems] == [1, 3]
    assert "BatchNorm1d" in problems[0][1] and "normalisation" in problems[0][1]


def test_ifa_rejects_pooling_between_layers_but_dfa_and_fa_accept_it():
    net = conv_net(pool=True)
    ((index, message),) = IndirectFeedbackAlignment.check_network(net, FeedbackParams())
    assert index == 2 and "AvgPool2d" in message
    assert DirectFeedbackAlignment.check_network(net, FeedbackParams()) == []
    assert FeedbackAlignment.check_network(net, FeedbackParams()) == []


@pytest.mark.parametrize("name", list(RULES))
def test_training_reduces_the_loss(name):
    """A few hundred steps on a separable toy problem: each rule actually learns."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, :5].sum(1) > x[:, 5:].sum(1)).long()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
    rule = make_rule(RULES[name], net)
    opt = torch.optim.Adam(rule.parameters(), lr=0.01)
    first = None
    for _ in range(150):
        opt.zero_grad(set_to_none=True)
        metrics = rule.train_step(x, y)
        opt.step()
        first = metrics["loss"].item() if first is None else first
    assert metrics["loss"].item() < 0.3 * first
    assert metrics["accuracy"].item() > 0.9
