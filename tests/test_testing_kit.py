"""altlearn.testing, the plugin author's kit: every built-in rule passes it, each deliberately broken
rule fails exactly the check named for its mistake, and a spec validates and trains in-process
through altlearn.api."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from altlearn import api
from altlearn.api import DeviceGenerators, FeedbackAlignment, Rule, layer_seed
from altlearn.rules.backprop import Backprop
from altlearn.testing import CHECKS, CheckFailed, check_rule, make_case, parametrize_rule_checks, run_check

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CORE = [check.name for check in CHECKS if not check.optional]

BUILTIN = [
    ("bp", {}),
    ("fa", {}),
    ("dfa", {}),
    ("ifa", {}),
    ("ff", {}),
    ("goup", {}),
    ("ff", {"schedule": "greedy", "greedy_steps_per_layer": 1}),
    ("ff", {"inference": "softmax_head", "negative_labels": "hard"}),
    ("goup", {"source": {"type": "dfa"}}),
]


@pytest.mark.parametrize(("name", "options"), BUILTIN, ids=[f"{n}{o or ''}" for n, o in BUILTIN])
def test_every_builtin_rule_passes_the_kit(name, options):
    results = check_rule(name, options)
    assert [result.name for result in results] == [check.name for check in CHECKS]
    assert [result.name for result in results if result.status == "passed"][: len(CORE)] == CORE


@parametrize_rule_checks("dfa", ("fa", {"feedback_init": "gaussian"}))
def test_the_pytest_helper_makes_one_test_per_rule_and_check(check):
    check()  # the optional checks this machine cannot run are reported as skipped, with why


def test_the_pytest_helper_names_each_test_after_its_rule_and_check():
    mark = parametrize_rule_checks("fa", ("signsym", {"magnitude": "constant"}))
    ids = mark.kwargs["ids"]
    assert ids[0] == "fa-fills_grads" and "signsym-magnitude=constant-moves_to_device" in ids
    assert len(ids) == 2 * len(CHECKS)


def test_the_network_given_replaces_the_default_mlp_and_dropout_is_noted():
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 10)
    )
    notes = {result.name: result.note for result in check_rule("fa", network=network)}
    assert "dropout" in notes["own_random_streams"]  # the network draws itself: not checkable
    # The alignment pass leaves BatchNorm's running statistics alone (it ran two more forwards).
    assert notes["alignment_leaves_training_alone"] is None


def test_unknown_names_and_non_rules_are_refused():
    with pytest.raises(ValueError, match="no rule 'nope' is registered"):
        check_rule("nope")
    with pytest.raises(TypeError, match="not a subclass of altlearn.api.Rule"):
        check_rule(nn.Linear)  # type: ignore[arg-type]


# ------------------------------------------------------------------ rules broken on purpose


class ForgetsGrad(FeedbackAlignment):
    """Drops the output bias's update."""

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        self.network[-1].bias.grad = None
        return metrics


class DrawsGlobally(FeedbackAlignment):
    """Adds noise from torch's global generator (the one dropout uses)."""

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        for p in self.network.parameters():
            p.grad.add_(torch.randn_like(p.grad), alpha=1e-3)
        return metrics


class KeepsTensorOnCpu(FeedbackAlignment):
    """Keeps a tensor as a plain attribute: .to(device) does not move it."""

    def __init__(self, params, context):
        super().__init__(params, context)
        self.scale = torch.full((), 0.5)

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        for p in self.network.parameters():
            p.grad.mul_(self.scale)
        return metrics


class AdvancesInAlignment(FeedbackAlignment):
    """Counts its steps in a buffer (saved in checkpoints, but not put back by the diagnostic)."""

    def __init__(self, params, context):
        super().__init__(params, context)
        self.register_buffer("steps", torch.zeros(()))

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        self.steps += 1
        for p in self.network.parameters():
            p.grad.mul_(1 + 0.1 * self.steps)
        return metrics


class SyncsForAMetric(Backprop):
    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        metrics["rule/high_loss"] = torch.tensor(float(metrics["loss"] > 1))  # a host sync
        return metrics


class NamesItself(FeedbackAlignment):
    @classmethod
    def check_network(cls, network, params):
        found = super().check_network(network, params)
        return [(key, f"NamesItself {message}") for key, message in found]


