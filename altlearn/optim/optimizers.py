"""Optimizers and learning-rate schedules a spec can choose (``optimizer.type``, ``schedule.type``).

Both are components: :class:`Optimizer` and :class:`Schedule` subclasses registered through the
``altlearn_register_optimizers`` / ``altlearn_register_schedules`` hooks (the built-ins below by
``altlearn.registry.builtins``, like any plugin's). Schedules are multiplicative factors on the base lr,
evaluated per training step so that cosine and linear decay are smooth; they wrap any
``torch.optim.Optimizer``, including a rule's own (GO-UP). Importing this module imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, ValidationError, ValidationInfo, model_serializer, model_validator

from altlearn.components.base import ComponentParams, Params
from altlearn.components.ref import VALIDATOR_CONTEXT
from altlearn.components.values import (
    Betas,
    Count,
    Fraction,
    NonNegativeReal,
    PositiveReal,
    Probability,
    Real,
)
from altlearn.optim.fused import FusedChoice, fused_argument
from altlearn.optim.param_groups import group_model, parse_group

if TYPE_CHECKING:
    import torch


class Optimizer:
    """An optimizer a spec names as ``optimizer.type``: its options and how to build it."""

    Params: ClassVar[type[Params]] = Params

    @staticmethod
    def build(params: ComponentParams, parameters: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """A ``torch.optim.Optimizer`` over ``parameters`` (the trained ones), configured by ``params``."""
        raise NotImplementedError  # abstract


class ScheduleParams(Params):
    """Options every schedule has; a schedule's own ``Params`` subclasses this."""

    warmup_epochs: NonNegativeReal = Field(0.0, description="linear warm-up from 0 over these epochs")
    per_epoch: bool = Field(
        False,
        description="change the lr once per epoch, at its start (torch's scheduler.step() after each "
        "epoch, as many papers' code does) instead of every step; the warm-up stays per step",
    )


#: factor(step, total_steps, steps_per_epoch) -> multiplier of the base lr
Factor = Callable[[int, int, int], float]


class Schedule:
    """A learning-rate schedule a spec names as ``schedule.type``: a factor on the base lr per step.

    The trainer applies the warm-up (``warmup_epochs``) on top of every schedule's factor.
    """

    Params: ClassVar[type[ScheduleParams]] = ScheduleParams

    @staticmethod
    def factor(params: ScheduleParams) -> Factor:
        raise NotImplementedError  # abstract


class _OptimizerParams(Params):
    lr: PositiveReal = Field(1e-3, description="base learning rate")
    weight_decay: NonNegativeReal = Field(0.0, description="L2 penalty added to the gradient")
    groups: list[dict] = Field(
        default_factory=list,
        description="other values of these options for some parameters: a list of {params: NAMES, "
        "<option>: value, ...}, NAMES a layer's path (network.layers[3]) or a rule's part (ff's "
        "head), or a list of them; the other parameters keep the options above (docs/spec.md, Groups)",
    )

    @model_validator(mode="after")
    def _check_groups(self, info: ValidationInfo):
        # Each group is read with a model of this optimizer's own options (all optional), so a
        # misspelt or out-of-range value is reported at its own path: optimizer.groups[0].lr.
        model = group_model(type(self))
        scope = (info.context or {}).get(VALIDATOR_CONTEXT)
        read = [parse_group(model, values, index, scope) for index, values in enumerate(self.groups)]
        groups = [group for group in read if group is not None]
        if len(groups) < len(read) and scope is not None:  # None: only inside a spec (a scope)
            scope.reported()  # each problem is recorded at its own path
        parsed = []
        for index, group in enumerate(groups):
            parsed.append({"params": group.params, **group.overrides()})
            merged = {**self.model_dump(exclude={"groups"}), **group.overrides()}
            try:  # the optimizer's checks across options (nesterov needs momentum) hold per group
                type(self).model_validate(merged)
            except ValidationError as exc:
                messages = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                if scope is None:
                    raise ValueError(f"groups[{index}]: {messages}") from None
                scope.validator.add(f"{scope.path}.groups[{index}]", f"with this group's options: {messages}")
                scope.reported()
        object.__setattr__(self, "groups", parsed)  # as read: params always a list (the model is frozen)
        return self

    @model_serializer(mode="wrap")
    def _without_empty_groups(self, handler):
        # A rendered spec (and the params a run logs) mention groups only when there are some, and
        # fused only when not auto: so a sweep trial's key stays that of earlier versions.
        data = handler(self)
        if isinstance(data, dict):
            if not self.groups:
                data.pop("groups", None)
            if data.get("fused") == "auto":
                data.pop("fused")
        return data

    def torch_options(self) -> dict:
        """The keyword arguments of the torch optimizer (the groups are its param groups)."""
        return self.model_dump(exclude={"groups", "fused"})


