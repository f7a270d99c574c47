"""Discriminative predictive coding (Whittington & Bogacz 2017; PC-SE, PC-CE and iPC as in pcx).

The network is read as a chain of blocks f_1..f_L (:mod:`.chain`): f_l is a trainable layer with
the parameter-free modules after it. Value nodes v_1..v_{L-1} (one per hidden block output, shaped
like it: (B, n) or (B, C, H, W)) start from the feedforward pass, v_0 is the (prefixed) input and
the output is clamped to the target. The energy of a batch is

    E = sum_{l<L} ||v_l - f_l(v_{l-1})||^2 / 2  +  O(f_L(v_{L-1}), y)

with O = ||onehot(y) - f_L(v_{L-1})||^2 / 2 (``energy: se``) or the cross-entropy of the scores
f_L(v_{L-1}) (``energy: ce``, PC-CE). Inference takes T steps v_l <- v_l - gamma dE/dv_l on every
hidden value node at once (one autograd pass through the blocks per step, no Python work per unit,
no host sync). The weights then get dE/dW_l / B at the relaxed values, with every v detached: layer
l's gradient is its own term only, e_l dF_l/dW_l with e_l = v_l - f_l(v_{l-1}), its equilibrium
prediction error; the spec's optimizer applies it.

``incremental: true`` (iPC, Salvatori et al. 2024) takes the weight gradient at every inference
step instead of only at the end. The trainer owns the optimizer and steps it once per batch, so
the T+1 gradients (steps 0..T) are averaged into ``.grad`` and applied together: iPC's weight
steps within one batch, taken at fixed weights (the same to first order in the learning rate).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from altlearn.components.base import Params
from altlearn.components.values import NonNegativeCount, PositiveReal
from altlearn.nn.network import LayerBlock
from altlearn.rules.base import Rule, accuracy
from altlearn.rules.energy.chain import (
    ACTIVATIONS,
    POOLING,
    RESHAPE,
    Problems,
    block_parameters,
    blocks_of,
    chain_problems,
    energy_metrics,
    run_block,
    run_prefix,
)

CHAIN_ONLY = "it trains chains of linear and conv2d layers with activations, pooling and flatten between them"


class PredictiveCodingParams(Params):
    """Options of ``pc``."""

    inference_steps: NonNegativeCount = Field(
        20, le=10_000, description="T: gradient steps on the value nodes before the weight update"
    )
    inference_lr: PositiveReal = Field(
        0.03,
        le=10.0,
        description="gamma: step size of the value nodes' gradient descent on the energy",
    )
    energy: Literal["se", "ce"] = Field(
        "se",
        description=(
            "output term of the energy: se, squared error to the one-hot target (PC-SE); "
            "ce, cross-entropy of the output scores (PC-CE)"
        ),
    )
    incremental: bool = Field(
        False,
        description=(
            "iPC: take the weight gradient at every inference step (0..T) and average them into "
            ".grad (the spec's optimizer steps once per batch)"
        ),
    )


class PredictiveCoding(Rule):
    """``pc``: relax the value nodes on the prediction-error energy, then the local weight update."""

    Params: ClassVar[type[PredictiveCodingParams]] = PredictiveCodingParams
    params: PredictiveCodingParams

    @classmethod
    def check_network(cls, network, params) -> Problems:
        return chain_problems(network, ACTIVATIONS + POOLING + RESHAPE, CHAIN_ONLY)

    def _chain(self) -> tuple[list[torch.nn.Module], list[LayerBlock]]:
        return blocks_of(self.network)  # computed per call: no second registration of the layers

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.learn(x, y)

    def learn(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """One batch: feedforward pass, inference, weight gradients into ``.grad``; the metrics.

        ``target`` (B, K) replaces the one-hot target of ``energy: se`` (tests use a target close
        to the prediction, the small-error limit where PC approximates BP).
        """
        prefix, blocks = self._chain()
        with torch.no_grad():
            states = [run_prefix(prefix, x)]
            for block in blocks[:-1]:
                states.append(run_block(block, states[-1]))
            scores = run_block(blocks[-1], states[-1])
        if target is None and self.params.energy == "se":
            target = F.one_hot(y, scores.shape[-1]).to(scores.dtype)
        values = [v.requires_grad_(True) for v in states[1:]]
        start, end = self._relax_and_update(blocks, states[0], values, y, target)
        metrics = {"loss": self.loss(scores, y), "accuracy": accuracy(scores, y)}
        return metrics | energy_metrics("pc", start / len(x), end / len(x))

    def _relax_and_update(self, blocks, x0, values, y, target) -> tuple[torch.Tensor, torch.Tensor]:
        """T inference steps on ``values`` (in place), then ``.grad`` of the layers; (E_0, E_T)."""
        params = block_parameters(blocks)
        steps = self.params.inference_steps if values else 0  # nothing to relax in a one-layer net
        lr = self.params.inference_lr
        incremental = self.params.incremental
        summed = [torch.zeros_like(p) for p in params] if incremental else []
        start: torch.Tensor | None = None
        for step in range(steps + 1):
            energy = self.energy(blocks, x0, values, y, target)
            start = energy.detach() if start is None else start
            relaxing = values if step < steps else []
            wanted = relaxing + (params if incremental or step == steps else [])
            if not wanted:
                break
            grads = torch.autograd.grad(energy, wanted)
            value_grads, param_grads = grads[: len(relaxing)], grads[len(relaxing) :]
            with torch.no_grad():
                for value, grad in zip(values, value_grads):
                    value.sub_(grad, alpha=lr)
                for total, grad in zip(summed, param_grads):
                    total.add_(grad)
        final = summed if incremental else list(param_grads)
        scale = 1.0 / (len(x0) * (steps + 1 if incremental else 1))
        for param, grad in zip(params, final):
            param.grad = grad * scale
        assert start is not None  # set by step 0
        return start, energy.detach()

    def energy(self, blocks, x0, values, y, target) -> torch.Tensor:
        """The batch's summed energy at value nodes ``values`` (hidden block outputs, in order)."""
        below = [x0, *values[:-1]] if values else []
        total = x0.new_zeros(())
        for block, inputs, value in zip(blocks[:-1], below, values):
            total = total + (value - run_block(block, inputs)).pow(2).sum() / 2
        scores = run_block(blocks[-1], values[-1] if values else x0)
        if self.params.energy == "ce":
            return total + F.cross_entropy(scores, y, reduction="sum")
        return total + (target - scores).pow(2).sum() / 2
