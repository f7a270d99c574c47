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

import difflib
from typing import Any

import torch
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticKnownError
from torch import nn

from altlearn.components import Params
from altlearn.plugins import PluginError, get_registry
from altlearn.rules.base import Rule, RuleContext, brings_own_update
from altlearn.rules.goup_update import NOISE_SEED_OFFSET, GoUpOptimizer, divergence_advice, parameter_problem

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
    if brings_own_update(cls):
        return "brings its own update (make_optimizer), so it cannot feed GO-UP's"
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

    def __init__(self, params: GoUpParams, context: RuleContext) -> None:
        super().__init__(params, context)
        # A submodule: the source's feedback buffers move to the device and save with the model.
        # (Both rules hold the same network; its parameters are shared, not copied.)
        self.source = load_gradient_source(params.source)(source_params(params), context)
        base_seed = params.seed if params.seed is not None else self.seed
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
        return f"{problem}: {divergence_advice(self._optimizer, p.lr, p.noise_scale, p.source)}"
