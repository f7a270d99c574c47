"""spec.network -> a torch ``nn.Sequential``, inferring every layer's input size from the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """One validated entry of ``network.layers``: its type name, the layer class and its options."""

    type: str
    layer: Any  # the altlearn.api.Layer subclass
    params: Any


class NetworkError(Exception):
    """A layer cannot be built on the shape it receives; ``index`` is its position in the spec."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def build_network(
    layers: list[LayerSpec], input_shape: tuple[int, ...], device: str | torch.device = "cpu"
) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Build the layers in order; each layer's input shape is the previous layer's output shape.

    Returns the network and the shape of one example's output (without the batch dimension).

    On ``device="meta"`` nothing is allocated: the validator uses that to check shapes for free.
    """
    modules: list[nn.Module] = []
    shape = tuple(input_shape)
    with torch.device(device):
        for index, spec in enumerate(layers):
            try:
                module = spec.layer.build(spec.params, shape)
            except ValueError as exc:  # the documented way for a layer to refuse an input shape
                raise NetworkError(index, str(exc)) from exc
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
