"""Which parameters an optimizer's ``groups`` name, checked when the spec is validated and
resolved into torch's param groups when the trainer builds the optimizer.

A group names parameters by a layer's path as validation reports it (``network.layers[3]``, in the
expanded list ``altlearn render`` shows; a block's path takes the whole block) or by a part of the
rule that the rule class declares in ``parameter_parts`` (ff's ``head``). The parameters no group
names form the first param group, with the optimizer's own options: its lr is the one logged.
"""

from __future__ import annotations

import re
from typing import Any

from altlearn.spec_files import Problem, SpecError

_LAYER = re.compile(r"network\.layers\[(\d+)\]")


def check_groups(v, network, rule, optimizer) -> None:
    """Record a problem for each group entry that names nothing trainable, or that another names.

    ``network`` is the spec's network built on the meta device, ``rule`` and ``optimizer`` blocks.
    """
    seen: dict[str, int] = {}
    for index, group in enumerate(getattr(optimizer.params, "groups", None) or []):
        for selector in group["params"]:
            path = f"optimizer.groups[{index}].params"
            problem = _selector_problem(selector, network, rule)
            if problem is None and selector in seen:
                problem = f"{selector!r} is already in groups[{seen[selector]}]: a parameter has one group"
            if problem:
                v.add(path, problem)
            seen.setdefault(selector, index)


def _selector_problem(selector: str, network, rule) -> str | None:
    match = _LAYER.fullmatch(selector)
    if match:
        index = int(match[1])
        trained = _layers_with_parameters(network)
        if index < len(network) and index in trained:
            return None
        where = (
            f"layer {index} ({type(network[index]).__name__}) has no parameters"
            if index < len(network)
            else f"the network has {len(network)} layers"
        )
        return f"{where}; the layers with parameters: {', '.join(f'network.layers[{i}]' for i in trained)}"
    parts = getattr(rule.component, "parameter_parts", {})
    if selector in parts:
        return None
    named = "; ".join(f"{name}: {meaning}" for name, meaning in parts.items())
    return (
        f"{selector!r} is neither a layer's path (network.layers[N]) nor a part of rule {rule.type!r} "
        f"({'its parts: ' + named if parts else 'it declares no parts'})"
    )


def _layers_with_parameters(network) -> list[int]:
    return [i for i, layer in enumerate(network) if any(True for _ in layer.parameters())]


def param_groups(rule, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """torch param groups for ``rule``'s trained parameters: the ungrouped ones (the optimizer's
    options), then one per entry of ``groups`` with its options. A part that has no parameters in
    this configuration (ff's head without a softmax head) is a SpecError."""
    grouped: set[int] = set()
    out = []
    for index, group in enumerate(groups):
        tensors = []
        for selector in group["params"]:
            module = _module(rule, selector)
            found = [] if module is None else [p for p in module.parameters() if p.requires_grad]
            if not found:
                raise SpecError(
                    [
                        Problem(
                            f"optimizer.groups[{index}].params",
                            f"{selector!r} has no trained parameters in this run",
                        )
                    ]
                )
            tensors += [p for p in found if id(p) not in grouped]
            grouped.update(id(p) for p in found)
        out.append({**{k: v for k, v in group.items() if k != "params"}, "params": tensors})
    rest = [p for p in rule.parameters() if p.requires_grad and id(p) not in grouped]
    return ([{"params": rest}] if rest else []) + out


def _module(rule, selector: str):
    match = _LAYER.fullmatch(selector)
    if match:
        index = int(match[1])
        return rule.network[index] if index < len(rule.network) else None
    return getattr(rule, selector, None) if selector in getattr(rule, "parameter_parts", {}) else None
