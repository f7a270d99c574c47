"""The ``residual`` layer type: ``activation(body(x) + shortcut(x))`` built as
:class:`altlearn.nn.composite.Residual`, from a list of ordinary layer blocks.

The shortcut is the identity when the body keeps the shape, else a projection: a 1x1 convolution
whose stride is read off the body's downsampling for images, a linear layer for flat inputs (He et
al. 2016's option B), optionally followed by a normalisation layer.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Layer, Params
from altlearn.components.ref import Block, ComponentRef
from altlearn.nn.composite import Residual
from altlearn.nn.network import NestedLayerError, build_chain


class ResidualLayer(Layer):
    """The ``residual`` layer type (the spec's options); it builds a
    :class:`~altlearn.nn.composite.Residual` torch module."""

    class Params(Params):
        layers: list[Block] = ComponentRef(
            "layer", many=True, description="the block's body, in order (any layer, residual ones too)"
        )
        shortcut: Literal["auto", "identity", "projection"] = Field(
            "auto",
            description="auto: the identity when the body keeps the shape, else a projection "
            "(1x1 conv with stride for images, linear for flat inputs)",
        )
        shortcut_norm: Block | None = ComponentRef(
            "layer",
            optional=True,
            description="a layer after a projection shortcut, e.g. batchnorm2d (none by default)",
        )
        activation: Block | None = ComponentRef(
            "layer", optional=True, description="applied to the sum, e.g. relu (none by default)"
        )

    @classmethod
    def build(cls, params, input_shape):
        body, out_shape = build_chain(params.layers, input_shape)
        shortcut = _shortcut(params, tuple(input_shape), out_shape)
        post = None if params.activation is None else _build_one(params.activation, out_shape, "activation")
        return Residual(body, shortcut, post)


def _shortcut(params, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    if params.shortcut == "identity" or (params.shortcut == "auto" and in_shape == out_shape):
        if in_shape != out_shape:
            raise NestedLayerError(
                ("shortcut",),
                f"an identity shortcut needs the body to keep the shape, but it turns {in_shape} into "
                f"{out_shape}; use shortcut: projection (or auto)",
            )
        if params.shortcut_norm is not None and params.shortcut == "identity":
            raise NestedLayerError(
                ("shortcut_norm",), "normalises a projection shortcut, but the shortcut is the identity"
            )
        return nn.Identity()
    projection = _projection(in_shape, out_shape, bias=params.shortcut_norm is None)
    if params.shortcut_norm is None:
        return projection
    return nn.Sequential(projection, _build_one(params.shortcut_norm, out_shape, "shortcut_norm"))


def _projection(in_shape: tuple[int, ...], out_shape: tuple[int, ...], bias: bool) -> nn.Module:
    if len(in_shape) == len(out_shape) == 1:
        return nn.Linear(in_shape[0], out_shape[0], bias=bias)
    if len(in_shape) == len(out_shape) == 3:
        stride = max(1, in_shape[1] // out_shape[1])
        # A 1x1 conv with stride s maps side n to (n - 1) // s + 1: it must land on the body's size.
        if all((n - 1) // stride + 1 == m for n, m in zip(in_shape[1:], out_shape[1:], strict=True)):
            return nn.Conv2d(in_shape[0], out_shape[0], 1, stride=stride, bias=bias)
    raise NestedLayerError(
        ("shortcut",),
        f"no projection maps the block's input {in_shape} onto its body's output {out_shape} (a 1x1 conv "
        "with stride needs images downsampled by a whole factor; a linear one needs flat shapes)",
    )


def _build_one(block: Block, shape: tuple[int, ...], key: str) -> nn.Module:
    """A single layer option (activation, shortcut_norm) built on ``shape``; errors name the key."""
    try:
        module = block.component.build(block.params, shape)
        out = _probe(module, shape)
    except Exception as exc:  # noqa: BLE001 - any refusal or torch error: report at the key
        raise NestedLayerError((key,), f"{block.type} cannot take the block's shape {shape}: {exc}") from exc
    if out != shape:
        raise NestedLayerError((key,), f"{block.type} must keep the shape {shape}, but gives {out}")
    return module


def _probe(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    training = module.training
    module.eval()  # running statistics must not see the probe
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros((2, *shape))).shape[1:])
    finally:
        module.train(training)
