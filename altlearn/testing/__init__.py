"""Check a learning rule against the rule contract: the plugin author's test kit (a public API,
kept stable like :mod:`altlearn.api`).

One test runs every check and fails on the first one the rule breaks::

    from altlearn.testing import check_rule

    def test_my_rule_follows_the_rule_contract():
        check_rule("my_rule")                    # or the class: check_rule(MyRule, {"option": 2})

or one pytest test per check, each named after it, skipped ones with the reason::

    from altlearn.testing import parametrize_rule_checks

    @parametrize_rule_checks("my_rule", ("my_rule", {"option": 2}))
    def test_rule_contract(check):
        check()

The checks train a few steps of a small MLP on digits-shaped batches (64 inputs as (1, 8, 8), 10
classes), or of the network given; each takes milliseconds. :data:`CHECKS` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from altlearn.rules.base import Rule
from altlearn.testing import optional_checks, state_checks, step_checks
from altlearn.testing.harness import (
    INPUT_SHAPE,
    NUM_CLASSES,
    SEED,
    Case,
    CheckFailed,
    CheckSkipped,
    build_layers,
    default_layers,
)

__all__ = [
    "CHECKS",
    "Check",
    "CheckFailed",
    "CheckResult",
    "RuleCheck",
    "check_rule",
    "parametrize_rule_checks",
    "rule_checks",
]

#: a rule as the checks take it: its registered name or its class, optionally with its options
RuleLike = str | type[Rule]
RuleWithOptions = RuleLike | tuple[RuleLike, Mapping[str, Any]]


@dataclass(frozen=True)
class Check:
    """One check: its name (a test id), what a rule must do to pass it, and its function."""

    name: str
    what: str
    run: Callable[[Case], str | None]
    optional: bool = False


#: every check, in the order :func:`check_rule` runs them; the optional ones last
CHECKS: tuple[Check, ...] = (
    Check(
        "fills_grads",
        "train_step fills .grad of every trained parameter and nothing else",
        step_checks.fills_grads,
    ),
    Check(
        "scalar_metrics",
        "train_step and eval_step return scalar tensors with a loss, and never sync with the host",
        step_checks.scalar_metrics,
    ),
    Check(
        "same_seed_same_update",
        "two rules built alike (network, options, seed) make the same updates, bit for bit",
        step_checks.same_seed_same_update,
    ),
    Check(
        "own_random_streams",
        "train_step draws nothing from torch's global random stream",
        step_checks.own_random_streams,
    ),
    Check(
        "extra_state_round_trip",
        "get_extra_state goes through a checkpoint, and set_extra_state restores it",
        state_checks.extra_state_round_trip,
    ),
    Check(
        "save_reload_continue",
        "saving, reloading into a fresh rule and continuing matches training on, bit for bit",
        state_checks.save_reload_continue,
    ),
    Check(
        "alignment_leaves_training_alone",
        "the alignment diagnostic's extra train_step changes nothing training goes on with",
        state_checks.alignment_leaves_training_alone,
    ),
    Check(
        "check_network_on_meta",
        "check_network runs on the meta device and refuses what the rule cannot train, keyed by layer",
        state_checks.check_network_on_meta,
    ),
    Check(
        "moves_to_device",
        "rule.to(device) moves every tensor the rule keeps",
        step_checks.moves_to_device,
    ),
    Check(
        "bf16_autocast",
        "under bf16 autocast the update is float32 and close to the float32 one (if declared)",
        optional_checks.bf16_autocast,
        optional=True,
    ),
    Check(
        "compiles",
        "a torch.compile'd train_step gives the eager updates (if declared)",
        optional_checks.compiles,
        optional=True,
    ),
    Check(
        "cuda",
        "the step checks pass on CUDA, no step syncing with the host (where CUDA is)",
        optional_checks.cuda,
        optional=True,
    ),
)


@dataclass(frozen=True)
class CheckResult:
    """How one check went: ``status`` is "passed" or "skipped"; ``note`` says what was not checked."""

    name: str
    status: str
    note: str | None = None


def make_case(
    rule: RuleLike,
    options: Mapping[str, Any] | None = None,
    network: nn.Sequential | None = None,
    input_shape: Sequence[int] = INPUT_SHAPE,
    num_classes: int = NUM_CLASSES,
) -> Case:
    """The rule under test, its options validated, on ``network`` or the default MLP."""
    name = rule if isinstance(rule, str) else None
    rule_class = _rule_class(rule)
    options = dict(options or {})
    params = rule_class.Params(**options)
    shape = tuple(input_shape)
    spec_layers = None
    if network is None:
        layers = default_layers(rule_class, num_classes)
        network = build_layers(layers, shape)
        spec_layers = layers if (shape, num_classes) == (INPUT_SHAPE, NUM_CLASSES) else None
    label = f"rule {name!r}" if name else f"rule class {rule_class.__qualname__}"
    return Case(rule_class, params, label, network, name, options, spec_layers, shape, num_classes)


def _rule_class(rule: RuleLike) -> type[Rule]:
    if isinstance(rule, str):
        from altlearn.registry.registry import get_registry

        registry = get_registry()
        try:  # a plain or a qualified (package:name) name, as a spec writes it
            rule = registry.load("rule", rule)
        except KeyError:
            known = ", ".join(name for name, _ in registry.listing("rule"))
            raise ValueError(
                f"no rule {rule!r} is registered (is its package installed?); rules: {known}"
            ) from None
    if not (isinstance(rule, type) and issubclass(rule, Rule)):
        raise TypeError(f"{rule!r} is not a subclass of altlearn.api.Rule")
    return rule


def run_check(check: Check, case: Case) -> CheckResult:
    """Run one check; a failure raises :class:`CheckFailed` (an AssertionError) naming it."""
    try:
        with torch.random.fork_rng(devices=[]):  # a rule that draws globally leaves no trace
            torch.manual_seed(SEED)
            note = check.run(case)
    except CheckSkipped as skipped:
        return CheckResult(check.name, "skipped", str(skipped))
    except CheckFailed as failed:
        raise CheckFailed(f"{case.label} fails check {check.name!r} ({check.what}): {failed}") from failed
    except Exception as exc:  # the rule's code raised: the same report, the cause chained
        raise CheckFailed(
            f"{case.label} fails check {check.name!r} ({check.what}): {type(exc).__name__}: {exc}"
        ) from exc
    return CheckResult(check.name, "passed", note)


def check_rule(
    rule: RuleLike,
    options: Mapping[str, Any] | None = None,
    network: nn.Sequential | None = None,
    *,
    input_shape: Sequence[int] = INPUT_SHAPE,
    num_classes: int = NUM_CLASSES,
) -> list[CheckResult]:
    """Run every check on ``rule`` (a registered name, or a Rule subclass) with ``options`` (as a
    spec writes them), on ``network`` (an ``nn.Sequential`` taking ``input_shape`` examples to
    ``num_classes`` scores) or the default MLP. Raises :class:`CheckFailed`, an AssertionError
    naming the first check the rule fails and what to change; returns every check's result."""
    case = make_case(rule, options, network, input_shape, num_classes)
    return [run_check(check, case) for check in CHECKS]


