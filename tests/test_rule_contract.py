"""The rule contract's defaults and derived facts, and the random-stream helpers of altlearn.api."""

from __future__ import annotations

import ast
import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from altlearn import api
from altlearn.errors import RuleContractError
from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import Rule, RuleContext, brings_own_update
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.forward_forward.rule import ForwardForward
from altlearn.rules.goup import GoUp
from altlearn.rules.randomness import DEFAULT_STREAM
from altlearn.spec.load import validate
from altlearn.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SIGNSYM_SOURCE = Path(__file__).resolve().parents[1] / "plugins" / "altlearn-signsym" / "src"


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


def context(network=None, seed: int = 0) -> RuleContext:
    return RuleContext(network if network is not None else mlp(), cross_entropy, num_classes=3, seed=seed)


# --------------------------------------------------------------------------------- the contract


class Picky(Backprop):
    @classmethod
    def check_network(cls, network, params):
        return [(1, "layer 1 is too narrow"), (None, "and too shallow")]


def test_construction_refuses_a_network_check_network_rejects():
    with pytest.raises(ValueError, match="layer 1 is too narrow; and too shallow"):
        Picky(Picky.Params(), context())


def test_the_context_is_what_every_rule_reads():
    network = mlp()
    rule = Backprop(Backprop.Params(), context(network, seed=7))
    assert rule.network is network and rule.context.network is network
    assert (rule.loss, rule.num_classes, rule.seed) == (cross_entropy, 3, 7)
    assert [name for name, _ in rule.named_children()] == ["network"]  # trained, saved, moved


def test_the_context_gives_each_examples_loss_whatever_the_losss_reduction():
    scores, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    rule = Backprop(Backprop.Params(), context())
    per_example = rule.example_loss(scores, labels)  # (B,)
    torch.testing.assert_close(per_example, F.cross_entropy(scores, labels, reduction="none"))

    def summed(s, y):  # a plugin loss that sums over the batch: still each example's own loss
        return F.cross_entropy(s, y, reduction="sum")

    summing = Backprop(Backprop.Params(), RuleContext(mlp(), summed, num_classes=3))
    torch.testing.assert_close(summing.example_loss(scores, labels), per_example)

    def no_vmap(s, y):  # data-dependent: vmap cannot batch it, so one example at a time
        return F.cross_entropy(s, y) * (1.0 if float(s.sum()) > -1e9 else 0.0)

    looping = Backprop(Backprop.Params(), RuleContext(mlp(), no_vmap, num_classes=3))
    torch.testing.assert_close(looping.example_loss(scores, labels), per_example)
    given = RuleContext(mlp(), cross_entropy, 3, example_loss=lambda s, y: s.sum(1))
    assert Backprop(Backprop.Params(), given).example_loss(scores, labels).shape == (5,)


def test_own_update_is_derived_from_overriding_make_optimizer():
    class OwnStep(Backprop):
        def make_optimizer(self):
            return torch.optim.SGD(self.network.parameters(), lr=0.1)

    class StillOwn(OwnStep):
        pass

    assert not brings_own_update(Backprop) and not brings_own_update(FeedbackAlignment)
    assert brings_own_update(GoUp) and brings_own_update(OwnStep) and brings_own_update(StillOwn)
    assert not brings_own_update(object)  # a registered target that is no rule at all
    assert Backprop(Backprop.Params(), context()).make_optimizer() is None  # the trainer's optimizer


def test_gradient_rule_defaults_to_the_rule_and_opts_out_for_bp_and_ff():
    fa = FeedbackAlignment(FeedbackAlignment.Params(), context())
    assert fa.gradient_rule() is fa
    assert Backprop(Backprop.Params(), context()).gradient_rule() is None
    ff_net = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
    assert ForwardForward(ForwardForward.Params(), context(ff_net)).gradient_rule() is None


def test_evaluation_goes_through_the_one_inference_method():
    class Doubled(Backprop):
        def inference_module(self):
            return nn.Sequential(self.network, Scale(2.0))

    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    rule = Doubled(Doubled.Params(), context())
    with torch.no_grad():
        metrics = rule.eval_step(x, y)
        expected = cross_entropy(2.0 * rule.network(x), y)
    torch.testing.assert_close(metrics["loss"], expected)
    assert not hasattr(Rule, "predict")  # one way to classify, not three


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_every_rule_has_extra_state_so_a_checkpoint_always_carries_it():
    rule = Backprop(Backprop.Params(), context())
    state = rule.state_dict()
    assert state["_extra_state"] == {}
    Backprop(Backprop.Params(), context()).load_state_dict(state)  # strict: the key is expected


class NoOptimizer(Backprop):
    def make_optimizer(self):  # overrides it, so validation drops the optimizer block, but...
        return None


def test_an_override_of_make_optimizer_must_return_an_optimizer(monkeypatch):
    from altlearn.registry import registry as plugins

    class Plugin:
        @api.hookimpl
        def altlearn_register_rules(self, register):
            register("no_optimizer", NoOptimizer)

    registry = plugins.build_registry(extra_plugins=[(Plugin(), "altlearn-test-none", "1.0")])
    spec = validate(
        {
            "name": "none",
            "data": {"type": "digits", "batch_size": 64, "train_subset": 128, "test_subset": 64},
            "network": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
            "rule": {"type": "no_optimizer"},
            "train": {"epochs": 1, "device": "cpu"},
        },
        registry,
    )
    assert spec.optimizer is None
    with pytest.raises(RuleContractError, match="overrides make_optimizer but it returned NoneType"):
        Trainer(spec)


# ------------------------------------------------------------------------------ random streams


