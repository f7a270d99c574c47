"""What the feedback-alignment rules (fa, dfa, ifa) share: options, feedback draws, feedback buffers.

Vocabulary (trainable layer, block, prefix, module path) as in :mod:`altlearn.nn.network`. A layer's
*key* (:func:`altlearn.nn.network.layer_key`) is its position in the top-level ``nn.Sequential`` (an
int, i.e. its index in the spec's ``network.layers``) or, for a layer nested in a residual block,
its module path (``"3.body.0"``); feedback buffers are named ``feedback_<key>`` with the dots as
underscores (``feedback_4``, ``feedback_3_body_0``). Which networks the rules accept is
:mod:`~altlearn.rules.feedback.checks`.

Feedback matrices are drawn on the CPU from a ``torch.Generator`` seeded from (seed, layer index),
so they are identical on every device, independent of the other layers' shapes, and never share the
random stream the forward weights were drawn from (which could make B correlate with W).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Real, Seed
from altlearn.nn.network import LayerKey, layer_key, trainable_layers
from altlearn.rules.base import Rule, RuleContext
from altlearn.rules.feedback.checks import DROPOUT, ELEMENTWISE, NORMALISATION, RESHAPE, layer_problems
from altlearn.rules.randomness import layer_seed

#: Modules after a linear layer that keep its width (flatten of (B, n) is (B, n)).
SHAPE_KEEPING = ELEMENTWISE + DROPOUT + RESHAPE + NORMALISATION


class FeedbackParams(Params):
    """Options shared by fa, dfa and ifa: how the fixed random feedback matrices are drawn.

    ``n`` below is the feedback fan-in: how many error components one feedback output sums over
    (fa: the forward layer's out_features, or out_channels*kh*kw for conv; dfa/ifa: the number of
    classes). Normalising by it keeps the feedback signal's size independent of the layer widths.
    """

    feedback_init: Literal["uniform", "gaussian", "like_forward", "xavier"] = Field(
        "uniform",
        description=(
            "distribution of the feedback matrices: uniform in +-1/sqrt(n); gaussian N(0, 1/n); "
            "like_forward: drawn like the forward weight W_l of the layer receiving the feedback, "
            "i.e. PyTorch's default kaiming-uniform U(+-1/sqrt(fan_in of W_l)); xavier: Glorot-uniform "
            "for the feedback matrix's own shape, U(+-sqrt(6/(fan_in + fan_out))), which shrinks "
            "a dfa/ifa matrix with the size of the point it feeds (BioTorch's choice)"
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


def feedback_spread(
    init: str, feedback_fan_in: int, forward_fan_in: int, shape: tuple[int, ...] = ()
) -> float:
    """The bound (uniform, like_forward, xavier) or standard deviation (gaussian) of a feedback draw.

    ``like_forward`` is U(+-1/sqrt(forward_fan_in)): exactly what PyTorch's default kaiming-uniform
    (a=sqrt(5), gain*sqrt(3/fan_in)) gives the forward weight. ``xavier`` needs the matrix's
    ``shape``: (out, in) or (out, in, kh, kw), fans counted as torch.nn.init counts them.
    """
    if init == "xavier":
        if len(shape) < 2:
            raise ValueError("feedback_init xavier needs the feedback matrix's shape")
        receptive = math.prod(shape[2:])
        return math.sqrt(6.0 / ((shape[0] + shape[1]) * receptive))
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
    index: LayerKey,
) -> torch.Tensor:
    """A fixed random matrix on the CPU (float32), the same for the same (seed, index, shape)."""
    spread = feedback_spread(init, feedback_fan_in, forward_fan_in, shape)
    generator = torch.Generator(device="cpu").manual_seed(layer_seed(seed, index))
    out = torch.empty(shape, dtype=torch.float32)
    if init == "gaussian":
        out.normal_(0.0, spread, generator=generator)
    else:
        out.uniform_(-spread, spread, generator=generator)
    return out.mul_(scale)


def buffer_name(key: LayerKey) -> str:
    """The name of the feedback buffer of the layer (or feedback point) ``key``: ``feedback_3_body_0``."""
    return f"feedback_{str(key).replace('.', '_')}"


class FeedbackRule(Rule):
    """Base of fa, dfa and ifa: options, the feedback seed and the ``feedback_<key>`` buffers."""

    Params: ClassVar[type[FeedbackParams]] = FeedbackParams
    params: FeedbackParams

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self.feedback_seed = self.seed if params.feedback_seed is None else params.feedback_seed
        self._feedback_keys: list[LayerKey] = []

    @classmethod
    def check_network(cls, network, params):
        return layer_problems(network)

    def receiving_layer(self, key: LayerKey) -> nn.Linear | nn.Conv2d:
        """The trainable layer whose feedback ``key`` names: the layer itself, or for a feedback
        point at a residual block's output the last trainable layer of its body."""
        module = self.network.get_submodule(str(key))
        layers = trainable_layers(getattr(module, "body", module))
        return layers[-1][1] if layers else next(layer for _, layer in trainable_layers(module))

    def _add_feedback(
        self, key: LayerKey, shape: tuple[int, ...], feedback_fan_in: int, device=None, dtype=None
    ) -> torch.Tensor:
        reference = self.receiving_layer(key).weight
        matrix = draw_feedback(
            shape,
            init=self.params.feedback_init,
            scale=self.params.feedback_scale,
            feedback_fan_in=feedback_fan_in,
            forward_fan_in=forward_fan_in(reference),
            seed=self.feedback_seed,
            index=key,
        )
        # Follow the network's device and dtype; later .to() calls move buffers with the rule.
        matrix = matrix.to(device or reference.device, dtype or reference.dtype)
        self.register_buffer(buffer_name(key), matrix)
        self._feedback_keys.append(key)
        return matrix

    def fixed_feedback(self, key: LayerKey) -> torch.Tensor:
        """The fixed random feedback matrix drawn for the trainable layer (or point) ``key``."""
        return getattr(self, buffer_name(key))

    def has_feedback(self, key: LayerKey) -> bool:
        return getattr(self, buffer_name(key), None) is not None

    def feedback_indices(self) -> list[LayerKey]:
        """Keys of the layers (or points) that have a feedback buffer, in network order."""
        order = {layer_key(path): n for n, (path, _) in enumerate(self.network.named_modules())}
        return sorted(self._feedback_keys, key=order.__getitem__)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # Matrices drawn lazily (after a conv) may be in a checkpoint but not yet in this rule.
        keys = {buffer_name(layer_key(path)): layer_key(path) for path, _ in self.network.named_modules()}
        for name, value in state_dict.items():
            local = name[len(prefix) :]
            if name.startswith(prefix) and local in keys and not self.has_feedback(keys[local]):
                device = self.receiving_layer(keys[local]).weight.device
                self.register_buffer(local, torch.empty_like(value, device=device))
                self._feedback_keys.append(keys[local])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


