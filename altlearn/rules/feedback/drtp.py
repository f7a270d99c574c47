"""Direct random target projection (Frenkel, Lefebvre & Bol 2021): the *target* sent to every point.

DRTP is DFA with the output error replaced by the one-hot target y* (B, K): every hidden feedback
point l receives at its output the signal ``(y*/B) B_l`` through its own fixed random matrix B_l
(K, n_l); autograd applies the unit's own local derivatives, so for a linear block with
activation f

    delta_l = f'(a_l) * ((y*/B) B_l)        dW_l = delta_l^T h_{l-1}

(the paper's delta_l = (B_l^T y*) * f'(a_l), averaged over the batch like the mean loss the output
layer is trained on). The signal needs no output: a hidden layer's update is known before the
forward pass reaches the output, so there is no backward pass and no wait for the error
(update locking is lifted). The output layer gets its ordinary local gradient dW_L = e^T h_{L-1}.

The sign of y* is immaterial: B_l is drawn from a distribution symmetric about 0, so +y* and -y*
give the same rule up to the draw. Points, detached units, conv and residual networks are
:mod:`altlearn.rules.feedback.direct`'s, as for dfa.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from altlearn.rules.feedback.direct import DirectFeedbackParams, DirectFeedbackRule


class DirectRandomTargetProjection(DirectFeedbackRule):
    """DRTP: the signal is the one-hot target over the batch size; buffers ``feedback_<key>`` (K, n_l)."""

    Params = DirectFeedbackParams
    # train.compile works too, but is not declared: on conv chains the first step draws the conv
    # feedback matrices (hashlib seeds, a graph break), which altlearn.testing's compile check refuses
    supports = frozenset({"bf16"})  # checked by altlearn.testing

    def direct_signal(self, error: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.num_classes).to(error.dtype)  # (B, K)
        return onehot / y.shape[0]
