"""The trainer's events as a callback protocol: subclass ``Observer``, override what you need.

Every event receives the trainer first. In the order a run sees them (docs/architecture.md):

    on_start(trainer)                           once, before the first epoch (or the first after a resume)
    on_batch_start(trainer, step, x, y)         before each training step; ``step`` counts all steps
    on_alignment(trainer, step, values)         an AlignmentObserver measured the rule against BP
    on_progress(trainer, epoch, step, metrics)  every ``train.log_every`` steps: running means
    on_epoch_end(trainer, epoch, metrics)       after each epoch's evaluation
    on_train_end(trainer, metrics)              every epoch done: the place for final artifacts
    on_exception(trainer, error)                anything above raised (an observer included)
    on_end(trainer, outcome)                    always, last, once: how training ended

An exception raised by an observer in the first six events stops training like one raised by the
rule. ``on_exception`` and ``on_end`` run for every observer even when one of them fails: their
failures are collected in ``Trainer.end_errors`` instead of hiding the original error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from altlearn.training.trainer import Trainer

Status = Literal["FINISHED", "FAILED", "KILLED"]


class StopRun(Exception):
    """Raised by an observer to end training on purpose before its last epoch (a sweep's pruner:
    the trial cannot win). The run ends KILLED, with ``tags`` set on it and the message as its
    reason; nothing failed, so a sweep neither counts it as a failure nor resumes it."""

    def __init__(self, message: str, tags: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.tags = dict(tags or {})


@dataclass(frozen=True)
class Outcome:
    """How ``Trainer.fit`` ended. FINISHED means every epoch the spec asks for was trained, or
    its train.stop_when ended training (``stopped`` says why); ``unmet`` says that a run with a
    train.stop_when trained every epoch without meeting it."""

    status: Status
    epoch: int  # epochs completed
    epochs: int  # epochs the spec asks for
    error: BaseException | None = None
    stopped: str | None = None
    unmet: str | None = None

    @classmethod
    def of(cls, trainer: Trainer, error: BaseException | None) -> Outcome:
        epochs = trainer.spec.train.epochs
        if error is None and trainer.last_epoch:
            unmet = None if trainer.stopped else trainer.stop_note
            return cls("FINISHED", trainer.epoch, epochs, stopped=trainer.stopped, unmet=unmet)
        if isinstance(error, (KeyboardInterrupt, StopRun)):  # Ctrl-C, SIGTERM as Terminated, or asked
            return cls("KILLED", trainer.epoch, epochs, error)
        if error is None:  # cannot happen through fit(); never call a short run FINISHED
            error = RuntimeError(f"training stopped after epoch {trainer.epoch} of {epochs}")
        return cls("FAILED", trainer.epoch, epochs, error)


class Observer:
    """Receives the trainer's events. Every method is optional."""

    def on_start(self, trainer: Trainer) -> None: ...
    def on_batch_start(self, trainer: Trainer, step: int, x: torch.Tensor, y: torch.Tensor) -> None: ...
    def on_alignment(self, trainer: Trainer, step: int, values: dict[str, float]) -> None: ...
    def on_progress(self, trainer: Trainer, epoch: int, step: int, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...
    def on_end(self, trainer: Trainer, outcome: Outcome) -> None: ...


def notify(observers: list[Observer], event: str, trainer: Trainer, *args: Any) -> None:
    """Call ``event`` on every observer in order; the first exception stops training."""
    for observer in observers:
        getattr(observer, event)(trainer, *args)


def notify_all(observers: list[Observer], event: str, trainer: Trainer, *args: Any) -> list[str]:
    """Call ``event`` on every observer even if some raise; return what each failure said."""
    errors = []
    for observer in observers:
        try:
            getattr(observer, event)(trainer, *args)
        except Exception as exc:  # noqa: BLE001 - one observer's failure must not skip the others
            errors.append(f"{type(observer).__name__}.{event}: {type(exc).__name__}: {exc}")
    return errors
