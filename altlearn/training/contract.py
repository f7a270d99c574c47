"""What the loop needs from a rule, checked where a broken rule would otherwise fail obscurely.

A rule (often a new plugin) that breaks the contract of docs/plugin-hooks.md would show up as an
error somewhere later in the loop, or not at all (an optimizer that changes nothing). These checks
run once, on the first step or when the optimizer is built, and name the rule and the fix.
"""

from __future__ import annotations

from typing import Any

import torch

from altlearn.errors import RuleContractError
from altlearn.rules.base import Rule
from altlearn.spec.model import Spec
from altlearn.spec.stopping import CLIP_METRIC_NAMES

STEP_CONTRACT = (
    "train_step must return a dict of scalar tensors with at least 'loss', e.g. "
    "{'loss': loss.detach()}; see docs/plugin-hooks.md"
)


def _rule_name(spec: Spec) -> str:
    return f"rule {spec.rule.type!r} (package {spec.rule.package})"


def train_metric_name(key: str) -> str:
    """The epoch's name for a metric of ``train_step``: loss and accuracy are also evaluated on
    the validation and test sets, so their training values get a ``train_`` prefix."""
    return f"train_{key}" if key in ("loss", "accuracy") else key


def check_own_optimizer(spec: Spec, optimizer: Any) -> torch.optim.Optimizer:
    """A rule that brings its own update must hand the loop a real optimizer to step: that one."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise RuleContractError(
            f"{_rule_name(spec)} overrides make_optimizer "
            f"but it returned {type(optimizer).__name__}, not a torch.optim.Optimizer"
        )
    return optimizer


def check_step_contract(
    spec: Spec, rule: Rule, step_metrics: Any, *, clipped: bool, owns_update: bool
) -> None:
    """After the first step: the metrics are a dict of scalar tensors with a 'loss', none of them
    named like train.clip_grad_norm's own (``clipped``), and the step left an update to apply."""
    name = _rule_name(spec)
    if not isinstance(step_metrics, dict):
        raise RuleContractError(f"{name}: train_step returned {type(step_metrics).__name__}; {STEP_CONTRACT}")
    taken = [key for key in CLIP_METRIC_NAMES if key in step_metrics] if clipped else []
    if taken:
        raise RuleContractError(
            f"{name}: train_step returns {', '.join(map(repr, taken))}, which train.clip_grad_norm "
            "logs itself; give the rule's metric another name"
        )
    if "loss" not in step_metrics:
        raise RuleContractError(
            f"{name}: train_step returned no 'loss' (keys: "
            f"{', '.join(map(str, step_metrics)) or 'none'}); {STEP_CONTRACT}"
        )
    for key, value in step_metrics.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            what = (
                f"a tensor of shape {tuple(value.shape)}"
                if isinstance(value, torch.Tensor)
                else f"a {type(value).__name__}"
            )
            raise RuleContractError(
                f"{name}: train_step's {key!r} is {what}, not a scalar tensor (average over the "
                f"batch; never .item() in a step); {STEP_CONTRACT}"
            )
    # a rule with its own optimizer may keep its update elsewhere than .grad
    if not owns_update and all(p.grad is None for p in rule.parameters() if p.requires_grad):
        raise RuleContractError(
            f"{name}: train_step filled no parameter's .grad, so the optimizer would change "
            "nothing; compute the update into .grad (e.g. loss.backward() or p.grad = ...)"
        )
