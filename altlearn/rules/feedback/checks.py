"""Which networks the feedback-alignment rules can train, as messages for the spec's validator.

The rules train ``nn.Linear`` and ``nn.Conv2d`` layers (:data:`altlearn.nn.network.TRAINABLE`) wherever
they sit (inside residual bodies and projection shortcuts too), train normalisation layers with
their ordinary local gradient, and let autograd apply the local derivative of the parameter-free
modules between them; a module they do not know could hide a weight or a non-local derivative, so
it is refused rather than guessed at. Problems are keyed like layers (:func:`altlearn.nn.network.layer_key`):
an int for a top-level layer, a module path such as ``"3.body.1"`` for a nested one.
"""

from __future__ import annotations

from torch import nn

from altlearn.nn.composite import Residual
from altlearn.nn.network import LayerKey, is_trainable, layer_key, trainable_layers, yaml_path

# Parameter-free modules that act on each element independently: their derivative is local.
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.Identity,
)  # fmt: skip
DROPOUT = (nn.Dropout,)
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
RESHAPE = (nn.Flatten,)
PASS_THROUGH = ELEMENTWISE + DROPOUT + POOLING + RESHAPE
#: Normalisation layers: trained by their ordinary local gradient (their own scale and shift).
NORMALISATION = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
#: Modules that only arrange others: the walk looks inside them.
CONTAINERS = (nn.Sequential, Residual)

SUPPORTED = "linear and conv2d (with or without bias)"
PASSING = (
    "flatten, dropout, maxpool2d, avgpool2d, adaptive_avgpool2d, batchnorm1d, batchnorm2d, "
    "layernorm, groupnorm, residual blocks and the activations relu, tanh, sigmoid, gelu, "
    "leaky_relu, elu, silu, softplus, hardtanh"
)

#: (layer key or None, message); a message names no rule: the spec's validator prefixes it with
#: the rule's registered name (``rule 'fa': ...``), the only name a rule has.
Problems = list[tuple[LayerKey | None, str]]


def layer_problems(
    network: nn.Sequential,
    *,
    min_trainable: int = 1,
    allowed_post: tuple[type, ...] = PASS_THROUGH + NORMALISATION,
    hidden_post_reason: str = "",
) -> Problems:
    """Layers a feedback rule cannot train; ``allowed_post`` limits what may follow a hidden layer
    of a chain (a rule that passes ``allowed_post`` supports chains only: it also refuses residual
    blocks, with ``hidden_post_reason``).

    Parameter-free modules after the output layer and before the first trainable layer only need
    to be known (the output layer gets its ordinary local gradient; the prefix runs without gradient).
    """
    problems = module_problems(network)
    problems += _count_problems(network, min_trainable)
    if allowed_post != PASS_THROUGH + NORMALISATION:
        problems += _chain_only_problems(network, allowed_post, hidden_post_reason)
    return problems


def module_problems(network: nn.Module, prefix: str = "") -> Problems:
    """Every module anywhere in ``network`` that a feedback rule does not know how to train or pass."""
    problems: Problems = []
    for name, module in network.named_children():
        path = f"{prefix}{name}"
        if isinstance(module, CONTAINERS):
            problems += module_problems(module, f"{path}.")
        elif (message := _module_problem(module, path)) is not None:
            problems.append((layer_key(path), message))
    return problems


def describe(path: LayerKey, module: nn.Module) -> str:
    """How messages name a layer: its YAML path and its class, e.g. ``network.layers[3] (Conv2d)``."""
    return f"{yaml_path(path)} ({type(module).__name__})"


def _module_problem(module: nn.Module, path: str) -> str | None:
    if is_trainable(module):
        return _conv_padding_problem(module) if isinstance(module, nn.Conv2d) else None
    if isinstance(module, NORMALISATION):
        return None
    if any(True for _ in module.parameters(recurse=True)):
        return f"cannot train {describe(path, module)}: its trainable layers are {SUPPORTED}"
    if not isinstance(module, PASS_THROUGH):
        known = f"besides trainable layers it supports {PASSING}"
        return f"does not know {describe(path, module)}; {known}"
    return None


def _conv_padding_problem(conv: nn.Conv2d) -> str | None:
    # The feedback route runs the transposed convolution, which needs numeric zero padding.
    if conv.padding_mode != "zeros":
        return f"supports conv2d only with zero padding, not padding_mode={conv.padding_mode!r}"
    if isinstance(conv.padding, str):
        return f"needs conv2d padding as numbers, not {conv.padding!r}"
    return None


def _count_problems(network: nn.Sequential, min_trainable: int) -> Problems:
    found = len(trainable_layers(network))
    if found >= min_trainable:
        return []
    if min_trainable == 1:
        return [(None, f"needs at least one trainable layer ({SUPPORTED})")]
    return [
        (
            None,
            "needs a hidden trainable layer before the output layer (it sends the "
            f"output error to hidden layers); this network has {found} trainable layer(s)",
        )
    ]


def _chain_only_problems(network: nn.Sequential, allowed_post: tuple[type, ...], reason: str) -> Problems:
    """Residual blocks and normalisation layers anywhere, and known modules between two trainable
    layers that the rule cannot pass."""
    indices = [index for index, module in enumerate(network) if is_trainable(module)]
    between = range(indices[0] + 1, indices[-1]) if indices else range(0)
    problems: Problems = []
    for index, module in enumerate(network):
        if isinstance(module, (Residual, *NORMALISATION)) or (
            index in between and isinstance(module, PASS_THROUGH) and not isinstance(module, allowed_post)
        ):
            problems.append((index, f"cannot have {describe(index, module)}: {reason}"))
    return problems
