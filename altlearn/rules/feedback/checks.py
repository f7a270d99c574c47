"""Which networks the feedback-alignment rules can train, as messages for the spec's validator.

The rules train ``nn.Linear`` and ``nn.Conv2d`` layers (:data:`altlearn.network.TRAINABLE`) and
let autograd apply the local derivative of the parameter-free modules between them; a module they
do not know could hide a weight or a non-local derivative, so it is refused rather than guessed at.
"""

from __future__ import annotations

from torch import nn

from altlearn.network import is_trainable, trainable_indices

# Parameter-free modules that act on each element independently: their derivative is local.
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.Identity,
)  # fmt: skip
DROPOUT = (nn.Dropout,)
POOLING = (nn.MaxPool2d, nn.AvgPool2d)
RESHAPE = (nn.Flatten,)
PASS_THROUGH = ELEMENTWISE + DROPOUT + POOLING + RESHAPE

SUPPORTED = "linear and conv2d (with or without bias)"
PASSING = (
    "flatten, dropout, maxpool2d, avgpool2d and the activations relu, tanh, sigmoid, gelu, "
    "leaky_relu, elu, silu, softplus, hardtanh"
)

Problems = list[tuple[int | None, str]]


def layer_problems(
    network: nn.Sequential,
    rule_name: str,
    *,
    min_trainable: int = 1,
    allowed_post: tuple[type, ...] = PASS_THROUGH,
    hidden_post_reason: str = "",
) -> Problems:
    """Layers a feedback rule cannot train; ``allowed_post`` limits what may follow a hidden layer.

    Parameter-free modules after the output layer and before the first trainable layer only need
    to be in :data:`PASS_THROUGH` (the output layer gets its ordinary local gradient; the prefix runs
    without gradient).
    """
    problems = [
        (index, message)
        for index, module in enumerate(network)
        if (message := _module_problem(module, index, rule_name)) is not None
    ]
    problems += _count_problems(network, rule_name, min_trainable)
    if allowed_post is not PASS_THROUGH:
        problems += _hidden_post_problems(network, rule_name, allowed_post, hidden_post_reason)
    return problems


def _module_problem(module: nn.Module, index: int, rule_name: str) -> str | None:
    kind = type(module).__name__
    if is_trainable(module):
        return _conv_padding_problem(module, rule_name) if isinstance(module, nn.Conv2d) else None
    if any(True for _ in module.parameters(recurse=True)):
        return f"{rule_name} cannot train layer {index} ({kind}): its trainable layers are {SUPPORTED}"
    if not isinstance(module, PASS_THROUGH):
        return f"{rule_name} does not know layer {index} ({kind}); between trainable layers it supports {PASSING}"
    return None


def _conv_padding_problem(conv: nn.Conv2d, rule_name: str) -> str | None:
    # The feedback route runs the transposed convolution, which needs numeric zero padding.
    if conv.padding_mode != "zeros":
        return f"{rule_name} supports conv2d only with zero padding, not padding_mode={conv.padding_mode!r}"
    if isinstance(conv.padding, str):
        return f"{rule_name} needs conv2d padding as numbers, not {conv.padding!r}"
    return None


def _count_problems(network: nn.Sequential, rule_name: str, min_trainable: int) -> Problems:
    found = len(trainable_indices(network))
    if found >= min_trainable:
        return []
    if min_trainable == 1:
        return [(None, f"{rule_name} needs at least one trainable layer ({SUPPORTED})")]
    return [
        (
            None,
            f"{rule_name} needs a hidden trainable layer before the output layer (it sends the "
            f"output error to hidden layers); this network has {found} trainable layer(s)",
        )
    ]


def _hidden_post_problems(
    network: nn.Sequential, rule_name: str, allowed_post: tuple[type, ...], reason: str
) -> Problems:
    """Known parameter-free modules between two trainable layers that the rule cannot pass."""
    indices = trainable_indices(network)
    if len(indices) < 2:
        return []
    problems: Problems = []
    for index in range(indices[0] + 1, indices[-1]):  # from the first to the output layer
        module = network[index]
        if is_trainable(module) or not isinstance(module, PASS_THROUGH):
            continue  # a trainable layer, or already reported as unknown
        if not isinstance(module, allowed_post):
            problems.append(
                (
                    index,
                    f"{rule_name} cannot have {type(module).__name__} (layer {index}) between trainable layers: {reason}",
                )
            )
    return problems
