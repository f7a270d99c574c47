"""GO-UP's update (:class:`GoUpOptimizer`) and its divergence guard, apart from the rule's options.

The rule (:mod:`altlearn.rules.goup`) hands the update the gradient its source filled; this module
steps on it, draws the noise, and words the message when the weights run away (why they do, and
what lr would be safe, is derived in docs/rules/goup.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from altlearn.rules.randomness import DeviceGenerators

#: Added to the seed of the noise generator so that eps is not drawn from the same random stream
#: that initialised the weights (the trainer seeds torch's global generator with the spec seed).
NOISE_SEED_OFFSET = 7919

#: A noise budget sum_t (lr_t * noise_scale)^2 that costs little: it grows a weight's spread by
#: about exp(1/2) = 1.65x. Constant-lr MNIST runs peaked near it and degraded beyond it (see
#: docs/rules/goup.md). Used only to word the divergence message and suggest a safer lr.
SAFE_NOISE_BUDGET = 1.0


class GoUpOptimizer(torch.optim.Optimizer):
    """The GO-UP update as a torch optimizer, so the trainer's lr schedulers drive ``lr``.

    Per parameter with a gradient: ``theta <- theta - lr*g + lr*noise_scale*std(theta - g)*eps``.

    - std is the *biased* (population) standard deviation over all elements of the tensor
      (``correction=0``). It is defined for every non-empty tensor; for a 1-element tensor it is 0,
      so a scalar parameter gets a plain SGD step (one value has no spread to scale noise by).
    - eps comes from a ``torch.Generator`` per device, seeded with ``seed``: runs are repeatable on
      the same device (CPU and CUDA generators give different streams).
    - Everything stays on the device: no host synchronisation per step.
    - Parameters whose ``.grad`` is None are left untouched (no gradient, no step, no noise).
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, noise_scale: float = 1.0, seed: int = 0
    ) -> None:
        if not lr > 0:
            raise ValueError(f"GO-UP needs lr > 0, got {lr}")
        if not noise_scale >= 0:
            raise ValueError(f"GO-UP needs noise_scale >= 0, got {noise_scale}")
        super().__init__(params, {"lr": lr, "noise_scale": noise_scale})
        self.seed = int(seed)
        # exact: the seed is already GO-UP's own stream (seed + NOISE_SEED_OFFSET, documented)
        self._generators = DeviceGenerators.exact(self.seed)
        #: sum over steps of (lr * noise_scale)^2 (largest over groups): the noise budget spent.
        #: Python floats, so tracking it costs no synchronisation.
        self.noise_budget = 0.0
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        budget_step = 0.0
        for group in self.param_groups:
            lr, noise_scale = group["lr"], group["noise_scale"]
            budget_step = max(budget_step, (lr * noise_scale) ** 2)
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("GO-UP does not support sparse gradients")
                self._update(p, p.grad, lr, noise_scale)
        self.noise_budget += budget_step
        self.steps += 1
        return loss

    def _update(self, p: torch.Tensor, g: torch.Tensor, lr: float, noise_scale: float) -> None:
        if noise_scale == 0:
            p.add_(g, alpha=-lr)  # exactly the plain SGD step
            return
        spread = (p - g).std(correction=0)  # () tensor on the device: no sync
        generator = self._generators.get(p.device)
        eps = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        p.add_(g, alpha=-lr)
        p.add_(eps.mul_(spread), alpha=lr * noise_scale)

    def state_dict(self) -> dict[str, Any]:
        # The generator states make a resumed run draw the same noise as an uninterrupted one.
        state = super().state_dict()
        state["goup"] = {
            "generators": self._generators.state(),
            "noise_budget": self.noise_budget,
            "steps": self.steps,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("goup", None)
        super().load_state_dict(state_dict)
        if extra is not None:
            self.noise_budget = extra["noise_budget"]
            self.steps = extra["steps"]
            self._generators.load_state(extra["generators"])


# --------------------------------------------------------------------------- the divergence guard


def parameter_problem(
    trained: list[tuple[str, nn.Parameter]],
    initial_norms: list[float],
    max_abs_param: float,
    max_norm_growth: float,
) -> str | None:
    """The first parameter that ran away: non-finite, too large, or a weight grown too much.

    Biases are left to ``max_abs_param``: a small output bias legitimately grows many times its
    initial norm. One host transfer for all statistics (called once per logging interval).
    """
    if not trained:
        return None
    with torch.no_grad():
        # (P, 3): finite?, max |theta|, norm, per tensor
        rows = [
            torch.stack(
                [p.isfinite().all().float(), p.detach().abs().max().float(), p.detach().float().norm()]
            )
            for _, p in trained
        ]
        stats = torch.stack(rows).cpu().tolist()
    for index, ((name, p), (finite, max_abs, norm)) in enumerate(zip(trained, stats)):
        if finite < 1:
            return f"parameter {name} has non-finite values"
        if max_abs > max_abs_param:
            return f"parameter {name} reached |value| {max_abs:.3g} > max_abs_param {max_abs_param:g}"
        initial = initial_norms[index] if index < len(initial_norms) else 0.0
        if p.ndim >= 2 and initial > 0 and norm > max_norm_growth * initial:
            return (
                f"parameter {name} norm grew {norm / initial:.1f}x since the start "
                f"(> max_norm_growth {max_norm_growth:g})"
            )
    return None


def divergence_advice(optimizer: GoUpOptimizer | None, lr: float, noise_scale: float, source: str) -> str:
    """What to change when GO-UP diverged: the gradient's step, or the noise it accumulated."""
    group = optimizer.param_groups[0] if optimizer is not None else {}
    lr = group.get("initial_lr", group.get("lr", lr))  # the spec's value, before the schedule
    steps = optimizer.steps if optimizer is not None else 0
    if noise_scale == 0:
        return (
            f"lr={lr:g} is too large for the {source} gradient (noise_scale is "
            "0, so this is plain SGD); try a smaller lr"
        )
    budget = optimizer.noise_budget if optimizer is not None else 0.0
    if budget < SAFE_NOISE_BUDGET:
        # The noise has grown the weights by < exp(budget / 2) ~ 1.6x: not the culprit.
        return (
            f"lr={lr:g} is too large for the {source} gradient itself: GO-UP's "
            f"noise has only grown the weights' spread by about exp({budget:.2g}/2) = "
            f"{math.exp(budget / 2):.2f}x so far; try a smaller lr (plain SGD steps on "
            f"this source would diverge too)"
        )
    suggestion = math.sqrt(SAFE_NOISE_BUDGET / max(steps, 1)) / noise_scale
    return (
        f"lr={lr:g} is too large for GO-UP's noise (noise std per step = "
        f"lr*std(theta-g)); a weight's spread grows by about exp(sum of (lr*noise_scale)^2) "
        f"= exp({budget:.3g}) in variance over the {steps} steps so far; try lr <= "
        f"{suggestion:.2g} for that many steps (constant lr), a decaying schedule "
        "(schedule: {type: cosine}), or a smaller lr with a smaller batch (per epoch the "
        "noise grows like lr^2 * steps, the progress like lr * steps)"
    )