class OutputFeedbackRule(FeedbackRule):
    """Base of dfa and ifa: feedback matrices (K, n) from the K output scores to a block output.

    n is the number of values in one example's block output (C*H*W for conv blocks). For blocks
    made of linear layers it is known at construction; after a conv it depends on the image size,
    which a rule does not receive, so those matrices are drawn at the first training step (from
    the same seeded CPU generator: the result does not depend on when or where it is drawn).
    Loading a state_dict creates any missing ones with the saved shapes.

    Both rules run every block on a detached input, so that no error travels through a forward
    weight unless the rule sends it there, and take the output error e from autograd on the loss
    alone (:meth:`_output_error`), so any loss works.
    """

    def _output_error(self, scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, e = dLoss/dscores (B, K)), without a graph through the network."""
        scores_leaf = scores.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(scores_leaf, y)
        (error,) = torch.autograd.grad(loss, scores_leaf)
        return loss.detach(), error

    def _output_feedback(self, key: LayerKey, output: torch.Tensor) -> torch.Tensor:
        """The (K, n) matrix of the block ``key``, drawn on first use for its output (B, ...)."""
        if self.has_feedback(key):
            return self.fixed_feedback(key)
        return self._add_feedback(
            key, (self.num_classes, output[0].numel()), self.num_classes, output.device, output.dtype
        )

    def _draw_known_feedback(self, blocks: list[tuple[LayerKey, nn.Module, list[nn.Module]]]) -> None:
        """Draw now the matrices of blocks (key, first module, the modules after it) of known width."""
        for key, first, post in blocks:
            width = _known_width(first, post)
            if width is not None:
                self._add_feedback(key, (self.num_classes, width), self.num_classes)


def _known_width(first: nn.Module, post: list[nn.Module]) -> int | None:
    """out_features of a linear block whose later modules keep the shape; None when unknown."""
    if not isinstance(first, nn.Linear):
        return None
    if any(not isinstance(m, SHAPE_KEEPING) for m in post):
        return None
    return first.out_features
