"""The spec's network section: its layer blocks, and what only building the network can find
(shape mismatches, an output that is not one score per class, layers the rule cannot train).

The network is built on torch's meta device, which allocates nothing: these checks are free.
"""

from __future__ import annotations

from typing import Any

from altlearn import feasibility
from altlearn.component_ref import Block
from altlearn.validator import Validator, did_you_mean, join, short


def network_layers(v: Validator, network: Any) -> list[Block] | None:
    """The validated ``network.layers`` blocks, or None (problems recorded) if any is wrong."""
    if network is None:
        v.add("network", "missing; give network.layers, a list of {type: ...} layers")
        return None
    if not isinstance(network, dict):
        v.add("network", f"expected a mapping with 'layers', got {short(network)}")
        return None
    for key in network:
        if key != "layers":
            v.add(
                join("network", key),
                f"unknown key; {did_you_mean(key, ['layers'])}the network section has only 'layers'",
            )
    items = network.get("layers")
    if not isinstance(items, list) or not items:
        v.add("network.layers", f"expected a non-empty list of layers, got {short(items)}")
        return None
    if len(items) > feasibility.MAX_LAYERS:
        v.add("network.layers", f"{len(items)} layers; altlearn takes at most {feasibility.MAX_LAYERS}")
        return None
    blocks = [v.block(item, f"network.layers[{index}]", "layer")[0] for index, item in enumerate(items)]
    return blocks if all(b is not None for b in blocks) else None


def check_network(v: Validator, data: Block, layers: list[Block], rule: Block, data_options=None) -> None:
    """Build the network on the meta device: catches shape errors and rule restrictions for free."""
    from altlearn.network import NetworkError, build_network

    try:
        info = data.component.info(data.params)
    except Exception as exc:  # noqa: BLE001 - a plugin's data set; report, do not crash
        v.add("data", f"cannot describe data set {data.type!r}: {exc}")
        return
    try:
        network, out_shape = build_network(layers, info.input_shape, device="meta")
    except NetworkError as exc:
        v.add(f"network.layers[{exc.index}]", str(exc))
        return
    if getattr(rule.component, "network_outputs_scores", True) and out_shape != (info.num_classes,):
        v.add(
            "network.layers",
            f"the last layer must output {info.num_classes} class scores for "
            f"{data.type}, but the network outputs shape {out_shape}",
        )
    if data_options is not None:  # memory bounds: a width of 10**12 is a valid count, not a network
        v.problems += feasibility.network_problems(network, info.input_shape, data_options)
    _rule_restrictions(v, network, rule)


def _rule_restrictions(v: Validator, network: Any, rule: Block) -> None:
    from altlearn.network import yaml_path

    try:
        found = [(index, message) for index, message in rule.component.check_network(network, rule.params)]
    except Exception as exc:  # noqa: BLE001 - a plugin's bug: name it, do not crash validation
        v.add(
            "rule.type",
            f"rule {rule.type!r} (package {rule.package}) failed to check the network: "
            f"{type(exc).__name__}: {exc} (check_network must return [(layer key or None, "
            "message), ...] and must not compute on the meta-device network)",
        )
        return
    for index, message in found:  # index: a layer key (an int, or a nested layer's module path)
        path = "network" if index is None else yaml_path(index)
        v.add(path, f"rule {rule.type!r}: {message}")