class RuleCheck:
    """One check of one rule, for pytest: calling it runs the check (a skip becomes
    ``pytest.skip`` with the reason). Its ``id`` names the rule and the check."""

    def __init__(
        self, check: Check, rule: RuleLike, options: Mapping[str, Any] | None = None, **case: Any
    ) -> None:
        self.check, self.rule, self.options, self.case = check, rule, dict(options or {}), case
        name = rule if isinstance(rule, str) else rule.__qualname__
        suffix = "-" + ",".join(f"{k}={v}" for k, v in self.options.items()) if self.options else ""
        self.id = f"{name}{suffix}-{check.name}"

    def __call__(self) -> CheckResult:
        result = run_check(self.check, make_case(self.rule, self.options, **self.case))
        if result.status == "skipped":
            import pytest

            pytest.skip(result.note or "")
        return result

    def __repr__(self) -> str:
        return f"RuleCheck({self.id})"


def rule_checks(
    rule: RuleLike,
    options: Mapping[str, Any] | None = None,
    network: nn.Sequential | None = None,
    **case: Any,
) -> list[RuleCheck]:
    """Every check of ``rule`` as a :class:`RuleCheck` (the arguments as :func:`check_rule`'s)."""
    return [RuleCheck(check, rule, options, network=network, **case) for check in CHECKS]


def parametrize_rule_checks(*rules: RuleWithOptions) -> Any:
    """A ``pytest.mark.parametrize("check", ...)`` over every check of every rule given (a name,
    a class, or ``(rule, options)``): one test per rule and check, named ``<rule>-<check>``."""
    import pytest

    checks = []
    for item in rules:
        rule, options = item if isinstance(item, tuple) else (item, None)
        checks += rule_checks(rule, options)
    return pytest.mark.parametrize("check", checks, ids=[check.id for check in checks])
