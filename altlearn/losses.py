"""Losses a spec can choose (``train.loss``). Each maps (scores (B, K), labels (B,)) -> mean loss.

Rules that need the error at the output (DFA, IFA) take the loss's derivative with autograd, so any
loss here works with every rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(scores, labels)


def mse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error against one-hot targets, summed over classes and averaged over the batch."""
    target = F.one_hot(labels, scores.shape[-1]).to(scores.dtype)
    return (scores - target).pow(2).sum(dim=-1).mean() / 2


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}
