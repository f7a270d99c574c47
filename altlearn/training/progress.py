"""Progress display: a live bar on a terminal, one plain line per epoch otherwise. Both are
observers; the bar stops itself in ``on_end``, however training ended."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from altlearn.spec.stopping import smoothed
from altlearn.text import printable, seconds_text
from altlearn.training.observers import Observer, Outcome

if TYPE_CHECKING:
    from rich.progress import TaskID

    from altlearn.training.trainer import Trainer


def _headline(trainer: Trainer) -> tuple[str, str]:
    """The spec's name and rule, control characters escaped (a spec is data, not terminal codes)."""
    return printable(trainer.spec.name), printable(trainer.spec.rule.type)


def _summary(metrics: dict[str, float]) -> str:
    parts = []
    for key, label in (
        ("train_loss", "loss"),
        ("train_accuracy", "acc"),
        ("val_accuracy", "val acc"),
        ("test_loss", "test loss"),
        ("test_accuracy", "test acc"),
    ):
        if key in metrics:
            value = metrics[key]
            parts.append(f"{label} {value:.2%}" if "accuracy" in key else f"{label} {value:.4f}")
    if "epoch_seconds" in metrics:
        parts.append(f"{seconds_text(metrics['epoch_seconds'])}s ({metrics['samples_per_second']:,.0f}/s)")
    return "  ".join(parts)


def _towards_stop(trainer: Trainer) -> str:
    """Where train.stop_when's metric stands, as the stop reads it (smoothed if asked), so a run
    that may train up to its cap shows how far it is from stopping."""
    condition, history = trainer.stop_condition, trainer.history
    if condition is None or not history or condition.metric not in history[-1]:
        return ""
    smoothing = trainer.spec.train.stop_smoothing
    value = smoothed(history, condition.metric, smoothing)
    return f"  stop at {condition}: {value:.6g}{' smoothed' if smoothing else ''}"


def _epoch_line(trainer: Trainer, epoch: int, metrics: dict[str, float]) -> str:
    return f"epoch {epoch}/{trainer.spec.train.epochs}  {_summary(metrics)}{_towards_stop(trainer)}"


class PlainProgress(Observer):
    """For logs and CI: one line per epoch, flushed."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout

    def on_start(self, trainer: Trainer) -> None:
        name, rule = _headline(trainer)
        print(
            f"training {name}: rule {rule}, {trainer.device}, "
            f"{len(trainer.data.train_x)} examples, {trainer.steps_per_epoch} steps/epoch",
            file=self.stream,
            flush=True,
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        print(_epoch_line(trainer, epoch, metrics), file=self.stream, flush=True)


class RichProgress(Observer):
    """A live bar with the running loss and accuracy, and a line per finished epoch."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[live]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task: TaskID | None = None  # the epoch's bar, from on_start on
        self.epochs = 0

    @property
    def _task(self) -> TaskID:
        assert self.task is not None, "on_start comes first"
        return self.task

    def on_start(self, trainer: Trainer) -> None:
        from rich.markup import escape

        self.epochs = trainer.spec.train.epochs
        name, rule = (escape(text) for text in _headline(trainer))  # "[red]" in a name is no markup
        self.console.print(
            f"training [bold]{name}[/]: rule [cyan]{rule}[/], "
            f"{trainer.device}, {len(trainer.data.train_x)} examples"
        )
        self.progress.start()
        first = trainer.epoch + 1  # after a resume, not 1
        self.task = self.progress.add_task(
            f"epoch {first}/{self.epochs}", total=trainer.steps_per_epoch, live=""
        )

    def on_progress(self, trainer: Trainer, epoch: int, step: int, metrics: dict[str, float]) -> None:
        live = f"loss {metrics.get('loss', float('nan')):.4f}"
        if "accuracy" in metrics:
            live += f" acc {metrics['accuracy']:.2%}"
        self.progress.update(
            self._task, completed=step, description=f"epoch {epoch}/{self.epochs}", live=live
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.console.print(_epoch_line(trainer, epoch, metrics), markup=False)
        if not trainer.last_epoch:
            self.progress.reset(self._task, description=f"epoch {epoch + 1}/{self.epochs}", live="")
        else:
            self.progress.update(self._task, visible=False)

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        self.progress.stop()


def make_progress(quiet: bool) -> Observer | None:
    if quiet:
        return None
    return RichProgress() if sys.stdout.isatty() else PlainProgress()
