"""Indirect feedback alignment (Nøkland 2016, Fig. 1): error to the first hidden layer, then upwards.

With e = dLoss/dscores (B, K):

    delta_1     = f'(a_1) * (e B_1)                     B_1: (K, n_1), fixed random
    delta_{l+1} = f'(a_{l+1}) * (W_{l+1} delta_l)        the forward weights, without bias
    dW_l        = delta_l^T h_{l-1}                      for every hidden layer l
    dW_L        = e^T h_{L-1}                            the output layer: its ordinary local gradient

"f'(a) *" stands for the backward of the parameter-free layers of the block (activation and
dropout, applied by autograd with the forward pass's mask). Since the error moves up through the
layers, those layers must map each unit to itself: elementwise activations, dropout and flatten.
Conv2d layers work too (W_{l+1} delta_l is then the layer's convolution of delta_l, without bias);
pooling between trainable layers is rejected by :meth:`check_network`.

IFA is defined for chains only: the error climbs from one layer to the next through W_{l+1}, and a
residual block has no single next layer (its sum has two inputs), nor a normalisation layer a map
from each unit to itself (batch norm mixes the batch, layer norm the units), so both are refused.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.nn.network import split_blocks
from altlearn.rules.base import RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, OutputFeedbackRule
from altlearn.rules.feedback.checks import DROPOUT, ELEMENTWISE, RESHAPE, layer_problems


def _forward_map(layer: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """The layer's linear map (no bias) applied to an error shaped like the layer's input."""
    if isinstance(layer, nn.Linear):
        return F.linear(delta, layer.weight)  # (B, in) -> (B, out)
    conv = cast(nn.Conv2d, layer)  # a block's layer is trainable: nn.Linear or nn.Conv2d
    return F.conv2d(delta, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


class IndirectFeedbackAlignment(OutputFeedbackRule):
    """IFA; one buffer ``feedback_<index>`` (K, n_1) for the first hidden layer only."""

    Params = FeedbackParams

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self._prefix, blocks = split_blocks(self.network)
        self._hidden, self._output = blocks[:-1], blocks[-1]
        first = self._hidden[0]
        self._draw_known_feedback([(first.index, first.layer, first.post)])

    @classmethod
    def check_network(cls, network, params):
        return layer_problems(
            network,
            min_trainable=2,
            allowed_post=ELEMENTWISE + DROPOUT + RESHAPE,
            hidden_post_reason=(
                "it carries the error up through the hidden layers of a chain, which needs every "
                "unit mapped to itself (elementwise activations, dropout, flatten): no residual "
                "blocks, normalisation or pooling; use strided conv2d instead of pooling, or rule fa "
                "or dfa"
            ),
        )

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

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        pre, outputs, scores = self._forward_blocks(x)  # a_l (graph to W_l), h_l, (B, K)
        loss, error = self._output_error(scores, y)  # error (B, K)
        deltas: list[torch.Tensor] = []
        signal = (error @ self._output_feedback(self._hidden[0].index, outputs[0])).view_as(outputs[0])
        for depth, block in enumerate(self._hidden):
            if depth > 0:
                with torch.no_grad():  # W_l delta_{l-1}: the input-shaped error moves up
                    below = deltas[-1].reshape(outputs[depth - 1].shape)
                    signal = _forward_map(block.layer, below).reshape(outputs[depth].shape)
            # The block's local backward (activation derivative, dropout mask): delta_l, shaped as a_l.
            (delta,) = torch.autograd.grad(outputs[depth], pre[depth], signal, retain_graph=True)
            deltas.append(delta)
        torch.autograd.backward([scores, *pre], [error, *deltas])
        return {"loss": loss, "accuracy": accuracy(scores.detach(), y)}
