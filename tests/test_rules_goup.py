"""GO-UP: the update as defined, its noise, its seeding, its gradient sources and its divergence guard."""

from __future__ import annotations

import copy

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from altlearn.errors import SpecError
from altlearn.optim.losses import cross_entropy
from altlearn.registry.hookspecs import hookimpl
from altlearn.registry.registry import build_registry, get_registry
from altlearn.rules.base import Rule, RuleContext
from altlearn.rules.goup import GoUp, GoUpParams
from altlearn.rules.goup_update import GoUpOptimizer
from altlearn.spec.load import validate


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: extra threads only add synchronisation cost (and the test machines are shared).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_network(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)
    )


def batch(seed: int = 1, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 1, 3, 4, generator=g), torch.randint(0, 4, (size,), generator=g)


def make_rule(network: nn.Sequential, seed: int = 0, **options) -> GoUp:
    return GoUp(GoUpParams(**options), RuleContext(network, cross_entropy, num_classes=4, seed=seed))


def train(rule: Rule, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    for step in range(steps):
        x, y = batch(seed=step)
        optimizer.zero_grad(set_to_none=True)
        rule.train_step(x, y)
        optimizer.step()


def params_of(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ------------------------------------------------------------------------------------ the update


def test_without_noise_a_step_is_exactly_plain_sgd():
    net_goup, net_sgd = tiny_network(), tiny_network()
    rule = make_rule(net_goup, lr=0.1, noise_scale=0.0)
    train(rule, rule.make_optimizer())
    bp = get_registry().load("rule", "bp")
    reference = bp(bp.Params(), RuleContext(net_sgd, cross_entropy, num_classes=4))
    train(reference, torch.optim.SGD(net_sgd.parameters(), lr=0.1, momentum=0.0))
    for a, b in zip(net_goup.parameters(), net_sgd.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(net_goup.parameters()), next(tiny_network().parameters()))


def test_noise_std_is_lr_times_spread_of_theta_minus_g():
    g = torch.Generator().manual_seed(3)
    theta = nn.Parameter(torch.randn(1000, 1000, generator=g) * 0.05)
    grad = torch.randn(1000, 1000, generator=g) * 0.01 + 0.02
    theta.grad = grad.clone()
    before = theta.detach().clone()
    lr = 0.1
    for noise_scale in (1.0, 2.5):
        with torch.no_grad():
            theta.copy_(before)
        GoUpOptimizer([theta], lr=lr, noise_scale=noise_scale, seed=0).step()
        noise = theta.detach() - (before - lr * grad)  # what the step added beyond SGD
        expected = lr * noise_scale * (before - grad).std(correction=0).item()
        assert noise.std().item() == pytest.approx(expected, rel=0.01)  # 1e6 samples: ~0.07 %
        assert abs(noise.mean().item()) < 5 * expected / 1000  # zero-mean within 5 sigma


def test_the_noise_is_the_definitions_exactly():
    # theta <- (1-lr)*theta + lr*(eps*std(theta-g) + theta - g), with eps from the seeded generator
    theta = nn.Parameter(torch.randn(50, 7))
    theta.grad = torch.randn(50, 7)
    before, grad, lr = theta.detach().clone(), theta.grad.clone(), 0.3
    GoUpOptimizer([theta], lr=lr, seed=11).step()
    eps = torch.randn(50, 7, generator=torch.Generator().manual_seed(11))
    spread = (before - grad).std(correction=0)
    expected = (1 - lr) * before + lr * (eps * spread + before - grad)
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-5, atol=1e-6)


def test_one_element_tensor_gets_a_plain_sgd_step():
    scalar = nn.Parameter(torch.tensor([0.7]))
    scalar.grad = torch.tensor([0.2])
    GoUpOptimizer([scalar], lr=0.5, seed=0).step()
    assert torch.isfinite(scalar).all()
    assert scalar.item() == pytest.approx(0.7 - 0.5 * 0.2)


def test_parameters_without_gradient_are_left_alone():
    used, unused = nn.Parameter(torch.randn(5, 5)), nn.Parameter(torch.randn(5, 5))
    used.grad = torch.randn(5, 5)
    kept = unused.detach().clone()
    GoUpOptimizer([used, unused], lr=0.1, seed=0).step()
    assert torch.equal(unused.detach(), kept)


def test_the_lr_schedule_drives_the_step():
    net_goup, net_sgd = tiny_network(), tiny_network()
    rule = make_rule(net_goup, lr=0.2, noise_scale=0.0)
    optimizer = rule.make_optimizer()
    torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.25)
    train(rule, optimizer, steps=1)
    reference = make_rule(net_sgd, lr=0.05, noise_scale=0.0)
    train(reference, reference.make_optimizer(), steps=1)
    for a, b in zip(net_goup.parameters(), net_sgd.parameters()):
        assert torch.equal(a, b)


