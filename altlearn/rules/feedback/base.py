"""What the feedback-alignment rules (fa, dfa, ifa) share: options, layer checks, blocks, feedback draws.

Vocabulary used by all three rules:

- a *trainable layer* is an ``nn.Linear`` or ``nn.Conv2d`` (with or without bias);
- a *block* is a trainable layer plus the parameter-free modules after it, up to the next trainable
  layer (activation, pooling, dropout, flatten); the last block holds the output layer;
- the *prefix* is the parameter-free modules before the first trainable layer (usually a flatten);
- a layer's *index* is its position in the ``nn.Sequential``, i.e. in the spec's ``network.layers``.
  Feedback buffers are named ``feedback_<index>`` and diagnostics ``layer<index>``.

Feedback matrices are drawn on the CPU from a ``torch.Generator`` seeded from (seed, layer index),
so they are identical on every device, independent of the other layers' shapes, and never share the
random stream the forward weights were drawn from (which could make B correlate with W).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.components import Params
from altlearn.rules.base import LossFn, Rule

TRAINABLE = (nn.Linear, nn.Conv2d)
# Parameter-free modules that act on each element independently: their derivative is local.
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.Identity,
)  # fmt: skip
DROPOUT = (nn.Dropout,)
POOLING = (nn.MaxPool2d, nn.AvgPool2d)
RESHAPE = (nn.Flatten,)
PASS_THROUGH = ELEMENTWISE + DROPOUT + POOLING + RESHAPE


class FeedbackParams(Params):
    """Options shared by fa, dfa and ifa: how the fixed random feedback matrices are drawn.

    ``n`` below is the feedback fan-in: how many error components one feedback output sums over
    (fa: the forward layer's out_features, or out_channels*kh*kw for conv; dfa/ifa: the number of
    classes). Normalising by it keeps the feedback signal's size independent of the layer widths.
    """

    feedback_init: Literal["uniform", "gaussian", "like_forward"] = Field(
        "uniform",
        description=(
            "distribution of the feedback matrices: uniform in +-1/sqrt(n); gaussian N(0, 1/n); "
            "like_forward: drawn like the forward weight W_l of the layer receiving the feedback, "
            "i.e. PyTorch's default kaiming-uniform U(+-1/sqrt(fan_in of W_l))"
        ),
    )
    feedback_scale: float = Field(1.0, gt=0.0, le=1e6, description="multiplies the drawn feedback matrices")
    feedback_seed: int | None = Field(
        None,
        ge=0,
        description="seed of the feedback matrices; null: the spec's seed",
    )


# ---------------------------------------------------------------------------------------------
# Network structure


def is_trainable(module: nn.Module) -> bool:
    return isinstance(module, TRAINABLE)


def trainable_indices(network: nn.Sequential) -> list[int]:
    return [i for i, module in enumerate(network) if is_trainable(module)]


@dataclass
class Block:
    """A trainable layer at ``index`` and the parameter-free modules ``post`` that follow it."""

    index: int
    layer: nn.Module
    post: list[nn.Module] = field(default_factory=list)

    def run_post(self, a: torch.Tensor) -> torch.Tensor:
        for module in self.post:
            a = module(a)
        return a


def split_blocks(network: nn.Sequential) -> tuple[list[nn.Module], list[Block]]:
    """(prefix modules, blocks); the last block is the output layer's."""
    prefix: list[nn.Module] = []
    blocks: list[Block] = []
    for index, module in enumerate(network):
        if is_trainable(module):
            blocks.append(Block(index, module))
        elif blocks:
            blocks[-1].post.append(module)
        else:
            prefix.append(module)
    return prefix, blocks


