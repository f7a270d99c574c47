"""An optimizer's ``groups``: each group's options read as the optimizer's own, which parameters
it names (checked when the spec is validated), and torch's param groups built from them.

A group names parameters by a layer's path in the spec as written (``network.layers[3]``; a
``repeat: N`` layer's path takes all its copies, a block's path the whole block; with a named
architecture, the expanded list ``altlearn render`` shows) or by a part of the rule that
``Rule.parameter_parts(params)`` declares (ff's ``head``). The parameters no group names form the
first param group, with the optimizer's own options, even when it is empty: its lr is the one
logged, and ``optimizer.param_groups[i + 1]`` is always ``groups[i]``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

from altlearn.components.base import Params
from altlearn.errors import Problem, SpecError

#: what a group's ``params`` may name, in option descriptions
_SELECTORS = (
    "a layer's path in the spec as written ('network.layers[3]': all copies of a repeat) or a part "
    "of the rule (ff's 'head')"
)


class ParamGroup(Params):
    """One entry of an optimizer's ``groups``: which parameters, and the options they take."""

    params: list[str] = Field(min_length=1, description="the parameters: " + _SELECTORS)

    @model_validator(mode="before")
    @classmethod
    def _one_name_is_a_list(cls, data):
        if isinstance(data, dict) and isinstance(data.get("params"), str):
            return {**data, "params": [data["params"]]}
        return data

    def overrides(self) -> dict:
        """The options this group sets (those it leaves out follow the optimizer's)."""
        return {k: v for k, v in self.model_dump(exclude={"params"}).items() if v is not None}


_GROUP_MODELS: dict[type, type[ParamGroup]] = {}  # per optimizer Params class


def group_model(params_class: type[Params]) -> type[ParamGroup]:
    """A ParamGroup with every option of ``params_class`` as an optional field (same types)."""
    if params_class not in _GROUP_MODELS:
        # Any: create_model's keyword arguments also include its own (__base__, __config__, ...).
        fields: dict[str, Any] = {
            name: (_typed(field) | None, Field(None, description=field.description))
            for name, field in params_class.model_fields.items()
            if name not in ("groups", "fused")  # one kind of step per optimizer
        }
        _GROUP_MODELS[params_class] = create_model(
            f"{params_class.__qualname__}Group", __base__=ParamGroup, **fields
        )
    return _GROUP_MODELS[params_class]


def _typed(field: FieldInfo) -> Any:
    """A field's type with its constraints (pydantic keeps them apart from the bare annotation)."""
    if not field.metadata:
        return field.annotation
    # The tuple first, not Annotated[(a, *b)], which mypy's parser takes for 3.11-only syntax.
    arguments = (field.annotation, *field.metadata)
    return Annotated[arguments]


def parse_group(model: type[ParamGroup], values, index: int, scope) -> ParamGroup | None:
    if scope is not None:  # inside a spec: problems at optimizer.groups[i].<option>
        return scope.model(model, values, f"groups[{index}]", f"optimizer.groups[{index}]")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValueError(f"groups[{index}]: {exc}") from None


_LAYER = re.compile(r"network\.layers\[(\d+)\]")
_NESTED = re.compile(r"network\.layers\[(\d+)\]\..+")


def check_groups(v, network, layers, rule, optimizer) -> None:
    """Record a problem for each group entry that names nothing trainable, or parameters that an
    earlier entry already names. ``network`` is the spec's network built on the meta device."""
    taken: dict[Any, str] = {}  # expanded layer index or part name -> "groups[i]" that has it
    for index, group in enumerate(getattr(optimizer.params, "groups", None) or []):
        path = f"optimizer.groups[{index}].params"
        for selector in group["params"]:
            units, problem = _resolve(selector, network, layers, rule)
            clash = next((taken[u] for u in units if u in taken), None)
            if problem is None and clash == f"groups[{index}]":
                problem = f"{selector!r} names parameters this group already names"
            elif problem is None and clash is not None:
                problem = f"{selector!r} names parameters that {clash} already has: a parameter has one group"
            if problem:
                v.add(path, problem)
            taken.update({u: f"groups[{index}]" for u in units if u not in taken})


def _resolve(selector: str, network, layers, rule) -> tuple[list, str | None]:
    """(what ``selector`` names: expanded layer indices or the part's name, why it is wrong)."""
    match = _LAYER.fullmatch(selector)
    if match:
        trained = [i for i, layer in enumerate(network) if any(True for _ in layer.parameters())]
        indices = layer_indices(int(match[1]), layers)
        if indices and all(i in trained for i in indices):
            return indices, None
        if not indices:
            where = f"the network has {written_count(layers)} layers"
        else:
            where = f"its layer ({type(network[indices[0]]).__name__}) has no parameters"
        listed = sorted({_written(i, layers) for i in trained})
        return [], f"{selector!r}: {where}; the layers with parameters: " + ", ".join(
            f"network.layers[{i}]" for i in listed
        )
    nested = _NESTED.fullmatch(selector)
    if nested:
        return (
            [],
            f"{selector!r}: a group takes whole layers of network.layers; name network.layers[{nested[1]}]",
        )
    parts = parts_of(rule.component, rule.params)
    if selector in parts:
        return [selector], None
    return [], _not_a_part(selector, rule, parts, network, layers)