def test_a_step_never_synchronises_with_the_host(monkeypatch):
    rule = make_rule(tiny_network(), lr=0.1)
    optimizer = rule.make_optimizer()
    x, y = batch()
    optimizer.zero_grad(set_to_none=True)
    rule.train_step(x, y)

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation inside GO-UP's step")

    for name in ("item", "tolist", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    optimizer.step()


# ------------------------------------------------------------------------------------ seeding


def _run(spec_seed: int, option_seed: int | None = None) -> list[torch.Tensor]:
    rule = GoUp(
        GoUpParams(lr=0.1, seed=option_seed), RuleContext(tiny_network(), cross_entropy, 4, spec_seed)
    )
    train(rule, rule.make_optimizer())
    return params_of(rule.network)


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_same_seed_same_run_and_different_seeds_differ():
    first = _run(spec_seed=0)
    assert _same(first, _run(spec_seed=0))
    other = _run(spec_seed=1)
    assert not _same(first, other)
    # the rule's own seed option wins over the spec seed
    assert _same(_run(spec_seed=0, option_seed=1), other)


def test_optimizer_state_resumes_the_same_noise():
    rule = make_rule(tiny_network(), lr=0.1)
    optimizer = rule.make_optimizer()
    train(rule, optimizer, steps=2)
    saved_params = copy.deepcopy(rule.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    train(rule, optimizer, steps=2)
    uninterrupted = params_of(rule.network)

    resumed = make_rule(tiny_network(seed=9), lr=0.1)
    resumed.load_state_dict(saved_params)
    resumed_optimizer = resumed.make_optimizer()
    resumed_optimizer.load_state_dict(saved_optimizer)
    train(resumed, resumed_optimizer, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, params_of(resumed.network)))
    assert resumed_optimizer.steps == 4


# ------------------------------------------------------------------------------------ divergence guard


def test_health_check_is_quiet_while_training_is_healthy():
    rule = make_rule(tiny_network(), lr=0.05)
    train(rule, rule.make_optimizer())
    assert rule.health_check() is None


def test_health_check_catches_non_finite_parameters():
    rule = make_rule(tiny_network(), lr=0.05)
    train(rule, rule.make_optimizer(), steps=1)
    with torch.no_grad():
        rule.network[3].weight[0, 0] = float("nan")
    message = rule.health_check()
    assert "network.3.weight" in message and "non-finite" in message
    # after one step the noise has done almost nothing: the gradient step is to blame
    assert "lr=0.05 is too large for the bp gradient itself" in message
    rule._optimizer.noise_budget = 3.0  # as after many noisy steps
    message = rule.health_check()
    assert "lr=0.05 is too large for GO-UP's noise" in message and "try lr <=" in message
    assert "exp(3)" in message


def test_health_check_catches_exploded_parameters():
    rule = make_rule(tiny_network(), lr=0.05, max_abs_param=100.0)
    rule.make_optimizer()
    with torch.no_grad():
        rule.network[1].bias[2] = 500.0
    message = rule.health_check()
    assert "network.1.bias" in message and "max_abs_param" in message and "lr=0.05" in message


def test_health_check_catches_norm_growth():
    rule = make_rule(tiny_network(), lr=0.05, max_norm_growth=3.0, max_abs_param=1e9)
    rule.make_optimizer()
    with torch.no_grad():
        rule.network[5].weight.mul_(2.5)
    assert rule.health_check() is None
    with torch.no_grad():
        rule.network[5].weight.mul_(2.0)
    message = rule.health_check()
    assert "network.5.weight" in message and "grew 5.0x" in message


def test_health_check_blames_sgd_when_there_is_no_noise():
    rule = make_rule(tiny_network(), lr=0.05, noise_scale=0.0)
    rule.make_optimizer()
    with torch.no_grad():
        rule.network[1].weight.fill_(float("inf"))
    assert "plain SGD" in rule.health_check()


def test_goup_learns_a_small_problem():
    torch.manual_seed(0)
    centers = torch.randn(4, 12) * 2
    labels = torch.randint(0, 4, (512,))
    inputs = (centers[labels] + torch.randn(512, 12)).view(512, 1, 3, 4)
    rule = make_rule(tiny_network(), lr=0.1)
    optimizer = rule.make_optimizer()
    first = None
    for _epoch in range(10):
        for i in range(0, 512, 32):
            optimizer.zero_grad(set_to_none=True)
            metrics = rule.train_step(inputs[i : i + 32], labels[i : i + 32])
            optimizer.step()
            first = metrics["loss"].item() if first is None else first
    with torch.no_grad():
        final = rule.eval_step(inputs, labels)
    assert final["loss"].item() < 0.3 * first
    assert final["accuracy"].item() > 0.9


# ------------------------------------------------------------------------------------ gradient sources


@pytest.mark.parametrize("source", ["fa", "dfa", "ifa"])
def test_feedback_source_fills_the_same_grads_as_the_rule_alone(source):
    net_goup, net_alone = tiny_network(), tiny_network()
    rule = make_rule(net_goup, seed=4, lr=0.1, source={"type": source, "feedback_scale": 2.0})
    cls = get_registry().load("rule", source)
    alone = cls(cls.Params(feedback_scale=2.0), RuleContext(net_alone, cross_entropy, num_classes=4, seed=4))
    x, y = batch()
    metrics = rule.train_step(x, y)
    expected_metrics = alone.train_step(x, y)
    torch.testing.assert_close(metrics["loss"], expected_metrics["loss"])
    grads = [p.grad for p in net_goup.parameters()]
    assert all(g is not None for g in grads)
    for g, expected in zip(grads, (p.grad for p in net_alone.parameters())):
        assert torch.equal(g, expected)
    # the source really is that rule (not BP in disguise) and is what alignment compares
    assert isinstance(rule.source, cls) and rule.gradient_rule() is rule.source


def test_dfa_source_feedback_is_saved_and_moved_with_the_rule():
    rule = make_rule(tiny_network(), lr=0.1, source="dfa")
    buffers = dict(rule.named_buffers())
    assert buffers and all(name.startswith("source.") for name in buffers)
    assert set(buffers) <= set(rule.state_dict())
    rule.double()
    assert all(b.dtype == torch.float64 for b in rule.buffers() if b.is_floating_point())


def test_bp_source_has_no_separate_gradient_to_compare():
    rule = make_rule(tiny_network(), lr=0.1)
    x, y = batch()
    assert set(rule.train_step(x, y)) >= {"loss"}
    assert rule.gradient_rule() is None  # bp is the reference itself
    assert rule.source.network is rule.network


def test_optimizer_covers_every_trainable_parameter_once():
    rule = make_rule(tiny_network(), lr=0.1, source="dfa")
    optimizer = rule.make_optimizer()
    stepped = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(stepped) == len(list(rule.network.parameters())) == len({id(p) for p in stepped})


def goup_spec(source, **rule_options) -> dict:
    """A digits spec training GO-UP over ``source`` (a name or a {type: ...} block)."""
    return {
        "name": "goup-source",
        "data": {"type": "digits"},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 16},
                {"type": "tanh"},
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": {"type": "goup", "source": source, **rule_options},
    }