def layer_problems(
    network: nn.Sequential,
    rule_name: str,
    *,
    min_trainable: int = 1,
    allowed_post: tuple[type, ...] = PASS_THROUGH,
    hidden_post_reason: str = "",
) -> list[tuple[int | None, str]]:
    """Layers a feedback rule cannot train; ``allowed_post`` limits what may follow a hidden layer.

    Parameter-free modules after the output layer and before the first trainable layer only need
    to be in :data:`PASS_THROUGH` (the output layer gets its ordinary local gradient; the prefix runs
    without gradient).
    """
    problems: list[tuple[int | None, str]] = []
    supported = "linear and conv2d (with or without bias)"
    passing = "flatten, dropout, maxpool2d, avgpool2d and the activations relu, tanh, sigmoid, gelu, leaky_relu, elu, silu, softplus, hardtanh"
    for index, module in enumerate(network):
        kind = type(module).__name__
        has_params = any(True for _ in module.parameters(recurse=True))
        if is_trainable(module):
            if isinstance(module, nn.Conv2d):
                if module.padding_mode != "zeros":
                    problems.append(
                        (
                            index,
                            f"{rule_name} supports conv2d only with zero padding, not padding_mode={module.padding_mode!r}",
                        )
                    )
                elif isinstance(module.padding, str):
                    problems.append(
                        (index, f"{rule_name} needs conv2d padding as numbers, not {module.padding!r}")
                    )
            continue
        if has_params:
            problems.append(
                (
                    index,
                    f"{rule_name} cannot train layer {index} ({kind}): its trainable layers are {supported}",
                )
            )
        elif not isinstance(module, PASS_THROUGH):
            problems.append(
                (
                    index,
                    f"{rule_name} does not know layer {index} ({kind}); between trainable layers it supports {passing}",
                )
            )
    indices = trainable_indices(network)
    if len(indices) < min_trainable:
        if min_trainable == 1:
            message = f"{rule_name} needs at least one trainable layer ({supported})"
        else:
            message = (
                f"{rule_name} needs a hidden trainable layer before the output layer (it sends the "
                f"output error to hidden layers); this network has {len(indices)} trainable layer(s)"
            )
        problems.append((None, message))
    if allowed_post is not PASS_THROUGH and len(indices) >= 2:
        hidden_end = indices[-1]  # modules after the last hidden layer, before the output layer
        for index in range(indices[0] + 1, hidden_end):
            module = network[index]
            if is_trainable(module) or not isinstance(module, PASS_THROUGH):
                continue  # reported above or a trainable layer
            if not isinstance(module, allowed_post):
                problems.append(
                    (
                        index,
                        f"{rule_name} cannot have {type(module).__name__} (layer {index}) between trainable layers: {hidden_post_reason}",
                    )
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Drawing feedback matrices


def layer_seed(seed: int, index: int) -> int:
    """A 63-bit generator seed for the feedback of layer ``index``; stable across runs/versions."""
    digest = hashlib.sha256(f"altlearn-feedback:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def forward_fan_in(layer: nn.Module) -> int:
    """PyTorch's fan_in of a Linear/Conv2d weight: inputs per output unit (in * kh * kw)."""
    return layer.weight[0].numel()


def draw_feedback(
    shape: tuple[int, ...],
    *,
    init: str,
    scale: float,
    feedback_fan_in: int,
    forward_fan_in: int,
    seed: int,
    index: int,
) -> torch.Tensor:
    """A fixed random matrix on the CPU (float32), the same for the same (seed, index, shape).

    ``like_forward`` draws U(+-1/sqrt(forward_fan_in)): exactly what PyTorch's default
    kaiming-uniform (a=sqrt(5)) gives the forward weight of the layer at ``index``.
    """
    generator = torch.Generator(device="cpu").manual_seed(layer_seed(seed, index))
    out = torch.empty(shape, dtype=torch.float32)
    if init == "uniform":
        bound = 1.0 / math.sqrt(feedback_fan_in)
        out.uniform_(-bound, bound, generator=generator)
    elif init == "gaussian":
        out.normal_(0.0, 1.0 / math.sqrt(feedback_fan_in), generator=generator)
    elif init == "like_forward":
        bound = 1.0 / math.sqrt(forward_fan_in)  # kaiming_uniform_(a=sqrt(5)): gain*sqrt(3/fan_in)
        out.uniform_(-bound, bound, generator=generator)
    else:  # Params validation makes this unreachable
        raise ValueError(f"unknown feedback_init {init!r}")
    return out.mul_(scale)


class FeedbackRule(Rule):
    """Base of fa, dfa and ifa: options, the feedback seed and the ``feedback_<index>`` buffers."""

    Params = FeedbackParams
    #: name used in messages (the spec's rule.type)
    rule_name = "feedback"

    def __init__(
        self,
        network: nn.Sequential,
        params: FeedbackParams,
        *,
        loss: LossFn,
        num_classes: int,
        seed: int = 0,
    ) -> None:
        super().__init__(network, params, loss=loss, num_classes=num_classes, seed=seed)
        problems = self.check_network(network, params)
        if problems:  # a rule never trains a network it cannot handle (no silent BP fallback)
            raise ValueError("; ".join(message for _, message in problems))
        self.feedback_seed = seed if params.feedback_seed is None else params.feedback_seed
        self._feedback_owner_indices: list[int] = []

    @classmethod
    def check_network(cls, network, params):
        return layer_problems(network, cls.rule_name)

    def _add_feedback(
        self, index: int, shape: tuple[int, ...], feedback_fan_in: int, device=None, dtype=None
    ) -> torch.Tensor:
        matrix = draw_feedback(
            shape,
            init=self.params.feedback_init,
            scale=self.params.feedback_scale,
            feedback_fan_in=feedback_fan_in,
            forward_fan_in=forward_fan_in(self.network[index]),
            seed=self.feedback_seed,
            index=index,
        )
        # Follow the network's device and dtype; later .to() calls move buffers with the rule.
        reference = self.network[index].weight
        matrix = matrix.to(device or reference.device, dtype or reference.dtype)
        self.register_buffer(f"feedback_{index}", matrix)
        self._feedback_owner_indices.append(index)
        return matrix

    def fixed_feedback(self, index: int) -> torch.Tensor:
        """The fixed random feedback matrix drawn for the trainable layer at ``index``."""
        return getattr(self, f"feedback_{index}")

    def feedback_indices(self) -> list[int]:
        """Indices of the layers that have a feedback buffer, in network order."""
        return sorted(self._feedback_owner_indices)


class OutputFeedbackRule(FeedbackRule):
    """Base of dfa and ifa: feedback matrices (K, n_l) from the K output scores to a block output.

    n_l is the number of values in one example's block output (C*H*W for conv blocks). For blocks
    made of linear layers it is known at construction; after a conv it depends on the image size,
    which a rule does not receive, so those matrices are drawn at the first training step (from
    the same seeded CPU generator: the result does not depend on when or where it is drawn).
    Loading a state_dict creates any missing ones with the saved shapes.
    """

    def _known_width(self, block: Block) -> int | None:
        if not isinstance(block.layer, nn.Linear):
            return None
        if any(not isinstance(m, ELEMENTWISE + DROPOUT + RESHAPE) for m in block.post):
            return None
        return block.layer.out_features

    def _output_feedback(self, block: Block, output: torch.Tensor) -> torch.Tensor:
        """The (K, n) matrix of ``block``, drawn on first use for a block output (B, ...)."""
        name = f"feedback_{block.index}"
        if hasattr(self, name) and getattr(self, name) is not None:
            return getattr(self, name)
        width = output[0].numel()
        return self._add_feedback(
            block.index, (self.num_classes, width), self.num_classes, output.device, output.dtype
        )

    def _draw_known_feedback(self, blocks: list[Block]) -> None:
        for block in blocks:
            width = self._known_width(block)
            if width is not None:
                self._add_feedback(block.index, (self.num_classes, width), self.num_classes)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # Matrices drawn lazily (after a conv) may be in a checkpoint but not yet in this rule.
        for key, value in state_dict.items():
            name = key[len(prefix) :]
            if key.startswith(prefix + "feedback_") and "." not in name and not hasattr(self, name):
                index = int(name.split("_")[1])
                self.register_buffer(name, torch.empty_like(value, device=self.network[index].weight.device))
                self._feedback_owner_indices.append(index)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
