"""The networks the local rules (pepita, localloss) train: chains of linear blocks.

A *block* is a linear layer and the modules after it up to the next linear layer
(:func:`altlearn.nn.network.split_blocks`); modules before the first linear layer (a ``flatten``)
are the prefix. The last block is the output layer, which must give the scores directly.
"""

from __future__ import annotations

from typing import Protocol, cast

import torch
from torch import nn

from altlearn.nn.network import split_blocks
from altlearn.rules.feedback.checks import RESHAPE, Problems, describe


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


class LinearBlock(Protocol):
    """A :class:`altlearn.nn.network.LayerBlock` whose layer is linear, as :func:`linear_blocks` gives them."""

    index: int
    layer: nn.Linear
    post: list[nn.Module]

    def run_post(self, a: torch.Tensor) -> torch.Tensor: ...


def linear_blocks(network: nn.Sequential) -> tuple[list[nn.Module], list[LinearBlock]]:
    """(prefix modules, blocks), a block starting at every linear layer."""
    prefix, blocks = split_blocks(network, starts_block=is_linear)
    return prefix, cast("list[LinearBlock]", blocks)  # is_linear started each block: its layer is linear


def chain_problems(
    network: nn.Sequential, allowed_post: tuple[type, ...], allowed: str, hint: str = ""
) -> Problems:
    """What keeps ``network`` from being a chain of linear blocks whose hidden blocks end in
    ``allowed_post`` modules (``allowed`` names them for the message) and whose last block is a
    bare linear output layer; ``hint`` ends the message about conv layers."""
    convs = [(i, m) for i, m in enumerate(network) if isinstance(m, nn.Conv2d)]
    if convs:  # the rest would only repeat it (modules "before the first linear layer")
        return [(i, f"cannot train {describe(i, m)} yet: linear layers only (MLPs){hint}") for i, m in convs]
    prefix, blocks = linear_blocks(network)
    problems: Problems = [
        (i, f"cannot have {describe(i, m)} before the first linear layer")
        for i, m in enumerate(prefix)
        if not isinstance(m, RESHAPE)
    ]
    for block in blocks[:-1]:
        for offset, module in enumerate(block.post, start=block.index + 1):
            if not isinstance(module, allowed_post):
                message = f"cannot have {describe(offset, module)} between linear layers; it allows {allowed}"
                problems.append((offset, message))
    if len(blocks) < 2:
        problems.append((None, f"needs a hidden linear layer before the output layer; found {len(blocks)}"))
    elif blocks[-1].post:
        last = blocks[-1].index + 1
        message = f"needs the output layer's scores as the network's output, not {describe(last, blocks[-1].post[0])}"
        problems.append((last, message))
    return problems