class TrainsAroundUnknownLayers(Rule):
    """Accepts any network but trains only its linear layers."""

    def train_step(self, x, y):
        loss = self.loss(self.network(x), y)
        linears = [m for m in self.network if isinstance(m, nn.Linear)]
        weights = [p for m in linears for p in (m.weight, m.bias)]
        for p, g in zip(weights, torch.autograd.grad(loss, weights)):
            p.grad = g
        return {"loss": loss.detach()}


class ForgetsItsCounter(FeedbackAlignment):
    """A step counter the update depends on, kept out of get_extra_state."""

    def __init__(self, params, context):
        super().__init__(params, context)
        self.count = 0

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        self.count += 1
        for p in self.network.parameters():
            p.grad.mul_(1 + 0.1 * self.count)
        return metrics


# (rule, the checks it fails, whether the CUDA check, which reruns the step checks there, fails too)
BROKEN = [
    (ForgetsGrad, {"fills_grads"}, True),
    (DrawsGlobally, {"own_random_streams"}, True),
    (KeepsTensorOnCpu, {"moves_to_device"}, False),  # a 0-dim CPU tensor still mixes with CUDA ones
    (AdvancesInAlignment, {"alignment_leaves_training_alone"}, True),
    (SyncsForAMetric, {"scalar_metrics"}, True),
    (NamesItself, {"check_network_on_meta"}, False),
    (TrainsAroundUnknownLayers, {"check_network_on_meta"}, False),
    (ForgetsItsCounter, {"save_reload_continue", "alignment_leaves_training_alone"}, True),
]


def failed_checks(rule) -> dict[str, str]:
    case = make_case(rule)
    failed = {}
    for check in CHECKS:
        try:
            run_check(check, case)
        except CheckFailed as exc:
            failed[check.name] = str(exc)
    return failed


