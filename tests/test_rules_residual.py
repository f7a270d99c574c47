"""fa and dfa through residual blocks and batch norm, against references computed by hand.

As in test_rules_feedback.py, every reference is written out from the rule's equations (see
docs/rules/fa.md and dfa.md) with explicit matrix algebra in float64, batch norm's backward
included, so no reference relies on autograd or on the rules' own code.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from altlearn.nn.composite import Residual
from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment

TOL = dict(rtol=1e-10, atol=1e-12)
pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def make_rule(cls, network, **params):
    return cls(cls.Params(**params), RuleContext(network, cross_entropy, num_classes=2, seed=0))


def grads_of(rule, x, y):
    for p in rule.parameters():
        p.grad = None
    rule.train_step(x, y)
    return {name: p.grad.clone() for name, p in rule.network.named_parameters()}


def bp_grads(network, x, y):
    return grads_of(Backprop(Backprop.Params(), RuleContext(network, cross_entropy, num_classes=2)), x, y)


def batch():
    g = torch.Generator().manual_seed(2)
    return torch.randn(6, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0])


def output_error(scores, y):
    onehot = torch.nn.functional.one_hot(y, scores.shape[1]).to(scores.dtype)
    return (scores.softmax(dim=1) - onehot) / len(y)


def dtanh(h):
    return 1.0 - h * h


def linear(x, layer):
    return x @ layer.weight.T + layer.bias


def batch_norm(a, bn):
    """Training-mode batch norm: (output, x_hat, sigma) with the biased batch variance."""
    sigma = (a.var(dim=0, unbiased=False) + bn.eps).sqrt()
    x_hat = (a - a.mean(dim=0)) / sigma
    return bn.weight * x_hat + bn.bias, x_hat, sigma


def batch_norm_backward(delta, x_hat, sigma, bn):
    """(delta at the input, d gamma, d beta) of training-mode batch norm, written out."""
    d_gamma, d_beta = (delta * x_hat).sum(0), delta.sum(0)
    d_in = bn.weight / sigma * (delta - delta.mean(0) - x_hat * (delta * x_hat).mean(0))
    return d_in, d_gamma, d_beta


def assert_linear(grads, name, delta, h_in):
    torch.testing.assert_close(grads[f"{name}.weight"], delta.T @ h_in, **TOL)
    torch.testing.assert_close(grads[f"{name}.bias"], delta.sum(0), **TOL)


def differs(a, b):
    return not torch.allclose(a, b, rtol=1e-3, atol=1e-8)


# ----------------------------------------------------------------------------- FA


def projection_net():
    """linear-tanh, then a residual block whose body has batch norm and whose shortcut is a
    linear projection with batch norm (3 -> 5 units), then the output layer."""
    torch.manual_seed(3)
    body = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 5))
    shortcut = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5))
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), Residual(body, shortcut, nn.Tanh()), nn.Linear(5, 2))
    for bn in (body[1], shortcut[1]):  # not the defaults 1 and 0, so gamma's role is tested
        nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.uniform_(bn.bias, -0.5, 0.5)
    return net.double()


def test_fa_through_a_residual_block_with_projection_and_batch_norm_matches_hand_computation():
    net, (x, y) = projection_net(), batch()
    rule = make_rule(FeedbackAlignment, net)
    block, body, shortcut = net[2], net[2].body, net[2].shortcut
    B_out, B_b3, B_b0, B_s0 = (rule.fixed_feedback(k) for k in (3, "2.body.3", "2.body.0", "2.shortcut.0"))
    assert rule.feedback_indices() == ["2.body.0", "2.body.3", "2.shortcut.0", 3]
    # forward
    h1 = torch.tanh(linear(x, net[0]))
    n_b, xhat_b, sigma_b = batch_norm(linear(h1, body[0]), body[1])
    u = torch.tanh(n_b)
    n_s, xhat_s, sigma_s = batch_norm(linear(h1, shortcut[0]), shortcut[1])
    r = torch.tanh(linear(u, body[3]) + n_s)
    e = output_error(linear(r, net[3]), y)
    # FA: every linear layer sends the error below through its B; the sum sends it down both paths
    d_z = (e @ B_out) * dtanh(r)
    d_u = (d_z @ B_b3) * dtanh(u)
    d_ab, d_gamma_b, d_beta_b = batch_norm_backward(d_u, xhat_b, sigma_b, body[1])
    d_as, d_gamma_s, d_beta_s = batch_norm_backward(d_z, xhat_s, sigma_s, shortcut[1])
    d_1 = (d_ab @ B_b0 + d_as @ B_s0) * dtanh(h1)

    grads = grads_of(rule, x, y)
    assert_linear(grads, "3", e, r)
    assert_linear(grads, "2.body.3", d_z, u)
    assert_linear(grads, "2.body.0", d_ab, h1)
    assert_linear(grads, "2.shortcut.0", d_as, h1)
    assert_linear(grads, "0", d_1, x)
    for name, expected in {"2.body.1": (d_gamma_b, d_beta_b), "2.shortcut.1": (d_gamma_s, d_beta_s)}.items():
        torch.testing.assert_close(grads[f"{name}.weight"], expected[0], **TOL)
        torch.testing.assert_close(grads[f"{name}.bias"], expected[1], **TOL)
    # against BP: the output layer's gradient is exact, every layer below it is not
    bp = bp_grads(projection_net(), x, y)
    torch.testing.assert_close(grads["3.weight"], bp["3.weight"], **TOL)
    for name in ("2.body.3", "2.body.0", "2.shortcut.0", "0"):
        assert differs(grads[f"{name}.weight"], bp[f"{name}.weight"]), name
    assert not block.__dict__.get("forward") and "forward" not in body[0].__dict__  # plain modules again


def test_fa_with_its_feedback_set_to_the_forward_weights_is_bp_on_a_conv_resnet():
    """The feedback route is right for every layer of any graph: with B = W, FA is exactly BP."""
    torch.manual_seed(4)
    inner = Residual(nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU()), None, nn.ReLU())  # nested
    body = nn.Sequential(
        nn.Conv2d(3, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, 1, 1), inner
    )
    shortcut = nn.Sequential(nn.Conv2d(3, 4, 1, 2), nn.BatchNorm2d(4))
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, 1, 1), nn.ReLU(), Residual(body, shortcut, nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).double()  # fmt: skip
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    y = torch.tensor([0, 1, 1, 0, 1])
    rule = make_rule(FeedbackAlignment, net)
    with torch.no_grad():
        for key in rule.feedback_indices():
            rule.fixed_feedback(key).copy_(net.get_submodule(str(key)).weight)
    grads, bp = grads_of(rule, x, y), bp_grads(net, x, y)
    assert grads.keys() == bp.keys() and "2.body.4.body.0.weight" in grads
    for name in grads:
        torch.testing.assert_close(grads[name], bp[name], rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- DFA


def two_block_net():
    """linear-tanh, two residual blocks (identity shortcuts, body linear-tanh-linear), output."""
    torch.manual_seed(6)
    blocks = [
        Residual(nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3)), None, nn.Tanh())
        for _ in range(2)
    ]
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), *blocks, nn.Linear(3, 2)).double()


def two_block_forward(net, x):
    """h1, then (u, r) of each block: u = tanh(body[0](h)), r = tanh(body[2](u) + h)."""
    h1 = torch.tanh(linear(x, net[0]))
    u2 = torch.tanh(linear(h1, net[2].body[0]))
    r2 = torch.tanh(linear(u2, net[2].body[2]) + h1)
    u3 = torch.tanh(linear(r2, net[3].body[0]))
    return h1, (u2, r2), (u3, torch.tanh(linear(u3, net[3].body[2]) + r2))


def test_dfa_on_a_two_block_residual_network_matches_hand_computation():
    net, (x, y) = two_block_net(), batch()
    rule = make_rule(DirectFeedbackAlignment, net)
    grads = grads_of(rule, x, y)
    assert rule.feedback_indices() == [0, 2, 3]  # the first unit and each residual block's output
    h1, (u2, r2), (u3, r3) = two_block_forward(net, x)
    e = output_error(linear(r3, net[4]), y)
    assert_linear(grads, "4", e, r3)
    assert_linear(grads, "0", (e @ rule.fixed_feedback(0)) * dtanh(h1), x)
    for index, h_in, u, r in ((2, h1, u2, r2), (3, r2, u3, r3)):
        body = net[index].body
        d_z = (e @ rule.fixed_feedback(index)) * dtanh(r)  # the block's own signal at its output
        d_u = (d_z @ body[2].weight) * dtanh(u)  # inside the block: its own local derivatives
        assert_linear(grads, f"{index}.body.2", d_z, u)
        assert_linear(grads, f"{index}.body.0", d_u, h_in)
    bp = bp_grads(two_block_net(), x, y)
    torch.testing.assert_close(grads["4.weight"], bp["4.weight"], **TOL)
    for name in ("0", "2.body.0", "2.body.2", "3.body.0", "3.body.2"):
        assert differs(grads[f"{name}.weight"], bp[f"{name}.weight"]), name


def test_dfa_feedback_points_layers_adds_a_point_inside_each_residual_body():
    net, (x, y) = two_block_net(), batch()
    rule = make_rule(DirectFeedbackAlignment, net, feedback_points="layers")
    grads = grads_of(rule, x, y)  # draws the body points' matrices at the first step
    assert rule.feedback_indices() == [0, 2, "2.body.0", 3, "3.body.0"]
    h1, (u2, r2), (_, r3) = two_block_forward(net, x)
    e = output_error(linear(r3, net[4]), y)
    d_z = (e @ rule.fixed_feedback(2)) * dtanh(r2)
    assert_linear(grads, "2.body.2", d_z, u2)  # fed by the block's output point
    d_u = (e @ rule.fixed_feedback("2.body.0")) * dtanh(u2)  # its own point, not body[2]'s weight
    assert_linear(grads, "2.body.0", d_u, h1)


def test_dfa_points_of_a_chain_are_the_same_in_both_modes():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Tanh(), nn.Linear(3, 2)).double()
    x, y = batch()
    blocks = grads_of(make_rule(DirectFeedbackAlignment, net), x, y)
    layers = grads_of(make_rule(DirectFeedbackAlignment, net, feedback_points="layers"), x, y)
    for name in blocks:
        torch.testing.assert_close(blocks[name], layers[name], **TOL)


def test_dfa_state_dict_restores_matrices_drawn_at_the_first_step():
    net, (x, y) = two_block_net(), batch()
    rule = make_rule(DirectFeedbackAlignment, net, feedback_points="layers", feedback_seed=9)
    rule.train_step(x, y)
    fresh = make_rule(DirectFeedbackAlignment, two_block_net(), feedback_points="layers")
    assert "feedback_2_body_0" not in dict(fresh.named_buffers())
    fresh.load_state_dict(rule.state_dict())
    torch.testing.assert_close(fresh.fixed_feedback("3.body.0"), rule.fixed_feedback("3.body.0"))
    assert fresh.feedback_indices() == rule.feedback_indices()


def test_dfa_refuses_a_residual_block_as_the_output_layer():
    net = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), Residual(nn.Sequential(nn.Linear(2, 2))))
    problems = DirectFeedbackAlignment.check_network(net, DirectFeedbackAlignment.Params())
    assert [key for key, _ in problems] == [2]
    assert "output layer" in problems[0][1] and "network.layers[2] (Residual)" in problems[0][1]


def test_dfa_kernel_feedback_is_refused_on_residual_networks_with_the_block_named():
    """BioTorch's conv DFA is defined for conv chains; a residual network would silently get dense
    feedback at its block inputs, so the option is refused there."""
    body = nn.Sequential(nn.Conv2d(3, 3, 3, 1, 1), nn.ReLU(), nn.Conv2d(3, 3, 3, 1, 1))
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, 1, 1), nn.ReLU(), Residual(body, None, nn.ReLU()), nn.Flatten(), nn.Linear(27, 2)
    )
    params = DirectFeedbackAlignment.Params(conv_feedback="kernel")
    problems = DirectFeedbackAlignment.check_network(net, params)
    assert any("not defined for residual blocks (2)" in message for _, message in problems), problems
    assert not DirectFeedbackAlignment.check_network(net, DirectFeedbackAlignment.Params())
