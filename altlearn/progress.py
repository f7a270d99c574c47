"""Progress display: a live bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys

from altlearn.train import Observer, Trainer


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
        parts.append(f"{metrics['epoch_seconds']:.1f}s ({metrics['samples_per_second']:.0f}/s)")
    return "  ".join(parts)


class PlainProgress(Observer):
    """For logs and CI: one line per epoch, flushed."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.epochs = 0

    def on_start(self, trainer: Trainer) -> None:
        self.epochs = trainer.spec.train.epochs
        print(
            f"training {trainer.spec.name}: rule {trainer.spec.rule.type}, {trainer.device}, "
            f"{len(trainer.data.train_x)} examples, {trainer.steps_per_epoch} steps/epoch",
            file=self.stream,
            flush=True,
        )

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        print(f"epoch {epoch}/{self.epochs}  {_summary(metrics)}", file=self.stream, flush=True)


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
        self.task = None
        self.epochs = 0

    def on_start(self, trainer: Trainer) -> None:
        self.epochs = trainer.spec.train.epochs
        self.console.print(
            f"training [bold]{trainer.spec.name}[/]: rule [cyan]{trainer.spec.rule.type}[/], "
            f"{trainer.device}, {len(trainer.data.train_x)} examples"
        )
        self.progress.start()
        first = trainer.epoch + 1  # after a resume, not 1
        self.task = self.progress.add_task(
            f"epoch {first}/{self.epochs}", total=trainer.steps_per_epoch, live=""
        )

    def on_progress(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        live = f"loss {metrics.get('loss', float('nan')):.4f}"
        if "accuracy" in metrics:
            live += f" acc {metrics['accuracy']:.2%}"
        self.progress.update(self.task, completed=step, description=f"epoch {epoch}/{self.epochs}", live=live)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.console.print(f"epoch {epoch}/{self.epochs}  {_summary(metrics)}")
        if epoch < self.epochs:
            self.progress.reset(self.task, description=f"epoch {epoch + 1}/{self.epochs}", live="")
        else:
            self.progress.update(self.task, visible=False)

    def close(self) -> None:
        self.progress.stop()


def make_progress(quiet: bool) -> Observer | None:
    if quiet:
        return None
    return RichProgress() if sys.stdout.isatty() else PlainProgress()
