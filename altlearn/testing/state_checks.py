"""Checks of what outlives a step: extra state, checkpoints, the alignment diagnostic's extra step,
and what ``check_network`` says about networks (on the meta device, as validation calls it).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch
from torch import nn

from altlearn.rules.base import Rule
from altlearn.testing.harness import (
    BATCH,
    SEED,
    Case,
    CheckFailed,
    call_step,
    first_difference,
    make_optimizer,
    random_state,
    same,
    state_of,
    through_checkpoint,
    train_step,
)
from altlearn.training.alignment import alignment

STATE_ADVICE = (
    "return every value a step changes (counters, generator states: "
    "altlearn.api.DeviceGenerators.state()) from get_extra_state and restore it in set_extra_state"
)


def extra_state_round_trip(case: Case) -> str | None:
    """``get_extra_state`` survives a checkpoint, and ``set_extra_state`` restores what it gave."""
    with random_state(case.device):
        rule = case.build()
        rule.train()
        optimizer = make_optimizer(rule)
        for index in range(2):
            train_step(rule, optimizer, *case.batch(index))
        state = copy.deepcopy(rule.get_extra_state())
        saved = through_checkpoint(state, "get_extra_state()'s value")
        fresh = case.build()
        fresh.set_extra_state(saved)
        if not same(fresh.get_extra_state(), state):
            raise CheckFailed(f"set_extra_state(get_extra_state()) gives another extra state: {STATE_ADVICE}")
        whole = through_checkpoint(state_of(rule), "the rule's state_dict()")
        try:
            case.build().load_state_dict(whole)
        except Exception as exc:  # noqa: BLE001 - the rule's code
            raise CheckFailed(
                f"a fresh rule cannot load the state_dict of a trained one ({type(exc).__name__}: "
                f"{exc}): register the same buffers and submodules whatever the training did"
            ) from exc
    return None


def _steps(rule: Rule, optimizer: torch.optim.Optimizer, case: Case, indices: range) -> list[Any]:
    return [train_step(rule, optimizer, *case.batch(i)).grads for i in indices]


def _checkpoint(rule: Rule, optimizer: torch.optim.Optimizer, device: torch.device) -> dict[str, Any]:
    """What the trainer saves of a rule (and what it needs to continue), through torch.save."""
    state = {"rule": rule.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
    if device.type == "cuda":  # dropout on the GPU draws from the device's stream
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return through_checkpoint(copy.deepcopy(state), "the checkpoint")  # type: ignore[no-any-return]


def _restored(case: Case, checkpoint: dict[str, Any]) -> tuple[Rule, torch.optim.Optimizer]:
    """A fresh rule and optimizer that go on from ``checkpoint``, as ``altlearn resume`` does."""
    rule = case.build()
    rule.train()
    optimizer = make_optimizer(rule)
    rule.load_state_dict(checkpoint["rule"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"])
    if "cuda_rng" in checkpoint:
        torch.cuda.set_rng_state(checkpoint["cuda_rng"], case.device)
    return rule, optimizer


def _compare(expected: list[Any], got: list[Any], after: str, advice: str, first_step: int) -> None:
    for offset, (a, b) in enumerate(zip(expected, got)):
        name = first_difference(a, b)
        if name is not None:
            raise CheckFailed(f"{after}, step {first_step + offset}'s update of {name} differs: {advice}")


def save_reload_continue(case: Case) -> str | None:
    """Steps after saving, reloading into a fresh rule and optimizer, match uninterrupted ones."""
    with random_state(case.device):
        rule = case.build()
        rule.train()
        optimizer = make_optimizer(rule)
        _steps(rule, optimizer, case, range(2))
        checkpoint = _checkpoint(rule, optimizer, case.device)
        expected, end = _steps(rule, optimizer, case, range(2, 4)), state_of(rule)
        rule, optimizer = _restored(case, checkpoint)
        got = _steps(rule, optimizer, case, range(2, 4))
    advice = f"the checkpoint misses state a step depends on; {STATE_ADVICE}"
    _compare(expected, got, "after reloading a checkpoint", advice, 3)
    key = first_difference(end, state_of(rule))
    if key is not None:
        raise CheckFailed(f"after reloading a checkpoint and two steps, {key} differs: {advice}")
    return None


def _train(case: Case, measure: bool) -> tuple[list[Any], dict[str, Any], Any]:
    """Four steps with a reload after the second; ``measure``: the alignment diagnostic before the
    second step and right after the reload (restored generators not yet made, the hard case)."""
    with random_state(case.device):
        rule = case.build()
        rule.train()
        optimizer = make_optimizer(rule)
        grads = _steps(rule, optimizer, case, range(1))
        if measure:
            alignment(rule, *case.batch(1))
        grads += _steps(rule, optimizer, case, range(1, 2))
        rule, optimizer = _restored(case, _checkpoint(rule, optimizer, case.device))
        if measure:
            alignment(rule, *case.batch(2))
        grads += _steps(rule, optimizer, case, range(2, 4))
        return grads, state_of(rule), torch.get_rng_state()


def alignment_leaves_training_alone(case: Case) -> str | None:
    """The alignment diagnostic's extra ``train_step`` changes nothing the training goes on with."""
    if case.build().gradient_rule() is None:
        return "not checked: gradient_rule() is None, so the diagnostic never runs the rule's step"
    (expected, end, rng), (got, measured_end, measured_rng) = _train(case, False), _train(case, True)
    advice = (
        "the diagnostic puts back .grad, the global random state and get_extra_state, nothing "
        f"else; {STATE_ADVICE}, and keep buffers for what a step reads, not what it changes"
    )
    _compare(expected, got, "with the alignment diagnostic on", advice, 1)
    key = first_difference(end, measured_end)
    if key is not None:
        raise CheckFailed(f"with the alignment diagnostic on, {key} ends differently: {advice}")
    if not same(rng, measured_rng):
        raise CheckFailed("with the alignment diagnostic on, the global random stream ends elsewhere")
    return None


