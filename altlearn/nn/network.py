"""spec.network -> a torch ``nn.Sequential``, and the vocabulary rules use to walk one.

- a *trainable layer* is an ``nn.Linear`` or ``nn.Conv2d`` (with or without bias): the layers the
  alternative rules know how to train and the alignment diagnostic compares with BP;
- a *block* is one such layer (the rule decides which kind) plus the parameter-free modules after
  it, up to the next one (activation, pooling, dropout, flatten); the last block holds the output
  layer;
- the *prefix* is the modules before the first block's layer (usually a flatten).

Networks may nest: a :class:`~altlearn.nn.composite.Residual` holds a ``body`` (an ``nn.Sequential``) and
a ``shortcut``. A layer anywhere in the network is named by its *module path*, the name
``network.named_modules()`` gives it: ``"3"`` for the fourth top-level layer, ``"3.body.0"`` for the
first layer of the body of the residual block at position 3, ``"3.shortcut"`` or ``"3.shortcut.0"``
for its projection. :func:`yaml_path` turns a module path into the spec's YAML path, and
:func:`layer_key` into the key rules use for a layer (an int for a top-level layer, as before
networks nested, else the module path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

import torch
from torch import nn

if TYPE_CHECKING:
    from altlearn.components.validated import Block

#: The layer types that rules recognise as trainable.
TRAINABLE = (nn.Linear, nn.Conv2d)


def is_trainable(module: nn.Module) -> TypeGuard[nn.Linear | nn.Conv2d]:
    return isinstance(module, TRAINABLE)


def trainable_indices(network: nn.Sequential) -> list[int]:
    """Positions of the trainable layers in the network, i.e. in the spec's ``network.layers``."""
    return [i for i, module in enumerate(network) if is_trainable(module)]


LayerKey = int | str


def layer_key(module_path: str) -> LayerKey:
    """A top-level layer keeps its integer index (buffer names, seeds, metrics of chains stay as
    they were); a nested layer is keyed by its module path."""
    return int(module_path) if module_path.isdigit() else module_path


def trainable_layers(network: nn.Module) -> list[tuple[LayerKey, nn.Linear | nn.Conv2d]]:
    """Every trainable layer anywhere in ``network`` (inside residual bodies and shortcuts too),
    as (layer key, module) in the order ``named_modules`` visits them (body before shortcut)."""
    return [(layer_key(path), module) for path, module in network.named_modules() if is_trainable(module)]


def yaml_path(module_path: LayerKey) -> str:
    """The spec's YAML path of the module at ``module_path`` (the one place that mapping lives).

    ``"3"`` -> ``network.layers[3]``; ``"3.body.1"`` -> ``network.layers[3].layers[1]`` (a
    residual block's body is its ``layers`` list); ``"3.shortcut"`` -> ``network.layers[3].shortcut``;
    a projection with a norm is a (projection, norm) pair in the model, written as two options in
    the spec: ``"3.shortcut.0"`` -> ``network.layers[3].shortcut`` and ``"3.shortcut.1"`` ->
    ``network.layers[3].shortcut_norm``; ``"3.post"`` -> ``network.layers[3].activation``.
    """
    parts = str(module_path).split(".")
    out = f"network.layers[{parts[0]}]"
    names = {"body": "layers", "shortcut": "shortcut", "post": "activation"}
    for previous, part in zip(parts, parts[1:]):
        if previous == "shortcut" and part in ("0", "1"):
            out += "_norm" if part == "1" else ""
        elif not part.isdigit():
            out += "." + names.get(part, part)
        elif out.endswith(".layers"):
            out += f"[{part}]"
        else:  # a position inside any other container
            out += f".layers[{part}]"
    return out


def metric_path(module_path: LayerKey) -> str:
    """A layer's name in metric keys: its YAML path without ``network.layers``, brackets as dots.

    ``3`` -> ``"3"`` (so a chain's ``angle_layer3`` keeps its name), ``"3.body.1"`` -> ``"3.layers.1"``.
    """
    tail = yaml_path(module_path)[len("network.layers") :]
    return tail.replace("].", ".").replace("[", ".").replace("]", "").strip(".")


