"""Direct feedback alignment (Nøkland 2016): the output error sent straight to every hidden block.

With e = dLoss/dscores (B, K), every hidden block l (a trainable layer and the parameter-free layers
after it) receives at its output the signal B_l e through its own fixed random matrix B_l (K, n_l),
where n_l is the size of one example's block output (C*H*W for conv blocks, one dense matrix).
Autograd then applies the block's own local derivatives (activation, pooling, dropout) and gives
the layer's weight gradient, e.g. for a linear block with activation f:

    delta_l = f'(a_l) * (e B_l)        dW_l = delta_l^T h_{l-1}

Each block's input is detached, so no error ever travels through a forward weight: the backward pass
costs one weight-gradient product per layer plus one (B, K) x (K, sum n_l) product, far less than
BP. The output layer gets its ordinary local gradient dW_L = e^T h_{L-1}.
"""

from __future__ import annotations

import torch

from altlearn.rules.base import RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, OutputFeedbackRule
from altlearn.rules.feedback.checks import layer_problems


class DirectFeedbackAlignment(OutputFeedbackRule):
    """DFA for networks of linear and conv2d layers; buffers ``feedback_<index>`` are (K, n_l)."""

    Params = FeedbackParams
    rule_name = "dfa"

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self._draw_known_feedback(self._hidden)

    @classmethod
    def check_network(cls, network, params):
        return layer_problems(network, cls.rule_name, min_trainable=2)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        _, outputs, scores = self._forward_blocks(x)
        loss, error = self._output_error(scores, y)  # error (B, K)
        signals = [
            (error @ self._output_feedback(block, out)).view_as(out)  # (B, K) @ (K, n_l)
            for block, out in zip(self._hidden, outputs)
        ]
        # One backward pass over all blocks: each gets its signal, the output layer gets e.
        torch.autograd.backward([scores, *outputs], [error, *signals])
        return {"loss": loss, "accuracy": accuracy(scores.detach(), y)}
