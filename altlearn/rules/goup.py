"""GO-UP: a gradient step read as a discretised Ornstein-Uhlenbeck process.

Every parameter tensor theta, with gradient g from a *gradient source* (bp, fa, dfa or ifa), is
updated as::

    theta <- (1 - lr) * theta + lr * (eps * std(theta - g) + theta - g),   eps ~ N(0, I)

where std is taken over the whole tensor. Algebraically this is::

    theta <- theta - lr * g + lr * std(theta - g) * eps

i.e. plain SGD plus Gaussian noise whose scale is set per tensor by the tensor's own spread. The
update needs no optimizer: the rule brings it (``owns_update``), as :class:`GoUpOptimizer`.

Why it diverges at large lr (details in docs/rules/goup.md): std(theta - g) is about std(theta), so
each step adds noise of variance lr^2 * std(theta)^2 to every weight; in the many directions the
loss does not pull back, a tensor's spread grows by about (1 + lr^2 * noise_scale^2) per step, so
after T steps by exp(noise_scale^2 * sum_t lr_t^2). A decaying lr schedule bounds that sum.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

import torch
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticKnownError
from torch import nn

from altlearn.components import Params
from altlearn.plugins import PluginError, get_registry
from altlearn.rules.base import LossFn, Rule

#: Added to the seed of the noise generator so that eps is not drawn from the same random stream
#: that initialised the weights (the trainer seeds torch's global generator with the spec seed).
NOISE_SEED_OFFSET = 7919

#: A noise budget sum_t (lr_t * noise_scale)^2 that costs little: it grows a weight's spread by
#: about exp(1/2) = 1.65x. Constant-lr MNIST runs peaked near it and degraded beyond it (see
#: docs/rules/goup.md). Used only to word the divergence message and suggest a safer lr.
SAFE_NOISE_BUDGET = 1.0


# --------------------------------------------------------------------------- the update


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
        self._generators: dict[torch.device, torch.Generator] = {}
        #: sum over steps of (lr * noise_scale)^2 (largest over groups): the noise budget spent.
        #: Python floats, so tracking it costs no synchronisation.
        self.noise_budget = 0.0
        self.steps = 0

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return generator

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
                g = p.grad
                if noise_scale == 0:
                    p.add_(g, alpha=-lr)  # exactly the plain SGD step
                    continue
                spread = (p - g).std(correction=0)  # () tensor on the device: no sync
                eps = torch.randn(
                    p.shape, generator=self._generator(p.device), device=p.device, dtype=p.dtype
                )
                p.add_(g, alpha=-lr)
                p.add_(eps.mul_(spread), alpha=lr * noise_scale)
        self.noise_budget += budget_step
        self.steps += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        # The generator states make a resumed run draw the same noise as an uninterrupted one.
        state = super().state_dict()
        state["goup"] = {
            "generators": {str(d): g.get_state() for d, g in self._generators.items()},
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
            for device, generator_state in extra["generators"].items():
                if torch.device(device).type == "cuda" and not torch.cuda.is_available():
                    continue  # written on a GPU, resumed on a CPU: the noise stream restarts
                self._generator(torch.device(device)).set_state(generator_state)


# --------------------------------------------------------------------------- the gradient source


def load_gradient_source(name: str) -> type[Rule]:
    """The rule class named ``name``, if it can serve as GO-UP's gradient source; else ValueError."""
    registry = get_registry()
    try:
        cls = registry.load("rule", name)
    except KeyError:
        usable = usable_source_names()
        close = difflib.get_close_matches(name, usable, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown gradient source {name!r}{hint} (sources GO-UP can use: {', '.join(usable)})"
        ) from None
    except PluginError as exc:
        raise ValueError(f"gradient source {name!r} cannot be used: {exc}") from None
    problem = _unusable_reason(cls)
    if problem:
        raise ValueError(
            f"gradient source {name!r} {problem}; GO-UP needs a rule that only fills .grad with a "
            f"gradient of the loss (usable: {', '.join(usable_source_names())})"
        )
    return cls