def problems_of(raw: dict, registry=None) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate(raw, registry)
    return {p.path: p.message for p in info.value.problems}


def test_the_source_is_a_nested_block_validated_by_its_own_params():
    spec = validate(goup_spec({"type": "dfa", "feedback_init": "uniform", "feedback_scale": 2.0}))
    source = spec.rule.params.source
    assert (source.type, source.component) == ("dfa", get_registry().load("rule", "dfa"))
    assert (source.params.feedback_init, source.params.feedback_scale) == ("uniform", 2.0)
    # the resolved spec writes the block out whole, so a logged spec validates to the same rule
    dumped = spec.to_dict()["rule"]["source"]
    assert dumped == {"type": "dfa", **source.params.model_dump(mode="json")}
    assert validate({**goup_spec(dumped)}).rule.params.source.params == source.params
    assert validate(goup_spec("fa")).rule.params.source.type == "fa"  # a bare name: its defaults
    assert (
        validate(goup_spec("bp")).rule.as_dict()
        == validate(goup_spec(None) | {"rule": {"type": "goup"}}).rule.as_dict()
    )


def test_source_problems_are_reported_at_their_own_paths_all_at_once():
    problems = problems_of(
        goup_spec({"type": "dfa", "feedback_scale": -1.0, "feedbak_init": "uniform"}, lr=-1.0)
    )
    assert set(problems) == {"rule.lr", "rule.source.feedback_scale", "rule.source.feedbak_init"}
    assert "greater than 0" in problems["rule.source.feedback_scale"]
    assert problems["rule.source.feedbak_init"].startswith(
        "'feedbak_init' is not an option of rule 'dfa'; did you mean 'feedback_init'? its options are: "
    )
    bp_options = problems_of(goup_spec({"type": "bp", "feedback_scale": 2.0}))
    assert bp_options == {
        "rule.source.feedback_scale": "'feedback_scale' is not an option of rule 'bp'; its options are: (none)"
    }


