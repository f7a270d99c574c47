"""Feedback alignment (Lillicrap et al. 2016): backpropagation through fixed random matrices.

The error travels back layer by layer as in BP, but from layer l to the layer below it goes through
a fixed random B_l shaped like W_l instead of W_l itself:

    delta_{l-1} = f'(a_{l-1}) * (B_l^T delta_l)     instead of   f'(a_{l-1}) * (W_l^T delta_l)

Each weight gradient is still local and exact given its delta: dW_l = delta_l h_{l-1}^T (and
db_l = sum over the batch of delta_l). Pooling, dropout and activation derivatives between layers
are applied by autograd as in BP. For conv layers B_l is a fixed random kernel shaped like the
forward kernel, used in the transposed convolution that carries the error to the layer's input.

Plugin authors: subclass :class:`FeedbackAlignment` and override :meth:`~FeedbackAlignment.feedback_weight`
to change how the matrix used for the backward pass is obtained at each step (sign-symmetry, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import grad as nn_grad

from altlearn.network import trainable_indices
from altlearn.rules.base import RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, FeedbackRule, feedback_fan_in

FeedbackSource = Callable[[], torch.Tensor]


class _FeedbackLinear(torch.autograd.Function):
    """y = x W^T + b; backward: grad_x = g B (B shaped like W), grad_W = g^T x, grad_b = sum g."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback: FeedbackSource):
        ctx.save_for_backward(x)
        ctx.feedback = feedback  # called in backward, so a random B never shifts dropout masks
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)  # (..., out)

    @staticmethod
    def backward(ctx, grad_out):  # grad_out (..., out)
        (x,) = ctx.saved_tensors  # (..., in)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ ctx.feedback().to(grad_out.dtype)  # (..., out) @ (out, in)
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.reshape(-1, grad_out.shape[-1]).T @ x.reshape(-1, x.shape[-1])  # (out, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)  # (out,)
        return grad_x, grad_w, grad_b, None


class _FeedbackConv2d(torch.autograd.Function):
    """Conv2d whose input gradient is the transposed convolution with the feedback kernel B."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback: FeedbackSource, conv: nn.Conv2d):
        ctx.save_for_backward(x)
        ctx.feedback = feedback
        ctx.weight_shape = weight.shape
        ctx.geometry = (conv.stride, conv.padding, conv.dilation, conv.groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, *ctx.geometry)  # (B, C_out, H', W')

    @staticmethod
    def backward(ctx, grad_out):  # grad_out (B, C_out, H', W')
        (x,) = ctx.saved_tensors  # (B, C_in, H, W)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            kernel = ctx.feedback().to(grad_out.dtype)  # (C_out, C_in/groups, kh, kw)
            grad_x = nn_grad.conv2d_input(x.shape, kernel, grad_out, *ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_w = nn_grad.conv2d_weight(x, ctx.weight_shape, grad_out, *ctx.geometry)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))  # (C_out,)
        return grad_x, grad_w, grad_b, None, None


def feedback_layer(layer: nn.Module, x: torch.Tensor, feedback: FeedbackSource) -> torch.Tensor:
    """Run ``layer`` (Linear or Conv2d) on ``x`` with the feedback route for its input gradient."""
    if isinstance(layer, nn.Linear):
        return _FeedbackLinear.apply(x, layer.weight, layer.bias, feedback)
    return _FeedbackConv2d.apply(x, layer.weight, layer.bias, feedback, layer)


class FeedbackAlignment(FeedbackRule):
    """Feedback alignment for networks of linear and conv2d layers (public base for variants).

    One fixed random buffer ``feedback_<index>``, shaped like the layer's weight, is drawn for every
    trainable layer except the first (nothing is sent below the first layer). The output layer's
    own weight gradient is exact; every error sent downwards goes through :meth:`feedback_weight`.
    """

    Params = FeedbackParams
    rule_name = "fa"

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        for index in trainable_indices(self.network)[1:]:
            weight = self.network[index].weight  # (out, in) or (C_out, C_in/groups, kh, kw)
            self._add_feedback(index, tuple(weight.shape), feedback_fan_in(weight))

    def feedback_weight(self, index: int, layer: nn.Module) -> torch.Tensor:
        """The matrix that carries the error from the output of ``layer`` to its input, this step.

        THE extension point for variants of feedback alignment. ``index`` is the layer's position in
        the network, ``layer`` the ``nn.Linear``/``nn.Conv2d`` itself. Return a tensor shaped like
        ``layer.weight`` (on its device); the backward pass uses it where BP would use
        ``layer.weight``. It is called once per layer and step, during the backward pass and under
        ``torch.no_grad()``, for every trainable layer but the first. Never trained, never given a
        gradient. The default returns the fixed random matrix :meth:`fixed_feedback` ``(index)``.

        Example (sign-symmetry): ``return layer.weight.sign() * self.fixed_feedback(index).abs()``.
        If it draws random numbers, use generators of your own (``altlearn.api.DeviceGenerators``,
        saved in ``get_extra_state``): sharing the global one would change the dropout masks and
        make the alignment diagnostics compare different forward passes.
        """
        return self.fixed_feedback(index)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        feedback_layers = set(self.feedback_indices())
        h = x
        for index, module in enumerate(self.network):
            if index in feedback_layers:
                h = feedback_layer(module, h, self._feedback_source(index, module))
            else:  # parameter-free modules, and the first trainable layer (exact local gradient)
                h = module(h)
        scores = h  # (B, K)
        loss = self.loss(scores, y)
        loss.backward()
        return {"loss": loss.detach(), "accuracy": accuracy(scores.detach(), y)}

    def _feedback_source(self, index: int, layer: nn.Module) -> FeedbackSource:
        def source() -> torch.Tensor:
            with torch.no_grad():
                return self.feedback_weight(index, layer).detach()

        return source
