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

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.api import (
    DeviceGenerators,
    FeedbackAlignment,
    FeedbackParams,
    RuleContext,
    feedback_fan_in,
    feedback_spread,
    forward_fan_in,
)


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

    def __init__(self, params: SignSymmetryParams, context: RuleContext) -> None:
        super().__init__(params, context)
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

    def __init__(self, params: FeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        # One stream per layer, independent of fa's fixed matrices (drawn from stream "feedback").
        self._generators = DeviceGenerators(self.feedback_seed, per_layer="signsym-brsf")

    def get_extra_state(self):
        return self._generators.state()

    def set_extra_state(self, state):
        self._generators.load_state(state)

    def feedback_weight(self, index: int, layer: nn.Module) -> torch.Tensor:
        weight = layer.weight
        return weight.sign() * self._random_magnitude(index, weight)

    def _random_magnitude(self, index: int, weight: torch.Tensor) -> torch.Tensor:
        """|R| for one batch, shaped like ``weight``; R ~ fa's feedback distribution."""
        init = self.params.feedback_init
        spread = feedback_spread(init, feedback_fan_in(weight), forward_fan_in(weight), tuple(weight.shape))
        options = {"generator": self._generators.get(weight.device, index), "device": weight.device}
        if init == "gaussian":  # |N(0, spread^2)|: the half-normal
            magnitude = torch.randn(weight.shape, dtype=weight.dtype, **options).abs_()
        else:  # |U(-b, b)| is U(0, b)
            magnitude = torch.rand(weight.shape, dtype=weight.dtype, **options)
        return magnitude.mul_(spread).mul_(self.params.feedback_scale)