def test_unknown_source_is_a_validation_error_with_a_suggestion():
    problems = problems_of(goup_spec({"type": "dfaa"}))
    assert list(problems) == ["rule.source.type"]
    assert problems["rule.source.type"].startswith("'dfaa' is not a known rule; did you mean 'dfa'? known: ")
    # a bare name has no `type` key: the problem is at the option itself
    assert "did you mean 'dfa'" in problems_of(goup_spec("dfaa"))["rule.source"]
    # built in Python, the same check and message
    with pytest.raises(ValidationError) as info:
        GoUpParams(source="dfaa")
    (error,) = info.value.errors()
    assert error["loc"] == ("source",)
    assert "'dfaa' is not a known rule" in error["msg"] and "did you mean 'dfa'" in error["msg"]


@pytest.mark.parametrize(
    "source, reason",
    [("goup", "brings its own update"), ("ff", "has no gradient of the classification loss")],
)
def test_sources_without_a_plain_gradient_are_rejected(source, reason):
    message = problems_of(goup_spec({"type": source}))["rule.source.type"]
    assert message.startswith(f"rule {source!r} cannot be the gradient source: it {reason}")
    usable = message.split("usable: ")[1].split(", ")
    assert {"bp", "fa", "dfa", "ifa"} <= set(usable) and source not in usable
    with pytest.raises(ValidationError) as info:
        GoUpParams(source=source)
    (error,) = info.value.errors()
    assert error["loc"] == ("source",) and reason in error["msg"]


class _FakeOwnUpdate(Rule):
    def make_optimizer(self):
        return torch.optim.SGD(self.network.parameters(), lr=0.1)


class _FakeLocal(Rule):
    network_outputs_scores = False


class _FakePicky(Rule):
    @classmethod
    def check_network(cls, network, params):
        return [(1, "cannot train this layer")]


class _FakePlain(Rule):
    pass


class _FakePlugin:
    @hookimpl
    def altlearn_register_rules(self, register):
        register("plain", _FakePlain)
        register("own", _FakeOwnUpdate)
        register("local", _FakeLocal)
        register("picky", _FakePicky)


@pytest.fixture
def fake_registry():
    return build_registry(extra_plugins=[(_FakePlugin(), "fakepkg", "1.0")])


def test_plugin_sources_are_judged_by_what_they_declare(fake_registry):
    for name, reason in [("own", "its own update"), ("local", "local objective")]:
        message = problems_of(goup_spec(name), fake_registry)["rule.source"]
        assert reason in message and "picky" in message.split("usable: ")[1]
    # the source's check_network is GO-UP's; its messages say which source refuses
    problems = problems_of(goup_spec("picky"), fake_registry)
    assert problems == {"network.layers[1]": "rule 'goup': gradient source 'picky': cannot train this layer"}
    # the source's package is recorded (for the run's tags) like a top-level rule's
    spec = validate(goup_spec({"type": "plain"}), fake_registry)
    assert spec.rule.params.source.component is _FakePlain and spec.packages == {"fakepkg": "1.0"}


def test_bias_growth_alone_is_not_divergence():
    # an output bias starts tiny and legitimately grows many times over; only |value| bounds it
    rule = make_rule(tiny_network(), lr=0.05, max_norm_growth=3.0)
    rule.make_optimizer()
    with torch.no_grad():
        rule.network[5].bias.mul_(50.0)
    assert rule.health_check() is None