def test_layer_seeds_differ_by_seed_layer_and_stream_and_fit_63_bits():
    seeds = {
        api.layer_seed(seed, index, stream)
        for seed in (0, 1)
        for index in (1, 3)
        for stream in ("feedback", "mine")
    }
    assert len(seeds) == 8
    assert all(0 <= s < 2**63 for s in seeds)


def test_feedback_matrices_come_from_the_layer_seed_of_the_feedback_stream():
    rule = FeedbackAlignment(FeedbackAlignment.Params(), context(seed=4))
    generator = torch.Generator().manual_seed(api.layer_seed(4, 3, "feedback"))
    bound = 1 / 3**0.5  # uniform U(+-1/sqrt(n)), n = 3: the out_features of Linear(5, 3)
    expected = torch.empty(3, 5).uniform_(-bound, bound, generator=generator)
    assert torch.equal(rule.fixed_feedback(3), expected)


def draws(generators: api.DeviceGenerators, layer: int = 0, count: int = 3) -> torch.Tensor:
    return torch.randn(count, generator=generators.get("cpu", layer))


def test_device_generators_are_seeded_per_layer_and_never_replay_the_weight_init():
    unnamed = api.DeviceGenerators(5)  # per_layer=None: the stream DEFAULT_STREAM, per layer
    own = torch.Generator().manual_seed(api.layer_seed(5, 1, DEFAULT_STREAM))
    assert torch.equal(draws(unnamed, 1), torch.randn(3, generator=own))
    weight_init = torch.randn(3, generator=torch.Generator().manual_seed(5))  # torch.manual_seed(5)
    assert not any(torch.equal(draws(api.DeviceGenerators(5), layer), weight_init) for layer in (0, 1))
    assert not torch.equal(draws(api.DeviceGenerators(5), 0), draws(api.DeviceGenerators(5), 1))
    per_layer = api.DeviceGenerators(5, per_layer="mine")
    own = torch.Generator().manual_seed(api.layer_seed(5, 2, "mine"))
    assert torch.equal(draws(per_layer, 2), torch.randn(3, generator=own))
    assert not torch.equal(draws(api.DeviceGenerators(5, per_layer="mine"), 1), draws(per_layer, 2))
    assert per_layer.seed_of("3.body.0") == api.layer_seed(5, "3.body.0", "mine")  # nested keys


def test_exact_generators_start_from_the_seed_itself_on_every_layer():
    """GO-UP's noise (seed + 7919) and ff's negative labels keep the streams their runs recorded."""
    exact = api.DeviceGenerators.exact(5)
    expected = torch.randn(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(draws(exact, 0), expected) and torch.equal(draws(exact, 7), expected)


def test_draw_helpers_match_torch_and_run_eagerly_inside_a_compiled_step():
    def step(generators, w):
        noise = generators.rand(w.shape, device=w.device, layer=1) + generators.randn((3,), device=w.device)
        labels = generators.randint(0, 10, (3,), device=w.device, layer="2.body.0")
        return (w * 2 + noise).sum() + labels.sum()

    eager, compiled = api.DeviceGenerators(4, per_layer="x"), api.DeviceGenerators(4, per_layer="x")
    compiled_step = torch.compile(step, backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Dynamo warns when it meets hashlib or a Generator argument
        for _ in range(2):
            assert torch.equal(step(eager, torch.ones(3)), compiled_step(compiled, torch.ones(3)))
    assert all(torch.equal(eager.state()[k], compiled.state()[k]) for k in eager.state())
    copied = pickle.loads(pickle.dumps(eager))  # a rule holding generators can still be pickled
    assert torch.equal(copied.randn((3,), device="cpu"), eager.randn((3,), device="cpu"))
    by_hand = torch.Generator().manual_seed(api.layer_seed(4, 1, "x"))
    assert torch.equal(api.DeviceGenerators(4, per_layer="x").rand((3,), device="cpu", layer=1),
                       torch.rand(3, generator=by_hand))  # fmt: skip


def test_device_generators_continue_from_a_saved_state():
    original = api.DeviceGenerators(5, per_layer="mine")
    draws(original, 1), draws(original, 2)
    saved = original.state()
    assert set(saved) == {"1@cpu", "2@cpu"}
    expected = [draws(original, 1), draws(original, 2)]
    restored = api.DeviceGenerators(5, per_layer="mine")
    restored.load_state(saved)
    again = restored.state()  # saved again before any draw: the restored states are kept
    assert all(torch.equal(again[key], saved[key]) for key in saved)
    assert torch.equal(draws(restored, 1), expected[0]) and torch.equal(draws(restored, 2), expected[1])


def test_a_state_from_another_device_is_kept_but_not_used():
    generators = api.DeviceGenerators(5)
    elsewhere = torch.Generator().manual_seed(99).get_state()
    generators.load_state({"0@cuda:0": elsewhere})
    assert torch.equal(draws(generators), draws(api.DeviceGenerators(5)))  # the CPU stream: fresh
    assert torch.equal(generators.state()["0@cuda:0"], elsewhere)  # still saved for that device


# ------------------------------------------------------------------------------------ the plugin


def test_the_signsym_plugin_imports_only_altlearn_api():
    imported = set()
    for path in SIGNSYM_SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    from_altlearn = {name for name in imported if name == "altlearn" or name.startswith("altlearn.")}
    # altlearn itself only for hookimpl (the hook module must not import torch)
    assert from_altlearn == {"altlearn", "altlearn.api"}


def test_the_signsym_tests_import_only_altlearn_api_and_altlearn_testing():
    imported = set()
    for path in (SIGNSYM_SOURCE.parent / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    from_altlearn = {name for name in imported if name == "altlearn" or name.startswith("altlearn.")}
    assert from_altlearn == {"altlearn.api", "altlearn.testing"}


def test_everything_in_the_api_is_importable_and_listed():
    for name in api.__all__:
        assert getattr(api, name) is not None
