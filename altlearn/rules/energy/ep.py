"""Equilibrium propagation (Scellier & Bengio 2017; symmetric nudging and the cross-entropy
readout of Laborieux et al. 2021) on the spec's MLP read as a layered Hopfield energy
(:mod:`.hopfield`).

One batch: the free phase relaxes the states s (from a clipped feedforward pass) for
``free_steps`` sweeps to a fixed point s^0 of the energy E; each nudged phase starts there and
relaxes for ``nudge_steps`` sweeps on F_beta = E + beta * loss. With phases at beta_1 and beta_2
(beta and 0; or beta and -beta with ``symmetric_nudging``) every weight gets

    grad_theta = (dF_{beta_1}/dtheta (s^{beta_1}) - dF_{beta_2}/dtheta (s^{beta_2})) / (beta_1 - beta_2) / B

which tends to the gradient of the loss at the free fixed point as beta -> 0 (the symmetric
estimate's error is O(beta^2), the one-sided one's O(beta)). For a hidden W_l this is
-(s_l s_{l-1}^T |_1 - s_l s_{l-1}^T |_2) / (beta_1 - beta_2) / B: local, from the two phases'
states; the ce readout's weights get the mean of the loss gradients at the two nudged states.
The spec's optimizer applies it; classification (evaluation, the logged model) runs the free phase.
"""

from __future__ import annotations

from typing import ClassVar, Literal, cast

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Count, PositiveReal
from altlearn.nn.network import is_trainable
from altlearn.rules.base import Rule, accuracy
from altlearn.rules.energy.chain import (
    RESHAPE,
    Problems,
    block_parameters,
    blocks_of,
    describe,
    energy_metrics,
)
from altlearn.rules.energy.hopfield import BOUNDS, LayeredHopfield

BOUNDED = "relu, sigmoid and hardsigmoid are read as the hard sigmoid clip(x, 0, 1), tanh and hardtanh as clip(x, -1, 1)"


class EquilibriumPropagationParams(Params):
    """Options of ``ep``."""

    free_steps: Count = Field(20, le=10_000, description="sweeps of the free phase (odd then even layers)")
    nudge_steps: Count = Field(
        10, le=10_000, description="sweeps of each nudged phase, from the free fixed point"
    )
    beta: PositiveReal = Field(0.5, lt=1.0, description="nudging strength beta (0 < beta < 1)")
    symmetric_nudging: bool = Field(
        True,
        description="two nudged phases at +beta and -beta (Laborieux et al. 2021) instead of one at +beta",
    )
    readout: Literal["mse", "ce"] = Field(
        "ce",
        description=(
            "mse: the last layer's output is a state in [0, 1] nudged towards the one-hot target; "
            "ce: the last layer is a linear readout outside the energy, nudged by its cross-entropy"
        ),
    )
    activation: Literal["auto", "hard_sigmoid", "hard_tanh"] = Field(
        "auto",
        description=f"the states' activation; auto: from the network ({BOUNDED})",
    )


class EquilibriumPropagation(Rule):
    """``ep``: free and nudged phases of a layered Hopfield energy; the contrast of their weight
    derivatives divided by beta."""

    Params: ClassVar[type[EquilibriumPropagationParams]] = EquilibriumPropagationParams
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
    params: EquilibriumPropagationParams

    @classmethod
    def check_network(cls, network, params) -> Problems:
        return mlp_problems(network)

    def hopfield(self) -> LayeredHopfield:
        """The energy over this rule's network (built per call: it holds views of the network)."""
        p = self.params
        return LayeredHopfield(self.network, p.readout, p.activation, p.free_steps)

    def inference_module(self) -> nn.Module:
        return self.hopfield()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        net, p = self.hopfield(), self.params
        with torch.no_grad():
            x0 = net.input(x)
            bottom = net.bottom(x0)  # W_1 x0 + b_1: the same in every sweep of every phase
            start_states = net.initial_states(x0, bottom)
            before_last = net.relax(x0, start_states, p.free_steps - 1, bottom=bottom)
            free = net.relax(x0, before_last, 1, bottom=bottom)
            moved = sum((a - b).abs().sum() for a, b in zip(free, before_last))  # a state per layer
            change = cast(torch.Tensor, moved) / len(x)
            betas = (p.beta, -p.beta) if p.symmetric_nudging else (p.beta, 0.0)
            phases = [net.relax(x0, free, p.nudge_steps, beta, y, bottom) if beta else free for beta in betas]
        self._weight_gradients(net, x0, phases, betas, y)
        with torch.no_grad():
            scores = net.scores(free)
            start, end = (net.energy(x0, states, bottom=bottom) for states in (start_states, free))
        metrics = {"loss": self.loss(scores, y), "accuracy": accuracy(scores, y), "ep/free_change": change}
        return metrics | energy_metrics("ep", start / len(x), end / len(x))

    def _weight_gradients(self, net: LayeredHopfield, x0, phases, betas, y) -> None:
        """``.grad`` = the contrast of the nudged energies' weight derivatives, / (beta_1 - beta_2) / B."""
        params = block_parameters(blocks_of(self.network)[1])
        bottom = net.bottom(x0)  # with its graph to W_1 and b_1, shared by both phases' energies
        first, second = (net.energy(x0, s, beta, y, bottom) for s, beta in zip(phases, betas))
        contrast = (first - second) / ((betas[0] - betas[1]) * len(x0))
        grads = torch.autograd.grad(contrast, params, allow_unused=True)
        for param, grad in zip(params, grads):
            param.grad = torch.zeros_like(param) if grad is None else grad


def mlp_problems(network: nn.Sequential) -> Problems:
    """What keeps ``network`` from being read as a layered energy: flatten, then linear layers
    with one bounded activation after each hidden one and none after the last."""
    problems: Problems = []
    _, blocks = blocks_of(network)
    for index, module in enumerate(network):
        if is_trainable(module) and not isinstance(module, nn.Linear):
            reason = "it trains layered MLPs (linear only)"
            problems.append((index, f"cannot train {describe(index, module)}: {reason}"))
        elif not is_trainable(module) and not _readable(module):
            reason = f"besides linear layers it reads only flatten and bounded activations ({BOUNDED})"
            problems.append((index, f"cannot train a network with {describe(index, module)}: {reason}"))
    if len(blocks) < 2:
        problems.append((None, "needs at least two linear layers (a hidden state and the output)"))
    return problems + _activation_problems(blocks)


def _readable(module: nn.Module) -> bool:
    return isinstance(module, (*BOUNDS, *RESHAPE, nn.Identity))


def _activation_problems(blocks) -> Problems:
    problems: Problems = []
    for position, block in enumerate(blocks):
        if not all(_readable(m) for m in block.post):
            continue  # already refused above
        activations = [m for m in block.post if isinstance(m, tuple(BOUNDS))]
        where = describe(block.index, block.layer)
        if position == len(blocks) - 1 and activations:
            reason = "the last linear layer gives the scores (or the output state): no activation after it"
            problems.append(
                (block.index, f"cannot train a network with an activation after {where}: {reason}")
            )
        elif position < len(blocks) - 1 and len(activations) != 1:
            reason = f"each hidden linear layer needs exactly one activation after it ({BOUNDED})"
            problems.append((block.index, f"cannot train {where} as a state layer: {reason}"))
    return problems