def _unusable_reason(cls: Any) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        return "is not a learning rule class"
    if cls.owns_update:
        return "brings its own update (owns_update), so it cannot feed GO-UP's"
    # A rule whose network does not output the class scores (Forward-Forward) trains by a local
    # objective: there is no gradient of the classification loss for GO-UP to follow.
    if not getattr(cls, "network_outputs_scores", True):
        return "has no gradient of the classification loss (it trains by a local objective)"
    return None


def usable_source_names() -> list[str]:
    """Registered rules that load and qualify as a gradient source (broken plugins are skipped)."""
    registry = get_registry()
    names = []
    for name in registry.names("rule"):
        try:
            cls = registry.load("rule", name)
        except (PluginError, KeyError):
            continue
        if _unusable_reason(cls) is None:
            names.append(name)
    return names


def _source_option_errors(error: ValidationError, source: str, options: list[str]) -> ValidationError:
    """The source's own option errors, re-raised from GO-UP's ``source_options`` validator.

    pydantic prefixes their locations with ``source_options``, so they point into the YAML. An
    unknown key becomes a message that lists the *source's* options (a generic "extra input" error
    would be reported against GO-UP's own option list).
    """
    details = []
    for err in error.errors():
        loc, ctx = tuple(err["loc"]), err.get("ctx") or {}
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            close = difflib.get_close_matches(str(loc[0]), options, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            message = (
                f"{loc[0]!r} is not an option of gradient source {source!r}; {hint}"
                f"its options are: {', '.join(options) or '(none)'}"
            )
            error_type, ctx = PydanticCustomError("unknown_source_option", message), {}
        else:
            try:
                PydanticKnownError(err["type"], ctx or None)  # keep pydantic's type where known
                error_type = err["type"]
            except (KeyError, TypeError, ValueError):  # a custom error type: keep its message
                error_type, ctx = PydanticCustomError(err["type"], err["msg"]), {}
        detail = InitErrorDetails(type=error_type, loc=loc, input=err.get("input"))
        if ctx:
            detail["ctx"] = ctx
        details.append(detail)
    return ValidationError.from_exception_data("source_options", details)


# --------------------------------------------------------------------------- the rule


class GoUpParams(Params):
    lr: float = Field(
        0.01,
        gt=0,
        description="step size of both the gradient step and the noise; the spec's schedule "
        "drives it. Large values make the noise accumulate: see docs/rules/goup.md",
    )
    noise_scale: float = Field(
        1.0,
        ge=0,
        description="multiplies the noise term; 1.0 is GO-UP as defined, 0 is plain SGD",
    )
    seed: int | None = Field(
        None,
        description="seed of the noise generator (eps); null: the spec seed. The generator is "
        f"seeded with seed + {NOISE_SEED_OFFSET} so noise is not the weight-init stream",
    )
    source: str = Field(
        "bp",
        description="the rule whose gradient g GO-UP steps on: bp, fa, dfa, ifa (or a plugin's "
        "rule that fills .grad)",
    )
    source_options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the gradient source, validated by that rule's own Params",
    )
    max_abs_param: float = Field(
        1e3,
        gt=0,
        description="divergence guard: stop when any parameter's |value| exceeds this",
    )
    max_norm_growth: float = Field(
        50.0,
        gt=1,
        description="divergence guard: stop when a weight matrix's (or conv kernel's) norm "
        "exceeds this many times its norm when training started. Biases are left to "
        "max_abs_param: a small output bias legitimately grows many times its init",
    )

    @field_validator("source")
    @classmethod
    def _source_is_a_gradient_rule(cls, name: str) -> str:
        load_gradient_source(name)
        return name

    @field_validator("source_options")
    @classmethod
    def _source_options_fit_the_source(cls, options: dict[str, Any], info: ValidationInfo):
        # A field validator (not a model one) so these errors are reported together with any
        # other option's; skipped when the source itself is invalid (already reported).
        if "source" in info.data:
            _validated_source_options(info.data["source"], options)
        return options


