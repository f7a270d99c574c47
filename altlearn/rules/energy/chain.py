"""What pc and ep share: which networks they read as a layered energy, and the blocks they run.

A *block* is a trainable layer (``linear`` or ``conv2d``) with the parameter-free modules after it
up to the next trainable layer (``linear -> relu``, ``conv2d -> relu -> maxpool2d -> flatten``);
modules before the first trainable layer (a ``flatten``) are the *prefix*, applied to the input
once. Both rules keep one state tensor per block output, so a block is the unit whose prediction
the energy compares with a state; the work of an inference step is one call per block, vectorised
over the batch and the block's units.
"""

from __future__ import annotations

import torch
from torch import nn

from altlearn.nn.network import LayerBlock, is_trainable, split_blocks, yaml_path

#: (layer key or None, message); the validator prefixes the rule's registered name.
Problems = list[tuple[int | str | None, str]]

#: Element-wise activations a block may end with.
ACTIVATIONS = (
    nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.Hardsigmoid, nn.Identity,
)  # fmt: skip
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
RESHAPE = (nn.Flatten,)


def describe(index: int, module: nn.Module) -> str:
    return f"{yaml_path(index)} ({type(module).__name__})"


def chain_problems(network: nn.Sequential, passing: tuple[type, ...], why: str) -> Problems:
    """Modules of a top-level chain that are neither trainable layers nor in ``passing``.

    A composite layer (a residual block), a normalisation layer or dropout is refused at its own
    path with the reason: the energy needs a chain of deterministic per-example blocks.
    """
    problems: Problems = []
    for index, module in enumerate(network):
        if is_trainable(module) or isinstance(module, passing):
            continue
        if isinstance(module, nn.Dropout):
            reason = "dropout would change the energy at every inference step"
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            reason = "a normalisation layer couples the examples (or has weights) the energy does not model"
        elif any(True for _ in module.children()) or any(True for _ in module.parameters()):
            reason = (
                "the energy is defined for a plain chain of layers, not composite or other weighted layers"
            )
        else:
            reason = "it is not a layer the energy knows"
        problems.append((index, f"cannot train a network with {describe(index, module)}: {reason}; {why}"))
    if not any(is_trainable(module) for module in network):
        problems.append((None, "needs at least one trainable layer (linear or conv2d)"))
    return problems


def blocks_of(network: nn.Sequential) -> tuple[list[nn.Module], list[LayerBlock]]:
    """(prefix modules, blocks) of a chain checked by :func:`chain_problems`."""
    return split_blocks(network, is_trainable)


def run_block(block: LayerBlock, state: torch.Tensor) -> torch.Tensor:
    """The block's prediction of the next state from ``state``: layer, then its post modules."""
    return block.run_post(block.layer(state))


def run_prefix(prefix: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for module in prefix:
        x = module(x)
    return x


def block_parameters(blocks: list[LayerBlock]) -> list[nn.Parameter]:
    """The trainable layers' parameters (weight, bias) in block order, those that require grad."""
    return [p for block in blocks for p in block.layer.parameters() if p.requires_grad]


def energy_metrics(name: str, start: torch.Tensor, end: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-example energy at the start and end of inference and its decrease (no host sync)."""
    start, end = start.detach(), end.detach()
    return {
        f"{name}/energy_start": start,
        f"{name}/energy_end": end,
        f"{name}/energy_decrease": start - end,
    }