@pytest.mark.parametrize(("rule", "expected", "on_cuda"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_rule_fails_exactly_the_check_for_its_mistake(rule, expected, on_cuda):
    failed = failed_checks(rule)
    assert set(failed) == expected | ({"cuda"} if on_cuda and torch.cuda.is_available() else set())
    for name, message in failed.items():
        assert message.startswith(f"rule class {rule.__qualname__} fails check {name!r}")


def test_check_rule_names_the_first_failed_check_and_what_to_change():
    with pytest.raises(AssertionError) as raised:
        check_rule(ForgetsGrad)
    message = str(raised.value)
    assert "fails check 'fills_grads'" in message and "network.5.bias" in message
    assert "requires_grad_(False)" in message  # the fix for a parameter it never trains
    with pytest.raises(AssertionError, match=r"draw from generators of the rule's own"):
        check_rule(DrawsGlobally)
    with pytest.raises(AssertionError, match=r"register_buffer"):
        check_rule(KeepsTensorOnCpu)
    with pytest.raises(AssertionError, match=r"keep buffers for what a step reads"):
        check_rule(AdvancesInAlignment)


def test_an_exception_inside_the_rule_is_reported_as_its_check():
    class Crashes(Backprop):
        def eval_step(self, x, y):
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"fails check 'scalar_metrics' .*RuntimeError: boom"):
        check_rule(Crashes)


def test_the_kit_leaves_the_callers_random_state_alone():
    state = torch.get_rng_state()
    failed_checks(DrawsGlobally)
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------ optional capabilities


class DeclaredBackprop(Backprop):
    supports = frozenset({"bf16", "compile"})


class Bf16Update(Backprop):
    """Leaves its update in bf16 under autocast."""

    supports = frozenset({"bf16"})

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        if torch.is_autocast_enabled("cpu"):
            for p in self.network.parameters():
                p.grad = p.grad.bfloat16()
        return metrics


class SeedsInsideTheStep(Backprop):
    """Hashes a layer seed inside the compiled step: Dynamo cannot trace hashlib."""

    supports = frozenset({"compile"})

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        generator = torch.Generator().manual_seed(layer_seed(self.seed, 1, "step"))
        metrics["rule/draw"] = torch.rand((), generator=generator)
        return metrics


class CompiledNoise(Backprop):
    """Draws noise in the step through DeviceGenerators: compiled, the draws run eagerly."""

    supports = frozenset({"compile"})

    def __init__(self, params, context):
        super().__init__(params, context)
        self.generators = DeviceGenerators(self.seed, per_layer="noise")

    def train_step(self, x, y):
        metrics = super().train_step(x, y)
        for index, p in enumerate(self.network.parameters()):
            p.grad.add_(self.generators.randn(p.shape, device=p.device, layer=index), alpha=1e-3)
        return metrics

    def get_extra_state(self):
        return self.generators.state()

    def set_extra_state(self, state):
        self.generators.load_state(state)


def test_optional_checks_run_only_where_declared():
    undeclared = {r.name: r for r in check_rule("bp")}
    for name in ("bf16_autocast", "compiles"):
        assert undeclared[name].status == "skipped" and "not declared" in undeclared[name].note
    declared = {r.name: r.status for r in check_rule(DeclaredBackprop)}
    assert declared["bf16_autocast"] == declared["compiles"] == "passed"
    assert declared["cuda"] == ("passed" if torch.cuda.is_available() else "skipped")


def test_a_declared_capability_that_does_not_hold_fails():
    assert set(failed_checks(Bf16Update)) == {"bf16_autocast"}
    message = failed_checks(SeedsInsideTheStep)["compiles"]
    assert "torch.compile warned" in message and "_hashlib" in message


def test_seeded_draws_compile_through_device_generators():
    assert "compiles" not in failed_checks(CompiledNoise)


# ------------------------------------------------------------------ a spec, in this process


def digits_spec(**rule) -> dict:
    return {
        "name": "kit",
        "seed": 1,
        "data": {"type": "digits", "batch_size": 64, "train_subset": 256, "test_subset": 128},
        "network": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
        "rule": {"type": "fa", **rule},
        "train": {"epochs": 1, "device": "cpu"},
    }


def test_validate_spec_takes_a_mapping_or_a_path_with_overrides(tmp_path):
    raw = digits_spec()
    spec = api.validate_spec(raw, ["rule.feedback_scale=2"])
    assert spec.rule.params.feedback_scale == 2 and "feedback_scale" not in raw["rule"]
    path = tmp_path / "kit.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    assert api.validate_spec(path).rule.type == "fa"
    with pytest.raises(api.SpecError) as raised:
        api.validate_spec(raw, ["rule.feedback_scal=2"])
    assert "did you mean 'feedback_scale'" in str(raised.value)
    assert [problem.path for problem in raised.value.problems] == ["rule.feedback_scal"]


def test_train_runs_a_spec_in_process_and_returns_its_metrics():
    metrics = api.train(digits_spec(), ["train.evaluate_test=true"])
    assert {"train_loss", "train_accuracy", "test_accuracy"} <= set(metrics)
    again = api.train(api.validate_spec(digits_spec(), ["train.evaluate_test=true"]))
    timing = {"epoch_seconds", "epoch_cpu_seconds", "samples_per_second"}
    assert {k: v for k, v in again.items() if k not in timing} == {
        k: v for k, v in metrics.items() if k not in timing
    }  # the same seed, the same run
    with pytest.raises(ValueError, match="overrides apply to a spec before validation"):
        api.train(api.validate_spec(digits_spec()), ["seed=2"])


# ------------------------------------------------------------------ the docs say it


def test_plugin_hooks_md_describes_every_check():
    from altlearn.testing.api_table import DOC

    text = DOC.read_text()
    for check in CHECKS:
        assert f"| `{check.name}` |" in text, check.name


def test_the_tutorials_one_line_conformance_test_passes(monkeypatch, tmp_path):
    """docs/writing-plugins.md's tests/test_contract.py, run against the tutorial's package as the
    page writes it (registered as if installed)."""
    import importlib
    import re
    import sys
    from pathlib import Path

    from altlearn.registry import registry as plugins

    page = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
    files = dict(re.findall(r"^\*\*`([^`]+)`\*\*\n\n```[a-z]*\n(.*?)^```", page.read_text(), re.M | re.S))
    for name in (
        "src/altlearn_readout/__init__.py",
        "src/altlearn_readout/rule.py",
        "src/altlearn_readout/plugin.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(files[name])
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    try:
        plugin = importlib.import_module("altlearn_readout.plugin")
        registry = plugins.build_registry(extra_plugins=[(plugin, "altlearn-readout", "0.1.0")])
        monkeypatch.setattr(plugins, "get_registry", lambda: registry)
        namespace: dict = {}
        exec(compile(files["tests/test_contract.py"], f"{page}#test_contract", "exec"), namespace)  # noqa: S102
        namespace["test_readout_follows_the_rule_contract"]()
        check_rule("readout", {"trainable_layers": 2})
    finally:
        for module in [m for m in sys.modules if m.startswith("altlearn_readout")]:
            del sys.modules[module]
