"""The spec's layered MLP read as a Hopfield-like energy, the network ``ep`` relaxes.

Linear layers W_1..W_N (weights (n_l, n_{l-1}), biases b_l) connect states s_1..s_M, s_0 being
the (prefixed, flattened) input x. With ``readout: mse`` every layer's output is a state (M = N)
and s_N, in [0, 1], is read as the class scores; with ``readout: ce`` the last layer is a linear
readout outside the energy (M = N - 1) and the scores are W_N s_M + b_N. The energy of a batch is

    E(s) = sum_l ||s_l||^2 / 2  -  sum_l s_l . (W_l s_{l-1} + b_l)

(the weights act symmetrically: W_l carries s_{l-1} up and s_l down), each s_l confined to its
activation's box: [0, 1] (hard sigmoid; a spec's relu and sigmoid are read as it) or [-1, 1]
(hard tanh; tanh). The nudged energy adds beta * loss: ||s_N - onehot(y)||^2 / 2 (mse) or the
cross-entropy of the readout's scores (ce). A state minimising it on its box satisfies
s_l = clip(dPhi/ds_l): the dynamics below set each layer to that, odd layers then even ones (each
half-step the exact minimiser over those layers given the others, so the energy never rises).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.rules.energy.chain import blocks_of, run_prefix

#: the box each activation's states live in, by the module class a spec's activation builds
BOUNDS = {
    nn.ReLU: (0.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardsigmoid: (0.0, 1.0),
    nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0),
}  # fmt: skip
NAMED_BOUNDS = {"hard_sigmoid": (0.0, 1.0), "hard_tanh": (-1.0, 1.0)}


class LayeredHopfield(nn.Module):
    """The energy, its relaxation and, as ``forward``, the scores at the free fixed point."""

    # views of the network (set below with object.__setattr__, not registered again)
    prefix: list[nn.Module]
    layers: list[nn.Linear]  # linear only: ep's check_network refuses other layers

    def __init__(self, network: nn.Sequential, readout: str, activation: str, free_steps: int) -> None:
        super().__init__()
        self.network, self.readout, self.free_steps = network, readout, free_steps
        prefix, blocks = blocks_of(network)
        object.__setattr__(self, "prefix", prefix)  # views of the network: not registered again
        object.__setattr__(self, "layers", [block.layer for block in blocks])
        self.num_states = len(blocks) if readout == "mse" else len(blocks) - 1
        named = NAMED_BOUNDS.get(activation)
        self.bounds = [named or _bounds_after(block) for block in blocks[: len(blocks) - 1]]
        if readout == "mse":
            self.bounds.append((0.0, 1.0))  # the output state: compared with a one-hot target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x0 = self.input(x)
            states = self.relax(x0, self.initial_states(x0), self.free_steps)
            return self.scores(states).detach()

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return run_prefix(self.prefix, x)

    def bottom(self, x0: torch.Tensor) -> torch.Tensor:
        """W_1 x0 + b_1, the clamped input's drive of s_1: fixed while the states relax."""
        return self.layers[0](x0)

    def initial_states(self, x0: torch.Tensor, bottom: torch.Tensor | None = None) -> list[torch.Tensor]:
        """A feedforward pass through the layers, each output clipped to its box."""
        states: list[torch.Tensor] = []
        below = self.bottom(x0) if bottom is None else bottom
        for n, (layer, (low, high)) in enumerate(zip(self.layers, self.bounds)):
            below = (below if n == 0 else layer(below)).clamp(low, high)
            states.append(below)
        return states

    def scores(self, states: list[torch.Tensor]) -> torch.Tensor:
        return states[-1] if self.readout == "mse" else self.layers[-1](states[-1])

    def relax(self, x0, states, steps: int, beta: float = 0.0, y=None, bottom=None) -> list[torch.Tensor]:
        """``steps`` sweeps (odd layers, then even ones) on the energy nudged by ``beta``;
        ``bottom`` is :meth:`bottom` of ``x0`` when already known (it is computed once)."""
        states = list(states)
        if steps and bottom is None:
            bottom = self.bottom(x0)
        for _ in range(steps):
            for parity in (0, 1):
                for index in range(parity, self.num_states, 2):
                    states[index] = self._update(index, bottom, states, beta, y)
        return states

    def _update(self, index: int, bottom, states, beta: float, y) -> torch.Tensor:
        """The minimiser of the (nudged) energy over state ``index`` given its neighbours."""
        drive = bottom if index == 0 else self.layers[index](states[index - 1])
        if index + 1 < len(self.layers) and index + 1 < self.num_states:
            drive = torch.addmm(drive, states[index + 1], self.layers[index + 1].weight)
        low, high = self.bounds[index]
        last = index == self.num_states - 1
        if beta and last and self.readout == "mse":
            target = F.one_hot(y, drive.shape[-1]).to(drive.dtype)
            return ((drive + beta * target) / (1.0 + beta)).clamp(low, high)
        if beta and last:  # ce: one fixed-point step on the readout's cross-entropy
            readout = self.layers[-1]
            error = F.one_hot(y, readout.out_features).to(drive.dtype) - readout(states[index]).softmax(-1)
            drive = drive + beta * (error @ readout.weight)
        return drive.clamp(low, high)

    def energy(self, x0, states, beta: float = 0.0, y=None, bottom=None) -> torch.Tensor:
        """The batch's summed (nudged) energy E + beta * loss, differentiable in the weights
        (``bottom``: :meth:`bottom` of ``x0``, with its graph when W_1's derivative is wanted)."""
        total = x0.new_zeros(())
        below = x0
        for n, (layer, state) in enumerate(zip(self.layers, states)):
            drive = layer(below) if n or bottom is None else bottom
            total = total + state.pow(2).sum() / 2 - (state * drive).sum()
            below = state
        if beta:
            total = total + beta * self.loss(states, y)
        return total

    def loss(self, states, y) -> torch.Tensor:
        """The batch's summed readout loss at ``states``."""
        scores = self.scores(states)
        if self.readout == "mse":
            return (scores - F.one_hot(y, scores.shape[-1]).to(scores.dtype)).pow(2).sum() / 2
        return F.cross_entropy(scores, y, reduction="sum")


def _bounds_after(block) -> tuple[float, float]:
    """The box of the activation after a hidden layer (check_network made sure there is one)."""
    return next(BOUNDS[type(m)] for m in block.post if type(m) in BOUNDS)
