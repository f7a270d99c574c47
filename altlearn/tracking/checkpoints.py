"""Checkpoints (``Trainer.state()``) and the final weights and model, as run artifacts.

A checkpoint is never overwritten in place: each goes to a new file, and only once it is complete
does the run's ``altlearn.checkpoint`` tag point at it (with its size and SHA-256), in the same
write as ``altlearn.checkpoint_epoch``; the previous file is deleted after that. A reader therefore
sees the old checkpoint or the new one, never a truncated one (the disk filling mid-copy, a cut
connection), and a checkpoint tag never claims an epoch its file does not hold.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from altlearn.observers import Observer
from altlearn.tracking.run import CHECKPOINT_EPOCH_TAG, CHECKPOINT_TAG
from altlearn.tracking.signals import signals_deferred
from altlearn.tracking.store import store_errors

CHECKPOINT_FOLDER = "checkpoint"
LEGACY_STATE_PATH = f"{CHECKPOINT_FOLDER}/trainer_state.pt"  # runs of altlearn before this layout


class CheckpointObserver(Observer):
    """Logs ``Trainer.state()`` every ``tracking.checkpoint_minutes`` and after the last epoch, so
    an interrupted run loses at most that much training (``altlearn resume``)."""

    def __init__(self, recorder, minutes: float) -> None:
        self.recorder = recorder
        self.seconds = minutes * 60
        self.last_time = 0.0

    def on_start(self, trainer) -> None:
        self.last_time = time.monotonic()

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if trainer.last_epoch or time.monotonic() - self.last_time >= self.seconds:
            # Signals wait until the file is complete and recorded as such.
            with signals_deferred():
                save_checkpoint(self.recorder, trainer)
            self.last_time = time.monotonic()


def save_checkpoint(recorder, trainer) -> None:
    import mlflow.entities
    import torch

    name = f"trainer_state-epoch{trainer.epoch:04d}.pt"
    artifact = f"{CHECKPOINT_FOLDER}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        torch.save(trainer.state(), path)
        reference = f"{artifact} {path.stat().st_size} {file_sha256(path)}"
        try:
            with store_errors(f"writing the checkpoint of epoch {trainer.epoch}"):
                recorder.client.log_artifact(recorder.run_id, str(path), CHECKPOINT_FOLDER)
        except BaseException:
            _delete_artifact(recorder, artifact)  # a partial copy must not linger
            raise
    tags = [
        mlflow.entities.RunTag(CHECKPOINT_TAG, reference),
        mlflow.entities.RunTag(CHECKPOINT_EPOCH_TAG, str(trainer.epoch)),
    ]
    with store_errors(f"recording the checkpoint of epoch {trainer.epoch}"):
        recorder.client.log_batch(recorder.run_id, tags=tags, synchronous=True)
    previous = recorder.checkpoint_reference
    recorder.checkpoint_reference, recorder.checkpoint_epoch = reference, trainer.epoch
    if previous and previous.split()[0] != artifact:
        _delete_artifact(recorder, previous.split()[0])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _delete_artifact(recorder, artifact: str) -> None:
    """Best effort: some artifact stores cannot delete, and a leftover file is only space."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        get_artifact_repository(recorder.artifact_uri).delete_artifacts(artifact)
    except Exception:  # noqa: BLE001, S110 - nothing refers to the file; keeping it is harmless
        pass


class FinalArtifacts(Observer):
    """After the last epoch: the weights' state_dict and (unless disabled) the MLflow model."""

    def __init__(self, recorder, log_model: bool) -> None:
        self.recorder = recorder
        self.log_model = log_model

    def on_train_end(self, trainer, metrics: dict[str, float]) -> None:
        import torch

        with tempfile.TemporaryDirectory() as tmp, store_errors("writing the final weights"):
            path = Path(tmp) / "state_dict.pt"
            torch.save(trainer.rule.state_dict(), path)
            self.recorder.client.log_artifact(self.recorder.run_id, str(path), CHECKPOINT_FOLDER)
        if self.log_model:
            with store_errors("logging the MLflow model"):
                self._log_model(trainer)

    def _log_model(self, trainer) -> None:
        import mlflow
        import torch

        options = dict(
            input_example=trainer.example_input(),  # batch of 2: batch 1 would fix the batch size
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            run_id=self.recorder.run_id,  # not the "active run": see altlearn.tracking.run
        )
        model = trainer.inference_model()
        try:
            mlflow.pytorch.log_model(model, model_id=self._new_model_id(), **options)
        except Exception as exc:  # noqa: BLE001 - torch.export cannot trace every rule's model
            self.recorder.client.set_tag(
                self.recorder.run_id,
                "altlearn.model_format",
                f"pickle (pt2 export failed: {type(exc).__name__})",
            )
            mlflow.pytorch.log_model(
                model, model_id=self._new_model_id(), serialization_format="pickle", **options
            )

    def _new_model_id(self) -> str:
        """A model entry in the run's experiment (MLflow would pick the "active" experiment)."""
        recorder = self.recorder
        model = recorder.client.create_logged_model(
            recorder.experiment_id, name="model", source_run_id=recorder.run_id
        )
        return model.model_id
