"""What turns a rule's gradients into steps: optimizers, learning-rate schedules, parameter groups
(per-layer options) and the training losses.

- ``optimizers``: the optimizer and schedule components (sgd, adam, adamw, rmsprop; constant,
  cosine, step, linear) and the per-step scheduler;
- ``fused``: the ``fused`` option of adam and adamw, which step torch runs (its fused kernel or
  its default per-tensor step);
- ``param_groups``: ``optimizer.groups``, options for the layers a group names;
- ``losses``: the loss components (cross_entropy, mse, bce) a rule's context hands it.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlearn.optim.losses import Loss, LossFn
    from altlearn.optim.optimizers import Optimizer, Schedule, ScheduleParams, build_scheduler

__all__ = ["Loss", "LossFn", "Optimizer", "Schedule", "ScheduleParams", "build_scheduler"]


def __getattr__(name: str) -> Any:
    """The names above, each imported on first use: the losses import torch, and ``altlearn
    options optimizer adam`` needs only the optimizers' option models, which do not. The
    ``param_groups`` function is ``altlearn.optim.param_groups.param_groups`` (the name alone is
    its module)."""
    if name in ("Loss", "LossFn"):
        from altlearn.optim import losses

        return getattr(losses, name)
    if name in ("Optimizer", "Schedule", "ScheduleParams", "build_scheduler"):
        from altlearn.optim import optimizers

        return getattr(optimizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
