"""PEPITA (Dellaferrera & Kreiman 2022): error-driven input modulation, two forward passes.

For a chain of linear blocks h_l = f_l(W_l h_{l-1} + b_l), h_0 = x flattened (B, D), scores
s = h_L (B, K):

1. the standard pass gives h_l and the per-example output error e = dloss_n/ds_n (B, K)
   (softmax(s) - onehot(y) for cross-entropy; any ``train.loss`` works: autograd on each
   example's own loss, not the batch mean);
2. the modulated pass runs on x' = x + e F, with F a fixed random matrix (K, D) drawn
   U(-a, a), a = ``input_feedback_scale`` * sqrt(6 / D) (the paper's 0.05 * sqrt(6/D)), and gives h'_l;
3. the updates, averaged over the batch (the paper's, as gradients the optimizer descends):

       hidden l < L:   dW_l = (h_l - h'_l)^T h'_{l-1} / B      db_l = mean_n (h_l - h'_l)
       output L:       dW_L = e^T h'_{L-1} / B                 db_L = mean_n e

   with h'_0 = x'. No f'(a) appears and nothing travels backwards through any weight: each layer
   needs its own two activities and its input, plus the error sent to the input once.

Both passes run in float32 also under ``train.precision: bf16`` (autocast is switched off for the
step; evaluation stays under it): h_l - h'_l is about 1 % of h_l, which bf16's 8-bit mantissa
does not resolve (the update then pointed elsewhere than in float32).

Hidden blocks may contain only elementwise activations after their linear layer (h - h' is
taken at the block's output); dropout and normalisation are refused (the two passes would differ
by more than the modulation). Weight decay and learning-rate decay are the spec's optimizer and
schedule; the weight mirroring and normalisation of Srinivasan et al. 2023 are not implemented.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Real, Seed
from altlearn.rules.base import Rule, RuleContext, accuracy
from altlearn.rules.feedback.checks import ELEMENTWISE
from altlearn.rules.local.chain import chain_problems, linear_blocks
from altlearn.rules.randomness import layer_seed


class PepitaParams(Params):
    """How the error is sent to the input."""

    input_feedback_scale: Real = Field(
        0.05,
        gt=0.0,
        le=1e3,
        description="F is drawn U(+-scale*sqrt(6/D)), D the input size (the paper: 0.05)",
    )
    feedback_seed: Seed | None = Field(None, ge=0, description="seed of F; null: the spec's seed")


class Pepita(Rule):
    """PEPITA on MLPs; buffer ``input_feedback`` is F (K, D)."""

    Params = PepitaParams
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
    params: PepitaParams
    input_feedback: torch.Tensor  # a buffer

    def __init__(self, params: PepitaParams, context: RuleContext) -> None:
        super().__init__(params, context)
        _, blocks = linear_blocks(self.network)
        inputs = blocks[0].layer.in_features
        bound = params.input_feedback_scale * math.sqrt(6.0 / inputs)
        seed = self.seed if params.feedback_seed is None else params.feedback_seed
        generator = torch.Generator(device="cpu").manual_seed(layer_seed(seed, "input", "pepita"))
        matrix = torch.empty(self.num_classes, inputs).uniform_(-bound, bound, generator=generator)
        weight = blocks[0].layer.weight
        self.register_buffer("input_feedback", matrix.to(weight.device, weight.dtype))

    @classmethod
    def check_network(cls, network, params) -> list:
        return chain_problems(network, ELEMENTWISE, "elementwise activations only")

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[h_0 (B, D), h_1, ..., h_L = scores], no graph."""
        prefix, blocks = linear_blocks(self.network)
        for module in prefix:
            x = module(x)
        activities = [x.flatten(1)]
        for block in blocks:
            activities.append(block.run_post(block.layer(activities[-1])))
        return activities

    def _example_error(self, scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the batch's mean loss, e (B, K): each example's own dloss/dscores)."""
        leaf = _wide(scores.detach()).requires_grad_(True)
        with torch.enable_grad():
            (error,) = torch.autograd.grad(self.example_loss(leaf, y).sum(), leaf)
            loss = self.loss(leaf, y)
        return loss.detach(), error

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        # float32 also under bf16 autocast: h - h' is about 1 % of h, below bf16's resolution
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            first = self._forward(x)
            loss, error = self._example_error(first[-1], y)
            modulation = error.to(self.input_feedback.dtype) @ self.input_feedback  # (B, D)
            second = self._forward(x + modulation.view_as(x))
            _, blocks = linear_blocks(self.network)
            batch = x.shape[0]
            for n, block in enumerate(blocks):
                last = n == len(blocks) - 1
                delta = error if last else _wide(first[n + 1] - second[n + 1])  # (B, n_l)
                _set_grad(block.layer, delta, _wide(second[n]), batch)
            size = modulation.norm() / first[0].norm().clamp_min(1e-12)
        return {
            "loss": loss,
            "accuracy": accuracy(first[-1], y),
            "pepita/modulation": _wide(size),  # ||e F|| / ||x|| over the batch
        }


def _wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 activities under autocast), float64 kept."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _set_grad(layer: nn.Linear, delta: torch.Tensor, inputs: torch.Tensor, batch: int) -> None:
    """.grad of a linear layer from (B, out) deltas and (B, in) inputs, averaged over the batch."""
    layer.weight.grad = (delta.T @ inputs / batch).to(layer.weight.dtype)
    if layer.bias is not None:
        layer.bias.grad = (delta.sum(0) / batch).to(layer.bias.dtype)