class _FusableParams(_OptimizerParams):
    """The options of an optimizer torch has a fused kernel for (altlearn.optim.fused)."""

    fused: FusedChoice = Field(
        "auto",
        description="torch's step: auto (its fused kernel where the device has one), true (fused, "
        "or an error), false (its default step, what torch.optim.Adam(params) in most papers' code "
        "ran); the two differ by float32 rounding only",
    )


class _TorchOptimizer(Optimizer):
    """A ``torch.optim`` class whose keyword arguments are exactly the ``Params`` fields.

    Keeping the spec's option names equal to torch's makes each built-in a few lines of options,
    and the docs' option tables say what torch's documentation says. ``parameters`` are tensors,
    or torch's param groups (dicts with "params") when the spec gives ``groups``.
    """

    torch_name: ClassVar[str]
    fusable: ClassVar[bool] = True  # torch offers a fused kernel for this optimizer

    @classmethod
    def build(cls, p, parameters: Iterable):
        import torch

        parameters = list(parameters)
        tensors = [t for item in parameters for t in (item["params"] if isinstance(item, dict) else [item])]
        extra = {"fused": fused_argument(p.fused, tensors)} if cls.fusable else {}
        return getattr(torch.optim, cls.torch_name)(parameters, **p.torch_options(), **extra)


class SGD(_TorchOptimizer):
    torch_name = "SGD"
    # torch's fused SGD decides "first step" for the whole group: a parameter whose first gradient
    # comes later (FF's greedy schedule) meets an empty momentum buffer and the step fails
    fusable = False

    class Params(_OptimizerParams):
        lr: PositiveReal = Field(0.01, description="base learning rate")
        momentum: Fraction = Field(0.0, description="momentum factor (0: plain SGD)")
        nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0, dampening 0)")
        dampening: Probability = Field(0.0, description="dampening of the momentum")

        # Checked here rather than in build() so that `altlearn validate` reports it at
        # `optimizer`, instead of the trainer failing with a traceback after loading the data.
        @model_validator(mode="after")
        def _nesterov_needs_momentum(self):
            if self.nesterov and (self.momentum == 0 or self.dampening != 0):
                raise ValueError("nesterov needs momentum > 0 and dampening 0")
            return self


class Adam(_TorchOptimizer):
    torch_name = "Adam"

    class Params(_FusableParams):
        betas: Betas = Field((0.9, 0.999), description="moment decay rates, each in [0, 1)")
        eps: PositiveReal = Field(1e-8, description="added to the denominator for stability")


class AdamW(_TorchOptimizer):
    torch_name = "AdamW"

    class Params(Adam.Params):
        weight_decay: NonNegativeReal = Field(
            0.01, description="decoupled weight decay (not added to the gradient)"
        )


class RMSprop(_TorchOptimizer):
    """Nøkland 2016 trained every MNIST network with RMSprop; torch's update is Lua Torch's
    optim.rmsprop there: g / (sqrt(running mean of g^2) + eps), the mean square starting at 0."""

    torch_name = "RMSprop"
    fusable = False  # torch has no fused RMSprop kernel

    class Params(_OptimizerParams):
        alpha: Real = Field(0.99, gt=0.0, lt=1.0, description="decay of the running mean of g^2")
        eps: PositiveReal = Field(1e-8, description="added to the root of the mean square")
        momentum: Fraction = Field(0.0, description="momentum factor (0: none)")
        centered: bool = Field(False, description="divide by the running variance instead of the mean square")


