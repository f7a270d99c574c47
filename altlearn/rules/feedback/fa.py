"""Feedback alignment (Lillicrap et al. 2016): backpropagation through fixed random matrices.

The error travels back layer by layer as in BP, but from layer l to the layer below it goes through
a fixed random B_l shaped like W_l instead of W_l itself:

    delta_{l-1} = f'(a_{l-1}) * (B_l^T delta_l)     instead of   f'(a_{l-1}) * (W_l^T delta_l)

Each weight gradient is still local and exact given its delta: dW_l = delta_l h_{l-1}^T (and
db_l = sum over the batch of delta_l). Pooling, dropout, normalisation and activation derivatives
between layers are applied by autograd as in BP, and so is a residual block's sum: the error reaching
a block's output goes down both its body and its shortcut, and every linear or conv layer on either
path (a projection shortcut too) sends it on through its own B_l. The route is a property of each
layer (:func:`feedback_forwards`), not of a walk along a chain, so any graph of these modules
works. For conv layers B_l is a fixed random kernel shaped like the forward kernel, used in the
transposed convolution that carries the error to the layer's input.

Plugin authors: subclass :class:`FeedbackAlignment` and override :meth:`~FeedbackAlignment.feedback_weight`
to change how the matrix used for the backward pass is obtained at each step (sign-symmetry, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.nn.network import LayerKey, trainable_layers
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
    """Conv2d whose input gradient is the transposed convolution with the feedback kernel B.

    One call of aten's convolution_backward (the kernel BP's backward runs) gives all three
    gradients: the weight and bias gradients do not depend on the kernel's values, only its shape,
    so passing B as the kernel yields B's input gradient and W's exact weight gradient at BP's cost.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, feedback: FeedbackSource, conv: nn.Conv2d):
        ctx.save_for_backward(x, weight)
        ctx.feedback = feedback
        ctx.geometry = (list(conv.stride), list(conv.padding), list(conv.dilation))
        ctx.groups = conv.groups
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, grad_out):  # grad_out (B, C_out, H', W')
        x, weight = ctx.saved_tensors  # (B, C_in, H, W), (C_out, C_in/groups, kh, kw)
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        want_b = ctx.bias_sizes is not None and ctx.needs_input_grad[2]
        # B where BP uses W: it only changes the input gradient (same shape as W)
        kernel = ctx.feedback().to(grad_out.dtype) if want_x else weight
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            kernel,
            ctx.bias_sizes,
            *ctx.geometry,
            False,
            [0, 0],
            ctx.groups,
            [want_x, want_w, want_b],
        )
        return grad_x, grad_w, grad_b, None, None


def feedback_layer(layer: nn.Module, x: torch.Tensor, *, feedback: FeedbackSource) -> torch.Tensor:
    """Run ``layer`` (Linear or Conv2d) on ``x`` with the feedback route for its input gradient."""
    if isinstance(layer, nn.Linear):
        return _FeedbackLinear.apply(x, layer.weight, layer.bias, feedback)
    return _FeedbackConv2d.apply(x, layer.weight, layer.bias, feedback, layer)


@contextmanager
def feedback_forwards(layers: list[tuple[nn.Module, FeedbackSource]]) -> Iterator[None]:
    """Within the context, each listed layer runs with its feedback route for the input gradient.

    The layer's own ``forward`` is shadowed (an instance attribute) and restored on exit, so the
    route belongs to the layer wherever it sits in the graph (residual bodies, shortcuts) and the
    network outside a training step, e.g. the logged model, is plain torch.
    """
    try:
        for layer, source in layers:
            layer.forward = partial(feedback_layer, layer, feedback=source)
        yield
    finally:
        for layer, _ in layers:
            layer.__dict__.pop("forward", None)


class FeedbackAlignment(FeedbackRule):
    """Feedback alignment for networks of linear and conv2d layers (public base for variants).

    One fixed random buffer ``feedback_<key>``, shaped like the layer's weight, is drawn for every
    trainable layer anywhere in the network except the first one met (nothing is sent below the
    network's input). The output layer's own weight gradient is exact; every error sent downwards
    through a linear or conv layer goes through :meth:`feedback_weight`. Everything else
    (activations, pooling, normalisation layers, the sum of a residual block) has its ordinary
    local derivative, and normalisation layers their ordinary gradient.
    """

    Params = FeedbackParams

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        for key, layer in trainable_layers(self.network)[1:]:
            weight = layer.weight  # (out, in) or (C_out, C_in/groups, kh, kw)
            self._add_feedback(key, tuple(weight.shape), feedback_fan_in(weight))
        self._routes = [(key, self.network.get_submodule(str(key))) for key in self.feedback_indices()]

    def feedback_weight(self, index: LayerKey, layer: nn.Module) -> torch.Tensor:
        """The matrix that carries the error from the output of ``layer`` to its input, this step.

        THE extension point for variants of feedback alignment. ``index`` is the layer's key: its
        position in the network (an int) for a top-level layer, its module path (``"3.body.0"``)
        for a layer inside a residual block; ``layer`` is the ``nn.Linear``/``nn.Conv2d`` itself.
        Return a tensor shaped like ``layer.weight`` (on its device); the backward pass uses it
        where BP would use ``layer.weight``. It is called once per layer and step, during the
        backward pass and under ``torch.no_grad()``, for every trainable layer but the first. Never
        trained, never given a gradient. The default returns the fixed random matrix
        :meth:`fixed_feedback` ``(index)``.

        Example (sign-symmetry): ``return layer.weight.sign() * self.fixed_feedback(index).abs()``.
        If it draws random numbers, use generators of your own (``altlearn.api.DeviceGenerators``,
        saved in ``get_extra_state``): sharing the global one would change the dropout masks and
        make the alignment diagnostics compare different forward passes.
        """
        return self.fixed_feedback(index)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        with feedback_forwards([(layer, self._feedback_source(key, layer)) for key, layer in self._routes]):
            scores = self.network(x)  # (B, K)
        loss = self.loss(scores, y)
        loss.backward()
        return {"loss": loss.detach(), "accuracy": accuracy(scores.detach(), y)}

    def _feedback_source(self, key: LayerKey, layer: nn.Module) -> FeedbackSource:
        def source() -> torch.Tensor:
            with torch.no_grad():
                return self.feedback_weight(key, layer).detach()

        return source