_LOOSE_LAYER = re.compile(r"(?:network\.)?layers(?:\[(\d+)\]|\.(\d+))")


def _not_a_part(selector: str, rule, parts: dict[str, str], network, layers) -> str:
    default = parts_of(rule.component, None)
    if selector in default:  # a part the rule has, but not with the options this spec gives it
        return (
            f"{selector!r}: rule {rule.type!r} has no {selector} with these options "
            f"({selector}: {default[selector]})"
        )
    loose = _LOOSE_LAYER.fullmatch(selector)
    if loose:  # network.layers.1 (how -s may write it) or layers[1]
        return f"{selector!r}: write a layer as network.layers[{loose[1] or loose[2]}]"
    named = "; ".join(f"{name}: {meaning}" for name, meaning in parts.items())
    trained = sorted(
        {_written(i, layers) for i, layer in enumerate(network) if any(True for _ in layer.parameters())}
    )
    listed = ", ".join(f"network.layers[{i}]" for i in trained)
    whose = (
        f"its parts: {named}"
        if parts
        else "it has no parts"
        if not default
        else "no parts with these options"
    )
    return f"{selector!r} is neither a layer with parameters ({listed}) nor a part of rule {rule.type!r} ({whose})"


def parts_of(rule_class, params) -> dict[str, str]:
    """The rule's parts under ``params`` (None: its default options; {} if those cannot be made)."""
    if params is None:
        try:
            params = rule_class.Params()
        except Exception:  # noqa: BLE001 - a plugin's Params with required options
            return {}
    try:
        return dict(rule_class.parameter_parts(params))
    except Exception:  # noqa: BLE001 - a plugin's bug: its parts are then unknown, not a crash
        return {}


def layer_indices(written: int, layers) -> list[int]:
    """The expanded indices of the layer written at ``written`` (every copy of a ``repeat``)."""
    origins = getattr(layers, "origins", None)
    if getattr(layers, "architecture", None) is not None or origins is None:
        return [written] if written < len(layers) else []
    return [i for i, (index, _, _) in enumerate(origins) if index == written]


def written_count(layers) -> int:
    origins = getattr(layers, "origins", None)
    if getattr(layers, "architecture", None) is not None or not origins:
        return len(layers)
    return origins[-1][0] + 1


def _written(expanded: int, layers) -> int:
    origins = getattr(layers, "origins", None)
    if getattr(layers, "architecture", None) is not None or origins is None:
        return expanded
    return origins[expanded][0]


def param_groups(rule, layers, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """torch param groups for ``rule``'s trained parameters: the ungrouped ones (the optimizer's
    options; possibly none), then one per entry of ``groups`` with its options. A group left
    without parameters in this run is a SpecError, never an option silently unused."""
    grouped: set[int] = set()
    out = []
    for index, group in enumerate(groups):
        tensors = []
        for selector in group["params"]:
            found = [
                p
                for module in _modules(rule, layers, selector)
                for p in module.parameters()
                if p.requires_grad
            ]
            fresh = [p for p in found if id(p) not in grouped]
            if not fresh:
                why = (
                    "has no trained parameters" if not found else "names only parameters of an earlier group"
                )
                raise SpecError(
                    [Problem(f"optimizer.groups[{index}].params", f"{selector!r} {why} in this run")]
                )
            tensors += fresh
            grouped.update(id(p) for p in fresh)
        out.append({**{k: v for k, v in group.items() if k != "params"}, "params": tensors})
    rest = [p for p in rule.parameters() if p.requires_grad and id(p) not in grouped]
    return [{"params": rest}, *out]


def _modules(rule, layers, selector: str) -> list:
    from torch import nn

    match = _LAYER.fullmatch(selector)
    if match:
        return [rule.network[i] for i in layer_indices(int(match[1]), layers) if i < len(rule.network)]
    if selector not in parts_of(type(rule), rule.params):
        return []
    module = getattr(rule, selector, None)
    if not isinstance(module, nn.Module):
        from altlearn.errors import RuleContractError

        raise RuleContractError(
            f"rule {type(rule).__name__} declares a part {selector!r} in parameter_parts, but its "
            f"attribute {selector!r} is {type(module).__name__}, not a torch.nn.Module"
        )
    return [module]


def group_lr_hint(groups: list[dict[str, Any]]) -> str:
    """For a diverged run's message: the group with the largest lr of its own, which may be the
    one that diverged (empty when no group sets an lr)."""
    own = [(group["lr"], index) for index, group in enumerate(groups) if "lr" in group]
    if not own:
        return ""
    lr, index = max(own)
    return f"; optimizer.groups[{index}] sets its own lr, {lr:.3g}: lower it as well"
