"""GO-UP: a gradient step read as a discretised Ornstein-Uhlenbeck process.

Every parameter tensor theta, with gradient g from a *gradient source* (bp, fa, dfa or ifa), is
updated as::

    theta <- (1 - lr) * theta + lr * (eps * std(theta - g) + theta - g),   eps ~ N(0, I)

where std is taken over the whole tensor. Algebraically this is::

    theta <- theta - lr * g + lr * std(theta - g) * eps

i.e. plain SGD plus Gaussian noise whose scale is set per tensor by the tensor's own spread. The
update needs no optimizer: the rule brings it (``make_optimizer``), as
:class:`~altlearn.rules.goup_update.GoUpOptimizer`.

Why it diverges at large lr (details in docs/rules/goup.md): std(theta - g) is about std(theta), so
each step adds noise of variance lr^2 * std(theta)^2 to every weight; in the many directions the
loss does not pull back, a tensor's spread grows by about (1 + lr^2 * noise_scale^2) per step, so
after T steps by exp(noise_scale^2 * sum_t lr_t^2). A decaying lr schedule bounds that sum.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.ref import Block, ComponentRef
from altlearn.components.values import Real, Seed
from altlearn.rules.base import Rule, RuleContext, brings_own_update
from altlearn.rules.goup_update import NOISE_SEED_OFFSET, GoUpOptimizer, divergence_advice, parameter_problem

# --------------------------------------------------------------------------- the gradient source


def gradient_source_problem(cls: Any) -> str | None:
    """Why rule class ``cls`` cannot be GO-UP's gradient source (None: it can).

    The source must only fill ``.grad`` with a gradient of the classification loss.
    """
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        return "is not a learning rule class"
    if brings_own_update(cls):
        return "brings its own update (make_optimizer), so it cannot feed GO-UP's"
    # A rule whose network does not output the class scores (Forward-Forward) trains by a local
    # objective: there is no gradient of the classification loss for GO-UP to follow.
    if not getattr(cls, "network_outputs_scores", True):
        return "has no gradient of the classification loss (it trains by a local objective)"
    return None


# --------------------------------------------------------------------------- the rule


class GoUpParams(Params):
    lr: Real = Field(
        0.01,
        gt=0,
        description="step size of both the gradient step and the noise; the spec's schedule "
        "drives it. Large values make the noise accumulate: see docs/rules/goup.md",
    )
    noise_scale: Real = Field(
        1.0,
        ge=0,
        description="multiplies the noise term; 1.0 is GO-UP as defined, 0 is plain SGD",
    )
    seed: Seed | None = Field(
        None,
        description="seed of the noise generator (eps); null: the spec seed. The generator is "
        f"seeded with seed + {NOISE_SEED_OFFSET} so noise is not the weight-init stream",
    )
    source: Block = ComponentRef(
        "rule",
        default="bp",
        accepts=gradient_source_problem,
        role="gradient source",
        description="the rule whose gradient g GO-UP steps on, with its own options: "
        "{type: dfa, feedback_init: uniform}; bp, fa, dfa, ifa or a plugin's rule that fills .grad",
    )
    max_abs_param: Real = Field(
        1e3,
        gt=0,
        description="divergence guard: stop when any parameter's |value| exceeds this",
    )
    max_norm_growth: Real = Field(
        50.0,
        gt=1,
        description="divergence guard: stop when a weight matrix's (or conv kernel's) norm "
        "exceeds this many times its norm when training started. Biases are left to "
        "max_abs_param: a small output bias legitimately grows many times its init",
    )


class GoUp(Rule):
    """GO-UP on top of any gradient source; the source fills .grad, :class:`GoUpOptimizer` steps."""

    Params = GoUpParams
    params: GoUpParams

    def __init__(self, params: GoUpParams, context: RuleContext) -> None:
        super().__init__(params, context)
        # A submodule: the source's feedback buffers move to the device and save with the model.
        # (Both rules hold the same network; its parameters are shared, not copied.)
        self.source = params.source.component(params.source.params, context)
        base_seed = params.seed if params.seed is not None else self.seed
        self.noise_seed = base_seed + NOISE_SEED_OFFSET
        self._optimizer: GoUpOptimizer | None = None
        self._initial_norms: list[float] = []

    @classmethod
    # A rule is only ever checked and built with its own Params (the validator parses its block).
    def check_network(cls, network: nn.Sequential, params: GoUpParams):  # type: ignore[override]
        # The validator names this rule ('goup'); which source refuses is said here.
        source = params.source
        found = source.component.check_network(network, source.params)
        return [(key, f"gradient source {source.type!r}: {message}") for key, message in found]

    def _trained(self) -> list[tuple[str, nn.Parameter]]:
        # named_parameters() lists a shared parameter once, under its first name (network.*).
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def make_optimizer(self) -> GoUpOptimizer:
        trained = self._trained()
        self._optimizer = GoUpOptimizer(
            [p for _, p in trained],
            lr=self.params.lr,
            noise_scale=self.params.noise_scale,
            seed=self.noise_seed,
        )
        with torch.no_grad():  # once, before training: one host sync is fine here
            norms = torch.stack([p.detach().float().norm() for _, p in trained])
        self._initial_norms = norms.tolist()
        return self._optimizer

    def get_extra_state(self):
        # The divergence guard measures growth since the start of training, not since a resume.
        return {"initial_norms": list(self._initial_norms)}

    def set_extra_state(self, state):
        self._initial_norms = [float(n) for n in state["initial_norms"]]

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.source.train_step(x, y)  # fills .grad; the optimizer applies GO-UP

    def eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.source.eval_step(x, y)

    def inference_module(self) -> nn.Module:
        return self.source.inference_module()

    def gradient_rule(self) -> Rule | None:
        # The direction GO-UP steps on is the source's: compare that with BP (None for bp itself).
        return self.source.gradient_rule()

    def health_check(self) -> str | None:
        p = self.params
        problem = parameter_problem(self._trained(), self._initial_norms, p.max_abs_param, p.max_norm_growth)
        if problem is None:
            return None
        return f"{problem}: {divergence_advice(self._optimizer, p.lr, p.noise_scale, p.source.type)}"