def _validated_source_options(source: str, options: dict[str, Any]) -> Params:
    """The gradient source's options, validated by its Params (errors under ``source_options``)."""
    params_cls = load_gradient_source(source).Params
    try:
        return params_cls(**options)
    except ValidationError as exc:
        raise _source_option_errors(exc, source, sorted(params_cls.model_fields)) from None


def source_params(params: GoUpParams) -> Params:
    """The gradient source's validated options."""
    return _validated_source_options(params.source, params.source_options)


class GoUp(Rule):
    """GO-UP on top of any gradient source; the source fills .grad, :class:`GoUpOptimizer` steps."""

    Params = GoUpParams
    owns_update = True

    def __init__(
        self,
        network: nn.Sequential,
        params: GoUpParams,
        *,
        loss: LossFn,
        num_classes: int,
        seed: int = 0,
    ) -> None:
        super().__init__(network, params, loss=loss, num_classes=num_classes, seed=seed)
        source_cls = load_gradient_source(params.source)
        # A submodule: the source's feedback buffers move to the device and save with the model.
        # (Both rules hold the same network; its parameters are shared, not copied.)
        self.source = source_cls(
            network, source_params(params), loss=loss, num_classes=num_classes, seed=seed
        )
        base_seed = params.seed if params.seed is not None else seed
        self.noise_seed = base_seed + NOISE_SEED_OFFSET
        self._optimizer: GoUpOptimizer | None = None
        self._initial_norms: list[float] = []

    @classmethod
    def check_network(cls, network: nn.Sequential, params: GoUpParams):
        return load_gradient_source(params.source).check_network(network, source_params(params))

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

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.source.predict(x)

    def inference_module(self) -> nn.Module:
        return self.source.inference_module()

    def gradient_rule(self) -> Rule | None:
        # The direction GO-UP steps on is the source's: compare that with BP (None for bp itself).
        return self.source.gradient_rule()

    def health_check(self) -> str | None:
        trained = self._trained()
        if not trained:
            return None
        with torch.no_grad():
            # (P, 3): finite?, max |theta|, norm, per tensor; one transfer for all of them
            stats = (
                torch.stack(
                    [
                        torch.stack(
                            [
                                p.isfinite().all().float(),
                                p.detach().abs().max().float(),
                                p.detach().float().norm(),
                            ]
                        )
                        for _, p in trained
                    ]
                )
                .cpu()
                .tolist()
            )
        for index, ((name, p), (finite, max_abs, norm)) in enumerate(zip(trained, stats)):
            if finite < 1:
                return f"parameter {name} has non-finite values: {self._advice()}"
            if max_abs > self.params.max_abs_param:
                return (
                    f"parameter {name} reached |value| {max_abs:.3g} > max_abs_param "
                    f"{self.params.max_abs_param:g}: {self._advice()}"
                )
            initial = self._initial_norms[index] if index < len(self._initial_norms) else 0.0
            if p.ndim >= 2 and initial > 0 and norm > self.params.max_norm_growth * initial:
                return (
                    f"parameter {name} norm grew {norm / initial:.1f}x since the start "
                    f"(> max_norm_growth {self.params.max_norm_growth:g}): {self._advice()}"
                )
        return None

    def _advice(self) -> str:
        optimizer = self._optimizer
        group = optimizer.param_groups[0] if optimizer is not None else {}
        lr = group.get("initial_lr", group.get("lr", self.params.lr))
        noise_scale = self.params.noise_scale
        steps = optimizer.steps if optimizer is not None else 0
        if noise_scale == 0:
            return (
                f"lr={lr:g} is too large for the {self.params.source} gradient (noise_scale is "
                "0, so this is plain SGD); try a smaller lr"
            )
        budget = optimizer.noise_budget if optimizer is not None else 0.0
        if budget < SAFE_NOISE_BUDGET:
            # The noise has grown the weights by < exp(budget / 2) ~ 1.6x: not the culprit.
            return (
                f"lr={lr:g} is too large for the {self.params.source} gradient itself: GO-UP's "
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