# ---------------------------------------------------------------------------------------------
# Schedules


class Constant(Schedule):
    Params: ClassVar[type[ScheduleParams]] = ScheduleParams

    @staticmethod
    def factor(p) -> Factor:
        return lambda step, total, per_epoch: 1.0


class Cosine(Schedule):
    class Params(ScheduleParams):
        min_factor: Probability = Field(0.0, description="final lr as a fraction of lr")

    @staticmethod
    def factor(p) -> Factor:
        def f(step, total, per_epoch):
            progress = min(step / max(total, 1), 1.0)
            return p.min_factor + (1 - p.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

        return f


class Step(Schedule):
    class Params(ScheduleParams):
        step_size: Count | None = Field(10, description="epochs between decays (none with milestones)")
        gamma: Real = Field(0.1, gt=0.0, le=1.0, description="factor applied at each decay")
        milestones: list[Count] | None = Field(
            None,
            description="epochs at which to decay, instead of every step_size epochs "
            "(BioTorch's MNIST benchmark: [50, 75])",
        )

        @model_validator(mode="before")
        @classmethod
        def _no_step_size_with_milestones(cls, data):
            # Milestones replace the regular decay: step_size's default does not apply then.
            if isinstance(data, dict) and data.get("milestones") is not None and "step_size" not in data:
                return {**data, "step_size": None}
            return data

        @model_validator(mode="after")
        def _milestones_or_step_size(self):
            if self.milestones is not None and self.step_size is not None:
                raise ValueError("give milestones or step_size, not both")
            if self.milestones is None and self.step_size is None:
                raise ValueError("give step_size or milestones")
            if self.milestones is not None and self.milestones != sorted(set(self.milestones)):
                raise ValueError(f"milestones must be increasing epochs, got {self.milestones}")
            return self

        @model_serializer(mode="wrap")
        def _without_unused_step_size(self, handler):
            # A rendered spec (and a sweep trial's key) leaves out the step_size milestones replace,
            # so the spec reads back as written and keys stay those of earlier versions.
            data = handler(self)
            if self.milestones is not None and isinstance(data, dict):
                data.pop("step_size", None)
            return data

    @staticmethod
    def factor(p) -> Factor:
        def f(step, total, per_epoch):
            epoch = step // max(per_epoch, 1)
            if p.milestones is None:
                return p.gamma ** (epoch // p.step_size)
            return p.gamma ** sum(epoch >= m for m in p.milestones)

        return f


class Linear(Schedule):
    class Params(ScheduleParams):
        end_factor: Probability = Field(0.0, description="final lr as a fraction of lr")
        start_fraction: Fraction = Field(
            0.0,
            description="fraction of training at constant lr before the linear decay starts "
            "(0.5: the 'cool-down in the second half' of Forward-Forward reproductions)",
        )

    @staticmethod
    def factor(p) -> Factor:
        def f(step, total, per_epoch):
            progress = min(step / max(total, 1), 1.0)
            if progress <= p.start_fraction:
                return 1.0
            decay = (progress - p.start_fraction) / (1 - p.start_fraction)
            return 1.0 + (p.end_factor - 1.0) * decay

        return f


def build_scheduler(schedule_cls, params, optimizer, total_steps: int, steps_per_epoch: int):
    """A per-step LambdaLR applying the schedule (with warm-up) to every param group."""
    import torch

    base = schedule_cls.factor(params)
    # A plugin's schedule whose Params does not extend ScheduleParams simply has no warm-up.
    warmup_steps = int(getattr(params, "warmup_epochs", 0.0) * steps_per_epoch)
    per_epoch = getattr(params, "per_epoch", False) and steps_per_epoch > 0

    def factor(step: int) -> float:
        at = step - step % steps_per_epoch if per_epoch else step  # the epoch's first step
        value = base(at, total_steps, steps_per_epoch)
        if warmup_steps and step < warmup_steps:
            value *= (step + 1) / warmup_steps
        return value

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