class ProbeGain(nn.Module):
    """A layer no rule knows: one trainable scalar gain. A rule trains it or refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def _probed(network: nn.Sequential) -> tuple[nn.Sequential, int]:
    """``network`` with a :class:`ProbeGain` after its first activation (after its first layer if
    none is found), and the probe's index."""
    modules = list(copy.deepcopy(network))
    trainable = [i for i, m in enumerate(modules) if any(True for _ in m.parameters())]
    after = next((i for i in range(trainable[0] + 1 if trainable else 0, len(modules))
                  if not any(True for _ in modules[i].parameters())), 0)  # fmt: skip
    at = after + 1
    return nn.Sequential(*modules[:at], ProbeGain(), *modules[at:]), at


def _problems(case: Case, network: nn.Sequential) -> list[tuple[Any, str]]:
    on_meta = copy.deepcopy(network).to("meta")
    try:
        found = list(case.rule_class.check_network(on_meta, case.params))
    except Exception as exc:  # noqa: BLE001 - the rule's code
        raise CheckFailed(
            f"check_network raised {type(exc).__name__}: {exc} on a meta-device network (validation "
            "builds it there): inspect modules and shapes, do not compute"
        ) from exc
    modules = dict(network.named_modules())
    for item in found:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str) and item[1]):
            raise CheckFailed(f"check_network returned {item!r}: return (layer key or None, message) pairs")
        key, message = item
        if key is not None and str(key) not in modules:
            raise CheckFailed(f"check_network keyed a problem by {key!r}, which names no layer: {message}")
        _check_message(case, message)
    return found


def _check_message(case: Case, message: str) -> None:
    names = ["rule", case.rule_class.__name__, *([case.registered_name] if case.registered_name else [])]
    if re.match("|".join(rf"{re.escape(name)}(?![\w.-])" for name in names), message, re.IGNORECASE):
        raise CheckFailed(
            f"check_network's message {message!r} names the rule: validation prefixes it with "
            '"rule \'NAME\': ", so write what is wrong ("cannot train ...")'
        )


def _validates(case: Case) -> None:
    """A spec with the rule by its registered name validates (validation calls check_network on
    the meta device and prefixes its messages); only for the default network, written as a spec."""
    if case.registered_name is None or case.spec_layers is None:
        return
    from altlearn.api import SpecError, validate_spec

    raw = {
        "name": "altlearn-testing",
        "seed": SEED,
        "data": {"type": "digits", "batch_size": BATCH},
        "network": {"layers": case.spec_layers},
        "rule": {"type": case.registered_name, **case.options},
    }
    try:
        validate_spec(raw)
    except SpecError as exc:
        raise CheckFailed(f"a spec with the rule and the default network does not validate: {exc}") from exc


def check_network_on_meta(case: Case) -> str | None:
    """``check_network`` runs on the meta device, accepts the network the checks train, and
    refuses a layer the rule does not train, keyed by that layer."""
    problems = _problems(case, case.network)
    if problems:
        raise CheckFailed(f"check_network refuses the network under test: {problems[0][1]}")
    _validates(case)
    probed, at = _probed(case.network)
    problems = _problems(case, probed)
    if any(str(key) == str(at) or str(key).startswith(f"{at}.") for key, _ in problems):
        return None
    if problems:
        raise CheckFailed(
            f"check_network refused a network with a layer it does not know at index {at}, but "
            f"keyed no problem by that layer ({problems[0]!r}): key each problem by its layer"
        )
    rule = case.build(probed)
    rule.train()
    for p in rule.parameters():
        p.grad = None
    call_step(rule, *case.batch())
    gain = rule.network[at].gain
    if gain.requires_grad and gain.grad is None:
        raise CheckFailed(
            f"check_network accepted a layer it does not know ({ProbeGain.__name__} at index {at}) "
            "and train_step left its parameter untrained: refuse what the rule cannot train, as "
            f"({at}, 'cannot train ...'), instead of training around it"
        )
    return None
