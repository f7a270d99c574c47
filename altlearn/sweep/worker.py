"""What runs where a trial runs (a local worker process or a Ray task): a ``Job`` in, events out."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from altlearn.errors import AltlearnError, ExitCode
from altlearn.sweep.adapter import RunOutcome
from altlearn.sweep.jobs import Event, Job
from altlearn.training.observers import Observer


class EventObserver(Observer):
    """A trainer observer that turns the trainer's epochs into events for the sweep's table."""

    def __init__(self, index: int, send: Callable[[Event], None]) -> None:
        self.index = index
        self.send = send
        self.epochs = 0

    def on_start(self, trainer) -> None:
        self.epochs = trainer.spec.train.epochs
        self.send(Event(self.index, "started", epoch=trainer.epoch, epochs=self.epochs))

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        split = "test" if "test_accuracy" in metrics else "val"  # a search trial never sees test
        accuracy = metrics.get(f"{split}_accuracy")
        self.send(
            Event(
                self.index,
                "epoch",
                epoch=epoch,
                epochs=self.epochs,
                test_accuracy=accuracy,
                accuracy_of=split,
            )
        )


def prepare() -> None:
    """Import what every trial needs (MLflow, the plugins) once, before the first trial."""
    import mlflow  # noqa: F401

    # The package altlearn.tracking loads its modules lazily: name one that pulls in the others
    # (recorder, checkpoints, store, tags).
    import altlearn.tracking.resume  # noqa: F401
    from altlearn.registry import registry as plugins
    from altlearn.sweep.locks import wait_for_sqlite_locks
    from altlearn.training.build import flush_denormals

    flush_denormals()  # before any torch work starts this worker's threads
    wait_for_sqlite_locks()
    plugins.get_registry()


def run_job(job: Job, send: Callable[[Event], None]) -> RunOutcome:
    """Train the job's trial; every ending, even a bug, becomes an outcome (a bug's traceback goes
    to stderr, the run is FAILED with the error as its altlearn.error tag)."""
    prepare()  # done already in a local worker; a Ray task's first job does it here
    try:
        return _train(job, send)
    except AltlearnError as exc:  # e.g. a spec naming a plugin this worker cannot load: no bug
        return RunOutcome(job.resume_run_id, "FAILED", exc.report(), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one trial's bug must not end the worker
        traceback.print_exc()
        return RunOutcome(job.resume_run_id, "FAILED", f"{type(exc).__name__}: {exc}", ExitCode.FAILED)


def _train(job: Job, send: Callable[[Event], None]) -> RunOutcome:
    import torch

    from altlearn.spec.load import load_spec_text
    from altlearn.sweep.adapter import train_trial

    spec = load_spec_text(job.spec_yaml, source=job.source or f"trial {job.key}")
    if job.threads and not spec.train.threads:
        torch.set_num_threads(job.threads)  # trials side by side must not each take every core
    return train_trial(
        spec,
        uri=job.uri,
        resume_run_id=job.resume_run_id,
        extra_tags=job.tags,
        parent_run_id=job.parent_run_id,
        progress=EventObserver(job.index, send),
        observers=_pruning(job),
    )


def _pruning(job: Job) -> list[Observer]:
    """A search trial's pruner, judging it after each epoch against its case's other trials."""
    if job.pruning is None:
        return []
    from altlearn.sweep.pruning import PruningObserver
    from altlearn.tracking.store import connect

    client, _ = connect(job.uri)
    return [PruningObserver(job.pruning, client)]
