"""What the feedback-alignment rules (fa, dfa, ifa) share: options, feedback draws, feedback buffers.

Vocabulary (trainable layer, block, prefix) as in :mod:`altlearn.network`. A layer's *index* is
its position in the ``nn.Sequential``, i.e. in the spec's ``network.layers``; feedback buffers are
named ``feedback_<index>``. Which networks the rules accept is :mod:`~altlearn.rules.feedback.checks`.

Feedback matrices are drawn on the CPU from a ``torch.Generator`` seeded from (seed, layer index),
so they are identical on every device, independent of the other layers' shapes, and never share the
random stream the forward weights were drawn from (which could make B correlate with W).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.components import Params
from altlearn.network import LayerBlock, split_blocks
from altlearn.rules.base import Rule, RuleContext
from altlearn.rules.feedback.checks import DROPOUT, ELEMENTWISE, RESHAPE, layer_problems
from altlearn.rules.randomness import layer_seed
from altlearn.values import Real, Seed


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
    feedback_scale: Real = Field(1.0, gt=0.0, le=1e6, description="multiplies the drawn feedback matrices")
    feedback_seed: Seed | None = Field(
        None,
        ge=0,
        description="seed of the feedback matrices; null: the spec's seed",
    )


# ---------------------------------------------------------------------------------------------
# Drawing feedback matrices


def feedback_fan_in(weight: torch.Tensor) -> int:
    """How many error components one input unit of a layer sums when the error goes down through
    a matrix shaped like ``weight``: out_features, or out_channels * kh * kw for a conv kernel."""
    return weight.shape[0] * (weight[0, 0].numel() if weight.dim() == 4 else 1)


def forward_fan_in(weight: torch.Tensor) -> int:
    """PyTorch's fan_in of a Linear/Conv2d weight: inputs per output unit (in * kh * kw)."""
    return weight[0].numel()


def feedback_spread(init: str, feedback_fan_in: int, forward_fan_in: int) -> float:
    """The bound (uniform, like_forward) or standard deviation (gaussian) of a feedback draw.

    ``like_forward`` is U(+-1/sqrt(forward_fan_in)): exactly what PyTorch's default kaiming-uniform
    (a=sqrt(5), gain*sqrt(3/fan_in)) gives the forward weight.
    """
    if init not in ("uniform", "gaussian", "like_forward"):  # Params validation makes this unreachable
        raise ValueError(f"unknown feedback_init {init!r}")
    return 1.0 / math.sqrt(forward_fan_in if init == "like_forward" else feedback_fan_in)


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
    """A fixed random matrix on the CPU (float32), the same for the same (seed, index, shape)."""
    spread = feedback_spread(init, feedback_fan_in, forward_fan_in)
    generator = torch.Generator(device="cpu").manual_seed(layer_seed(seed, index))
    out = torch.empty(shape, dtype=torch.float32)
    if init == "gaussian":
        out.normal_(0.0, spread, generator=generator)
    else:
        out.uniform_(-spread, spread, generator=generator)
    return out.mul_(scale)


class FeedbackRule(Rule):
    """Base of fa, dfa and ifa: options, the feedback seed and the ``feedback_<index>`` buffers."""

    Params = FeedbackParams
    #: name used in messages (the spec's rule.type)
    rule_name = "feedback"

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self.feedback_seed = self.seed if params.feedback_seed is None else params.feedback_seed
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
            forward_fan_in=forward_fan_in(self.network[index].weight),
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

    Both rules run every block on a detached input (:meth:`_forward_blocks`), so that no error
    travels through a forward weight unless the rule sends it there, and take the output error e
    from autograd on the loss alone (:meth:`_output_error`), so any loss works.
    """

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self._prefix, blocks = split_blocks(self.network)
        self._hidden, self._output = blocks[:-1], blocks[-1]

    def _forward_blocks(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """(each hidden layer's output a_l, each hidden block's output h_l, scores (B, K)).

        Every a_l and h_l has a graph local to its block: to W_l, not to the blocks below.
        """
        with torch.no_grad():
            for module in self._prefix:  # e.g. flatten: nothing to train before the first layer
                x = module(x)
        h = x
        pre, outputs = [], []
        for block in self._hidden:
            a = block.layer(h.detach())
            h = block.run_post(a)
            pre.append(a)
            outputs.append(h)
        scores = self._output.run_post(self._output.layer(h.detach()))  # (B, K)
        return pre, outputs, scores

    def _output_error(self, scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, e = dLoss/dscores (B, K)), without a graph through the network."""
        scores_leaf = scores.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(scores_leaf, y)
        (error,) = torch.autograd.grad(loss, scores_leaf)
        return loss.detach(), error

    def _known_width(self, block: LayerBlock) -> int | None:
        if not isinstance(block.layer, nn.Linear):
            return None
        if any(not isinstance(m, ELEMENTWISE + DROPOUT + RESHAPE) for m in block.post):
            return None
        return block.layer.out_features

    def _output_feedback(self, block: LayerBlock, output: torch.Tensor) -> torch.Tensor:
        """The (K, n) matrix of ``block``, drawn on first use for a block output (B, ...)."""
        name = f"feedback_{block.index}"
        if hasattr(self, name) and getattr(self, name) is not None:
            return getattr(self, name)
        width = output[0].numel()
        return self._add_feedback(
            block.index, (self.num_classes, width), self.num_classes, output.device, output.dtype
        )

    def _draw_known_feedback(self, blocks: list[LayerBlock]) -> None:
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
