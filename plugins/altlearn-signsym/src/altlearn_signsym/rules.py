"""Sign-symmetry: feedback that shares the forward weights' signs, but not their magnitudes.

Liao, Leibo & Poggio (2016), "How important is weight symmetry in backpropagation?" (AAAI), and
Moskovitz, Litwin-Kumar & Abbott (2018), "Feedback alignment in deep convolutional networks".

altlearn's feedback alignment (rule ``fa``) carries the error from a layer's output to its input
through a matrix B_l shaped like W_l, where backprop would use W_l itself. These rules rebuild B_l at
every training step from the layer's *current* weights:

    B_l = sign(W_l) * M_l            (elementwise; sign(0) = 0)

so the feedback follows W_l's signs as they change, while its magnitudes M_l carry nothing of |W_l|:

=========================================  ===============================================  =====
rule and option                            M_l                                              paper
=========================================  ===============================================  =====
``signsym`` (``magnitude: fixed_random``)  |F_l|: F_l the fixed random matrix ``fa`` draws  frSF
``signsym`` (``magnitude: constant``)      mean(|F_l|): one number for the whole layer      uSF
``signsym_brsf``                           |R_l,t|: R_l,t drawn afresh for every batch t    brSF
=========================================  ===============================================  =====

F_l and R_l,t come from ``fa``'s distribution (options ``feedback_init``, ``feedback_scale``,
``feedback_seed``), so all three send error signals of the same size as ``fa``'s. Liao et al.'s uSF
uses magnitude 1 together with batch normalisation; without normalisation a magnitude of 1 makes
the error grow with the layer width, hence mean(|F_l|), which is about 1/(2 sqrt(n)) for the
default uniform draw (n: the layer's out_features, or out_channels * kh * kw for conv2d).

Only altlearn's public API is used: FeedbackAlignment does the backward pass and calls
:meth:`feedback_weight` once per layer and step; these classes only decide what it returns.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.api import FeedbackAlignment, FeedbackParams


class SignSymmetryParams(FeedbackParams):
    """fa's options (how F_l is drawn) plus the choice of magnitude."""

    magnitude: Literal["fixed_random", "constant"] = Field(
        "fixed_random",
        description=(
            "fixed_random: B = sign(W) * |F|, F the fixed random matrix fa would use (frSF); "
            "constant: B = sign(W) * mean(|F|), the same magnitude everywhere in a layer (uSF)"
        ),
    )


class SignSymmetry(FeedbackAlignment):
    """Sign-concordant feedback with fixed magnitudes: ``sign(W) * |F|`` or ``sign(W) * mean|F|``."""

    Params = SignSymmetryParams
    rule_name = "signsym"

    def __init__(self, network, params, *, loss, num_classes, seed=0):
        super().__init__(network, params, loss=loss, num_classes=num_classes, seed=seed)
        # magnitude=constant: one number per layer, computed once from the fixed matrix (so it does
        # not depend on the device or on when it is asked for).
        self._constant = {
            index: float(self.fixed_feedback(index).abs().mean()) for index in self.feedback_indices()
        }

    def feedback_weight(self, index: int, layer: nn.Module) -> torch.Tensor:
        sign = layer.weight.sign()  # shaped like W: (out, in) or (C_out, C_in/groups, kh, kw)
        if self.params.magnitude == "constant":
            return sign * self._constant[index]
        return sign * self.fixed_feedback(index).abs()


class BatchwiseRandomSignSymmetry(FeedbackAlignment):
    """Sign-concordant feedback whose magnitudes are redrawn for every batch: ``sign(W) * |R_t|``.

    R_t is drawn like fa's fixed matrix (``feedback_init``, ``feedback_scale``), from one generator
    per layer that belongs to this rule, on the layer's device, seeded from ``feedback_seed`` (null:
    the spec's seed) and the layer index. The same seed gives the same sequence of draws on the same
    kind of device. The global random stream is never touched, so dropout masks are unaffected.
    The generators' states are the rule's extra state: they go into checkpoints (a resumed run
    continues the sequence) and altlearn's alignment diagnostic leaves them as it found them.
    """

    Params = FeedbackParams
    rule_name = "signsym_brsf"

    def __init__(self, network, params, *, loss, num_classes, seed=0):
        super().__init__(network, params, loss=loss, num_classes=num_classes, seed=seed)
        self._generators: dict[tuple[int, str], torch.Generator] = {}  # (layer index, device)
        self._pending_states: dict[tuple[int, str], torch.Tensor] = {}  # from set_extra_state

    def get_extra_state(self):
        # States restored but not yet used count too: saving them again must not lose them.
        states = {key: state for key, state in self._pending_states.items()}
        states.update({key: g.get_state() for key, g in self._generators.items()})
        return {f"{index}@{device}": state for (index, device), state in states.items()}

    def set_extra_state(self, state):
        # Generators are made on first use on their device (a checkpoint may name one this
        # process has not touched yet), so keep the states until then.
        self._generators = {}
        self._pending_states = {}
        for key, generator_state in state.items():
            index, device = key.split("@", 1)
            self._pending_states[(int(index), device)] = generator_state

    def feedback_weight(self, index: int, layer: nn.Module) -> torch.Tensor:
        weight = layer.weight
        return weight.sign() * self._random_magnitude(index, weight)

    def _random_magnitude(self, index: int, weight: torch.Tensor) -> torch.Tensor:
        """|R| for one batch, shaped like ``weight``; R ~ fa's feedback distribution."""
        generator = self._generator(index, weight.device)
        init = self.params.feedback_init
        options = {"generator": generator, "device": weight.device, "dtype": weight.dtype}
        if init == "gaussian":
            # |N(0, 1/n)|: the half-normal, n the feedback fan-in (as in fa)
            magnitude = torch.randn(weight.shape, **options).abs_().div_(math.sqrt(_feedback_fan_in(weight)))
        else:
            # |U(-b, b)| is U(0, b): uniform b = 1/sqrt(n); like_forward b = 1/sqrt(W's fan_in)
            fan = _feedback_fan_in(weight) if init == "uniform" else weight[0].numel()
            magnitude = torch.rand(weight.shape, **options).mul_(1.0 / math.sqrt(fan))
        return magnitude.mul_(self.params.feedback_scale)

    def _generator(self, index: int, device: torch.device) -> torch.Generator:
        key = (index, str(device))
        if key not in self._generators:  # first draw on this device
            seed = self.seed if self.params.feedback_seed is None else self.params.feedback_seed
            generator = torch.Generator(device=device).manual_seed(_layer_seed(seed, index))
            if key in self._pending_states:
                generator.set_state(self._pending_states.pop(key))
            self._generators[key] = generator
        return self._generators[key]


def _feedback_fan_in(weight: torch.Tensor) -> int:
    """How many error components one input unit sums over: out_features, or C_out * kh * kw."""
    return weight.shape[0] * (weight[0, 0].numel() if weight.dim() == 4 else 1)


def _layer_seed(seed: int, index: int) -> int:
    """A 63-bit seed for layer ``index``'s generator, independent of the other layers and of fa's."""
    digest = hashlib.sha256(f"altlearn-signsym-brsf:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
