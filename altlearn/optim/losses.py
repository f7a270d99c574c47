"""Losses a spec can choose (``train.loss``). Each maps (scores (B, K), labels (B,)) -> mean loss.

A loss is a component: a :class:`Loss` subclass registered through ``altlearn_register_losses``
(the built-ins by ``altlearn.registry.builtins``), whose ``build(params)`` returns the loss function.
Rules that need the error at the output (DFA, IFA) take the loss's derivative with autograd, so any
loss here works with every rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from altlearn.components.base import ComponentParams, Params
from altlearn.components.values import Fraction

#: loss(scores (B, K), labels (B,)) -> the batch's mean loss, a scalar tensor
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Loss:
    """A training loss a spec names as ``train.loss``: its options and the function they give."""

    Params: ClassVar[type[Params]] = Params

    @staticmethod
    def build(params: ComponentParams) -> LossFn:
        raise NotImplementedError  # abstract


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(scores, labels)


def mse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error against one-hot targets, summed over classes and averaged over the batch."""
    target = F.one_hot(labels, scores.shape[-1]).to(scores.dtype)
    return (scores - target).pow(2).sum(dim=-1).mean() / 2


def bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each class's sigmoid against one-hot targets (Nøkland 2016's loss),
    summed over classes and averaged over the batch: the output error is sigmoid(scores) - onehot."""
    target = F.one_hot(labels, scores.shape[-1]).to(scores.dtype)
    return F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / scores.shape[0]


class CrossEntropy(Loss):
    class Params(Params):
        label_smoothing: Fraction = Field(
            0.0,
            description="mix this much of the uniform distribution into the one-hot targets",
        )

    @staticmethod
    # A component is only ever built with its own Params (the validator parses its block with them).
    def build(params: Params) -> LossFn:  # type: ignore[override]
        if params.label_smoothing == 0:
            return cross_entropy
        return functools.partial(F.cross_entropy, label_smoothing=params.label_smoothing)


class MSE(Loss):
    @staticmethod
    def build(params: Params) -> LossFn:
        return mse


class BCE(Loss):
    @staticmethod
    def build(params: Params) -> LossFn:
        return bce
