"""Discriminative predictive coding (Whittington & Bogacz 2017; PC-SE, PC-CE and iPC as in pcx).

The network is read as a chain of blocks f_1..f_L (:mod:`.chain`): f_l is a trainable layer with
the parameter-free modules after it. Value nodes v_1..v_{L-1} (one per hidden block output, shaped
like it: (B, n) or (B, C, H, W)) start from the feedforward pass, v_0 is the (prefixed) input and
the output is clamped to the target. The energy of a batch is

    E = sum_{l<L} ||v_l - f_l(v_{l-1})||^2 / 2  +  O(f_L(v_{L-1}), y)

with O = ||onehot(y) - f_L(v_{L-1})||^2 / 2 (``energy: se``) or the cross-entropy of the scores
f_L(v_{L-1}) (``energy: ce``, PC-CE). Inference takes T steps v_l <- v_l - gamma dE/dv_l on every
hidden value node at once (one autograd pass through blocks 2..L per step, no Python work per unit,
no host sync; f_1(v_0) does not change while the values relax, so it is taken from the feedforward
pass). The value nodes are float32 also under bf16 autocast. The weights then get dE/dW_l / B at
the relaxed values, with every v detached: layer l's gradient is its own term only, e_l dF_l/dW_l
with e_l = v_l - f_l(v_{l-1}), its equilibrium prediction error; the spec's optimizer applies it.

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
    inference_momentum: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "mu: heavy-ball momentum of the value nodes' descent (velocity = mu velocity + dE/dv, "
            "reset every batch; pcx's SGD on the values); 0: plain gradient steps"
        ),
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
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
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
            target = F.one_hot(y, scores.shape[-1]).to(wide(scores).dtype)
        # The value nodes are float32 also under bf16 autocast: an inference step moves them by
        # less than bf16 resolves. f_1(v_0) = states[1] stays fixed while they relax (x and the
        # weights do not change), so inference never recomputes the first block.
        values = [wide(v).clone().requires_grad_(True) for v in states[1:]]
        first = states[1] if values else None
        start, end = self._relax_and_update(blocks, states[0], values, first, y, target)
        metrics = {"loss": self.loss(scores, y), "accuracy": accuracy(scores, y)}
        return metrics | energy_metrics("pc", start / len(x), end / len(x))

    def _relax_and_update(self, blocks, x0, values, first, y, target) -> tuple[torch.Tensor, torch.Tensor]:
        """T inference steps on ``values`` (in place), then ``.grad`` of the layers; (E_0, E_T).

        A step's gradients come from one autograd call over the blocks' predictions with their
        energy derivatives as ``grad_outputs`` (dE/dp_l = -e_l; the output term's, in closed form):
        dE/dv_l = e_l + (that call's gradient at v_l), and dE/dW_l its gradient at W_l.
        """
        params = block_parameters(blocks)
        steps = self.params.inference_steps if values else 0  # nothing to relax in a one-layer net
        lr, incremental = self.params.inference_lr, self.params.incremental
        momentum = self.params.inference_momentum
        velocities = [torch.zeros_like(v) for v in values] if momentum else []
        summed = [torch.zeros_like(p) for p in params] if incremental else []
        energies: list[torch.Tensor] = []
        for step in range(steps + 1):
            weights = incremental or step == steps
            relaxing = values if step < steps else []
            below = values if relaxing or incremental else [v.detach() for v in values]
            predictions = self.predictions(blocks, x0, below, None if weights else first)
            signals, errors = self._signals(predictions, values, y, target)
            if step == 0 or step == steps:
                energies.append(self._energy(errors, predictions[-1], y, target))
            live = [n for n, p in enumerate(predictions) if p.requires_grad]  # not a known f_1(v_0)
            grads = torch.autograd.grad(
                [predictions[n] for n in live],
                relaxing + (params if weights else []),
                [signals[n] for n in live],
                allow_unused=True,
            )
            with torch.no_grad():
                step_values(values, velocities, errors, grads[: len(relaxing)], lr, momentum)
                for total, grad in zip(summed, grads[len(relaxing) :]):
                    total.add_(grad)
        final = summed if incremental else list(grads)
        scale = 1.0 / (len(x0) * (steps + 1 if incremental else 1))
        for param, grad in zip(params, final):
            param.grad = torch.zeros_like(param) if grad is None else grad * scale
        return energies[0], energies[-1]

    def predictions(self, blocks, x0, values, first=None) -> list[torch.Tensor]:
        """[f_1(v_0), ..., f_L(v_{L-1})]: each block's prediction of the value node above it, the
        last one the scores; ``first`` is f_1(v_0) when already known (it is then not recomputed)."""
        head = run_block(blocks[0], x0) if first is None else first
        return [head, *(run_block(block, value) for block, value in zip(blocks[1:], values))]

    def _signals(self, predictions, values, y, target) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(dE/dp for every prediction p, the errors e_l = v_l - p_l), all without a graph."""
        errors = [value.detach() - p.detach() for value, p in zip(values, predictions)]
        scores = wide(predictions[-1].detach())
        if self.params.energy == "ce":
            output = scores.softmax(-1) - F.one_hot(y, scores.shape[-1]).to(scores.dtype)
        else:
            output = scores - target
        signals = [-error for error in errors] + [output]
        return [s.to(p.dtype) for s, p in zip(signals, predictions)], errors

    def _energy(self, errors, scores, y, target) -> torch.Tensor:
        """The batch's summed energy from the hidden errors and the scores (no graph)."""
        total = errors[0].new_zeros(()) if errors else wide(scores.detach()).new_zeros(())
        for error in errors:
            total = total + error.pow(2).sum() / 2
        scores = wide(scores.detach())
        if self.params.energy == "ce":
            return total + F.cross_entropy(scores, y, reduction="sum")
        return total + (target - scores).pow(2).sum() / 2

    def energy(self, blocks, x0, values, y, target) -> torch.Tensor:
        """The batch's summed energy at value nodes ``values`` (hidden block outputs, in order)."""
        predictions = self.predictions(blocks, x0, values)
        return self._energy(self._signals(predictions, values, y, target)[1], predictions[-1], y, target)


def step_values(values, velocities, errors, grads, lr: float, momentum: float) -> None:
    """One descent step of the value nodes, in place: dE/dv_l = e_l + grad_l, either taken
    directly or accumulated into the velocities first (heavy ball, as torch's and optax's SGD)."""
    for n, (value, error, grad) in enumerate(zip(values, errors, grads)):
        if not momentum:
            value.sub_(error, alpha=lr).sub_(grad, alpha=lr)
            continue
        velocity = velocities[n].mul_(momentum).add_(error).add_(grad)
        value.sub_(velocity, alpha=lr)


def wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 activities under autocast), float64 kept."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
