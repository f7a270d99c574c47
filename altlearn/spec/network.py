"""The spec's network section: its layer blocks (written out, or a named architecture's), and what
only building the network can find (shape mismatches, an output that is not one score per class,
layers the rule cannot train).

The network is built on torch's meta device, which allocates nothing: these checks are free.

Layers are counted after expansion: a block with ``repeat: N`` stands for N layers, and a named
architecture for the layers it expands to, so module paths, the resolved spec (``altlearn render``)
and metric names all count the expanded list. Errors found by building are reported at the path
as written, with the copy (or the architecture's expanded layer) they concern.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from altlearn.components.base import DataInfo
from altlearn.components.ref import Block, BlockList
from altlearn.components.validator import Validator
from altlearn.spec import feasibility
from altlearn.text import did_you_mean, join, short

if TYPE_CHECKING:  # torch loads only when a network is built
    from torch import nn

    from altlearn.spec.model import DataOptions


def network_layers(v: Validator, network: Any, info: DataInfo | None) -> BlockList | None:
    """The validated layer blocks of the network section, or None (problems recorded).

    ``info`` describes the data (None when the data section is wrong): an architecture needs it.
    """
    if network is None:
        v.add("network", "missing; give network.layers (a list of {type: ...} layers) or network.type")
        return None
    if isinstance(network, str):  # a named architecture with its defaults: `network: lenet5`
        network = {"type": network}
    if not isinstance(network, dict):
        v.add(
            "network",
            f"expected an architecture's name or a mapping with 'layers' or 'type', got {short(network)}",
        )
        return None
    if "type" in network:
        return _architecture(v, network, info)
    for key in network:
        if key != "layers":
            v.add(
                join("network", key),
                f"unknown key; {did_you_mean(key, ['layers', 'type'])}the network section has 'layers' "
                "(written out) or 'type' (a named architecture) and its options",
            )
    return v.block_list(network.get("layers"), "network.layers", "layer")


def _architecture(v: Validator, network: dict[str, Any], info: DataInfo | None) -> BlockList | None:
    if "layers" in network:
        v.add("network.layers", "give either layers or a named architecture (type), not both")
        return None
    block, _ = v.block(network, "network", "network")
    if block is None or info is None:
        return None
    try:
        raw = block.component.layers(block.params, info)
    except ValueError as exc:  # the architecture refuses this data (documented)
        v.add("network", f"{block.type} cannot be built for this data: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - a plugin's bug: name it, do not crash validation
        v.add("network.type", f"{block.type} (package {block.package}) failed to expand: {exc!r}")
        return None
    inner = Validator(v.registry)
    layers = inner.block_list(raw, "layers", "layer")
    for problem in inner.problems:
        v.add("network", f"{block.type} (package {block.package}) expands to an invalid {problem}")
    v.packages.update(inner.packages)
    if layers is not None:
        layers.architecture = block  # for messages and the resolved spec's note
    return layers


def data_info(v: Validator, data: Block) -> DataInfo | None:
    """The data set's description, checked: an example shape (C, H, W) or (D,), >= 1 class."""
    try:
        info: DataInfo = data.component.info(data.params)
    except Exception as exc:  # noqa: BLE001 - a plugin's data set; report, do not crash
        v.add("data", f"cannot describe data set {data.type!r}: {exc}")
        return None
    from altlearn.data.check import describe_problem

    problem = describe_problem(info)
    if problem:
        v.add("data", f"data set {data.type!r} (package {data.package}) {problem}")
        return None
    return info


def check_network(
    v: Validator,
    info: DataInfo,
    data: Block,
    layers: BlockList,
    rule: Block,
    data_options: DataOptions | None = None,
) -> nn.Sequential | None:
    """Build the network on the meta device: catches shape errors and rule restrictions for free.
    Returns that network, or None when it cannot be built."""
    from altlearn.nn.network import NetworkError, build_network

    try:
        network, out_shape = build_network(layers, info.input_shape, device="meta")
    except NetworkError as exc:
        path, note = written_path(layers, exc.index, exc.nested)
        v.add(path, f"{exc}{note}")
        return None
    if getattr(rule.component, "network_outputs_scores", True) and out_shape != (info.num_classes,):
        v.add(
            "network" if getattr(layers, "architecture", None) else "network.layers",
            f"the last layer must output {info.num_classes} class scores for "
            f"{data.type}, but the network outputs shape {out_shape}",
        )
    if data_options is not None:  # memory bounds: a width of 10**12 is a valid count, not a network
        for problem in feasibility.network_problems(network, info.input_shape, data_options):
            index = re.fullmatch(r"network\.layers\[(\d+)\]", problem.path)
            path, note = written_path(layers, int(index[1])) if index else (problem.path, "")
            v.add(path, problem.message + note)
    _rule_restrictions(v, network, layers, rule)
    return network


def _rule_restrictions(v: Validator, network: nn.Sequential, layers: BlockList, rule: Block) -> None:
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
    for key, message in found:  # key: a layer index, or a nested layer's module path ("3.body.1")
        path, note = ("network", "") if key is None else written_path(layers, *module_location(key))
        v.add(path, f"rule {rule.type!r}: {message}{note}")


def module_location(key: int | str) -> tuple[int, tuple[str | int, ...]]:
    """A module path (``"3.body.1.shortcut.0"``) -> (top-level index, YAML keys below it), the
    mapping :func:`altlearn.nn.network.yaml_path` uses, with a shortcut's norm as ``shortcut_norm``."""
    parts = str(key).split(".")
    nested: list[str | int] = []
    position = 1
    while position < len(parts):
        part, following = parts[position], parts[position + 1 : position + 2]
        if part == "body" and following:
            nested += ["layers", int(following[0])]
            position += 2
        elif part == "shortcut":
            nested.append("shortcut_norm" if following == ["1"] else "shortcut")
            position += 2
        else:
            nested.append({"post": "activation"}.get(part, part))
            position += 1
    return int(parts[0]), tuple(nested)


def written_path(layers: list[Block], index: int, nested: tuple[str | int, ...] = ()) -> tuple[str, str]:
    """(the YAML path as written, a note naming the repeated copy or expanded layer) of the layer
    at ``index`` of the expanded list, or of ``nested`` keys inside it."""
    architecture = getattr(layers, "architecture", None)
    if architecture:
        expanded = _walk(layers, index, nested, "layers", expand=True)[0]
        return "network", f" (in {architecture.type}'s layer {expanded}; `altlearn render` shows them)"
    path, notes = _walk(layers, index, nested, "network.layers")
    return path, f" ({', '.join(notes)})" if notes else ""


def _walk(
    blocks: list[Block], index: int, nested: tuple[str | int, ...], path: str, expand: bool = False
) -> tuple[str, list[str]]:
    origins = getattr(blocks, "origins", None)
    written, copy, count = (index, 0, 1) if expand or origins is None else origins[index]
    path = f"{path}[{written}]"
    notes = [f"copy {copy + 1} of {count} of {path}'s repeat"] if count > 1 else []
    inner = getattr(blocks[index].params, "layers", None)
    if len(nested) >= 2 and nested[0] == "layers" and isinstance(nested[1], int) and isinstance(inner, list):
        deeper, more = _walk(inner, nested[1], nested[2:], f"{path}.layers", expand)
        return deeper, notes + more
    for key in nested:
        path = join(path, key)
    return path, notes