@dataclass
class LayerBlock:
    """The layer at ``index`` of a network and the modules ``post`` that follow it up to the next."""

    index: int
    layer: nn.Module
    post: list[nn.Module] = field(default_factory=list)

    def run_post(self, a: torch.Tensor) -> torch.Tensor:
        for module in self.post:
            a = module(a)
        return a


def split_blocks(
    network: nn.Sequential, starts_block: Callable[[nn.Module], bool] = is_trainable
) -> tuple[list[nn.Module], list[LayerBlock]]:
    """(prefix modules, blocks): a block starts at every module ``starts_block`` accepts."""
    prefix: list[nn.Module] = []
    blocks: list[LayerBlock] = []
    for index, module in enumerate(network):
        if starts_block(module):
            blocks.append(LayerBlock(index, module))
        elif blocks:
            blocks[-1].post.append(module)
        else:
            prefix.append(module)
    return prefix, blocks


class NetworkError(Exception):
    """A layer cannot be built on the shape it receives.

    ``index`` is its position in the list of layers being built (repeats expanded); ``nested``
    the YAML keys below it when the problem is inside a composite layer (``("layers", 1)`` for
    the second layer of a residual block's body).
    """

    def __init__(self, index: int, message: str, nested: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.index = index
        self.nested = nested


class NestedLayerError(ValueError):
    """A composite layer's refusal that names where inside it the problem is (``nested``)."""

    def __init__(self, nested: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.nested = nested


def build_network(
    layers: list[Block], input_shape: tuple[int, ...], device: str | torch.device = "cpu"
) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Build the spec's layers in order; each one's input shape is the previous one's output shape.

    Returns the network and the shape of one example's output (without the batch dimension).

    On ``device="meta"`` nothing is allocated: the validator uses that to check shapes for free.
    """
    with torch.device(device):
        return build_chain(layers, tuple(input_shape))


def build_chain(layers: list[Block], shape: tuple[int, ...]) -> tuple[nn.Sequential, tuple[int, ...]]:
    """``build_network`` on the current device: also how a composite layer builds its body."""
    modules: list[nn.Module] = []
    for index, spec in enumerate(layers):
        try:
            module = spec.component.build(spec.params, shape)
        except NetworkError as exc:  # a composite layer let its body's error through
            raise NetworkError(index, str(exc), ("layers", exc.index, *exc.nested)) from exc
        except ValueError as exc:  # the documented way for a layer to refuse an input shape
            raise NetworkError(index, str(exc), getattr(exc, "nested", ())) from exc
        except Exception as exc:  # noqa: BLE001 - a plugin layer's bug: report it with its path
            raise NetworkError(
                index, f"layer type {spec.type!r} failed to build: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(module, nn.Module):
            raise NetworkError(
                index, f"layer type {spec.type!r} built {type(module).__name__}, not a torch module"
            )
        shape = _output_shape(module, shape, index, spec.type)
        modules.append(module)
    return nn.Sequential(*modules), shape


def _output_shape(module: nn.Module, shape: tuple[int, ...], index: int, type_name: str):
    probe = torch.zeros((2, *shape))  # on the build device; batch 2 so batch statistics work
    # Probe in eval mode: in train mode a layer with running statistics (batch norm) would record
    # the probe's zeros, so building would change the network it returns.
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception as exc:  # noqa: BLE001 - a shape mismatch surfaces as any torch error
        raise NetworkError(index, f"{type_name} cannot take input of shape {shape}: {exc}") from exc
    finally:
        for m, training in modes:
            m.training = training
    out_shape = tuple(out.shape[1:])
    if 0 in out_shape:
        raise NetworkError(index, f"{type_name} turns input {shape} into an empty output {out_shape}")
    return out_shape
