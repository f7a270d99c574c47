"""Direct feedback alignment (Nøkland 2016): the output error sent straight to every feedback point.

With e = dLoss/dscores (B, K), every hidden feedback point l receives at its output the signal
e B_l through its own fixed random matrix B_l (K, n_l), where n_l is the size of one example's
output there (C*H*W for conv blocks, one dense matrix). Autograd then applies the unit's own local
derivatives (activation, pooling, dropout, normalisation, a residual block's own layers) and gives
the layer's weight gradient, e.g. for a linear block with activation f:

    delta_l = f'(a_l) * (e B_l)        dW_l = delta_l^T h_{l-1}

Where the points are (one per trainable layer in a chain; one per residual block, or per layer
inside residual blocks too, with ``feedback_points``) is :mod:`altlearn.rules.feedback.direct`.
Each unit's input is detached, so no error travels through another unit's forward weight: the
backward pass costs one local backward per unit plus one (B, K) x (K, sum n_l) product, less than
BP. The output layer gets its ordinary local gradient dW_L = e^T h_{L-1}.
"""

from __future__ import annotations

import torch

from altlearn.rules.feedback.direct import DirectFeedbackParams, DirectFeedbackRule


class DirectFeedbackAlignment(DirectFeedbackRule):
    """DFA: the signal is the output error e itself; buffers ``feedback_<key>`` are (K, n_l)."""

    Params = DirectFeedbackParams

    def direct_signal(self, error: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return error  # (B, K)
