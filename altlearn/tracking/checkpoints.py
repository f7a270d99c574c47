"""Checkpoints (``Trainer.state()``) and the final weights and model, as run artifacts.

A checkpoint is never overwritten in place: each goes to a new file, and only once it is complete
and on the disk (``durable``: the file and its folders fsynced) does the run's
``altlearn.checkpoint`` tag point at it (with its size and SHA-256), in the same write as
``altlearn.checkpoint_epoch``. A reader therefore sees the old checkpoint or the new one, never a
truncated one (the disk filling mid-copy, a cut connection), and a checkpoint tag never claims an
epoch its file does not hold, nor names a file that a crash of the machine could leave empty.

The run keeps its last two checkpoints: the same write moves the previous reference to
``altlearn.checkpoint_previous``, and only after it is the file before that deleted. Should the
newest file still be damaged (by a fault no fsync guards against: a disk that lies about its
cache, a hand that truncated it), ``altlearn resume`` says so and continues from the previous one.

Ctrl-C or SIGTERM checkpoints the run too, so that resuming continues after the last completed
epoch, not after the last timed checkpoint. The interrupt lands mid-epoch, where the live state
cannot be resumed bit-identically, so each epoch that gets no checkpoint leaves a snapshot instead:
its state serialised into host memory (the checkpoint's bytes, no device memory), written only if
an interrupt comes before the next one. A second signal during that write is held and dropped: the
run is already ending, and cutting the write short would only lose the checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from altlearn.tracking.durable import local_artifact_dir, log_artifact_durably, sync_tree
from altlearn.tracking.recorder import CHECKPOINT_EPOCH_TAG, CHECKPOINT_PREVIOUS_TAG, CHECKPOINT_TAG
from altlearn.tracking.signals import signals_deferred
from altlearn.tracking.store import store_errors
from altlearn.training.observers import Observer

CHECKPOINT_FOLDER = "checkpoint"
LEGACY_STATE_PATH = f"{CHECKPOINT_FOLDER}/trainer_state.pt"  # runs of altlearn before this layout
KEPT_CHECKPOINTS = 2  # the newest and one to fall back on: the two checkpoint tags


@dataclass(frozen=True)
class _Snapshot:
    """``Trainer.state()`` at the end of epoch ``epoch``, serialised: the checkpoint file's bytes."""

    epoch: int
    data: io.BytesIO

    @classmethod
    def of(cls, trainer) -> _Snapshot:
        import torch

        data = io.BytesIO()
        torch.save(trainer.state(), data)  # copies every tensor off the device: training goes on
        return cls(trainer.epoch, data)


class CheckpointObserver(Observer):
    """Logs ``Trainer.state()`` every ``tracking.checkpoint_minutes``, after the last epoch, and
    when the run is interrupted (the state after its last completed epoch), so an interrupted run
    loses at most the epoch it was in, and a crashed one that many minutes (``altlearn resume``)."""

    def __init__(self, recorder, minutes: float) -> None:
        self.recorder = recorder
        self.seconds = minutes * 60
        self.last_time = 0.0
        self.snapshot: _Snapshot | None = None  # of the last epoch, when it has no checkpoint

    def on_start(self, trainer) -> None:
        self.last_time = time.monotonic()

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        due = trainer.last_epoch or time.monotonic() - self.last_time >= self.seconds
        # Signals wait until the checkpoint is complete and recorded as such, or until this
        # epoch's snapshot is whole: an interrupt meanwhile then finds one of the two.
        with signals_deferred():
            self.snapshot = None  # outdated now; dropped first, so that two never share the memory
            if due:
                save_checkpoint(self.recorder, trainer)
                self.last_time = time.monotonic()
            else:
                self.snapshot = _Snapshot.of(trainer)

    def on_exception(self, trainer, error: BaseException) -> None:
        snapshot, recorded = self.snapshot, self.recorder.checkpoint_epoch
        if not isinstance(error, KeyboardInterrupt) or snapshot is None or self.recorder.run_id is None:
            # Interrupts only: after a failure (the store, the disk, a bug) this write would often
            # fail too, and the run keeps its timed checkpoints.
            return
        if recorded is not None and snapshot.epoch <= recorded:
            return
        # The run ends KILLED once the on_exception calls are done: a second Ctrl-C (or SIGTERM)
        # meanwhile asks for that ending, which is under way, so it waits and is dropped.
        with signals_deferred(drop=True):
            _record(self.recorder, snapshot.epoch, lambda path: path.write_bytes(snapshot.data.getbuffer()))
        self.snapshot = None


def save_checkpoint(recorder, trainer) -> None:
    """``trainer.state()`` as the run's newest checkpoint, of the epoch it has completed."""
    import torch

    _record(recorder, trainer.epoch, lambda path: torch.save(trainer.state(), path))


def _record(recorder, epoch: int, write: Callable[[Path], object]) -> None:
    """The checkpoint of ``epoch``, as ``write`` puts it in a file, logged durably, then tagged."""
    name = f"trainer_state-epoch{epoch:04d}.pt"
    artifact = f"{CHECKPOINT_FOLDER}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        # The copy in the store is the one that must survive a crash, so it is the one synced;
        # this temporary file is gone after a crash whatever happens to it.
        path = Path(tmp) / name
        write(path)
        reference = f"{artifact} {path.stat().st_size} {file_sha256(path)}"
        try:
            with store_errors(f"writing the checkpoint of epoch {epoch}"):
                log_artifact_durably(
                    recorder.client, recorder.run_id, recorder.artifact_uri, path, CHECKPOINT_FOLDER
                )
        except BaseException:
            _delete_artifact(recorder, artifact)  # a partial copy must not linger
            raise
    earlier = [r for r in _trusted(recorder) if reference_path(r) != artifact]
    kept = [reference, *earlier][:KEPT_CHECKPOINTS]
    _tag(recorder, kept, epoch)
    dropped = {reference_path(r) for r in recorder.checkpoint_references} - {reference_path(r) for r in kept}
    recorder.checkpoint_references, recorder.checkpoint_epoch = kept, epoch
    for old in sorted(dropped):  # only now that no tag names them
        _delete_artifact(recorder, old)


def _trusted(recorder) -> list[str]:
    """The run's checkpoint references no newer than the checkpoint this process resumed from or
    wrote last. A newer one is one resume skipped as damaged: it must not become the fallback."""
    last = recorder.checkpoint_epoch
    return [
        r
        for r in recorder.checkpoint_references
        if last is not None and (epoch := reference_epoch(r)) is not None and epoch <= last
    ]


def _tag(recorder, kept: list[str], epoch: int) -> None:
    import mlflow.entities

    tags = [
        mlflow.entities.RunTag(CHECKPOINT_TAG, kept[0]),
        mlflow.entities.RunTag(CHECKPOINT_EPOCH_TAG, str(epoch)),
    ]
    if len(kept) > 1:
        tags.append(mlflow.entities.RunTag(CHECKPOINT_PREVIOUS_TAG, kept[1]))
    with store_errors(f"recording the checkpoint of epoch {epoch}"):
        recorder.client.log_batch(recorder.run_id, tags=tags, synchronous=True)
        if len(kept) == 1 and len(recorder.checkpoint_references) > 1:
            # a fallback left from before a resume that skipped it; its file is deleted next
            recorder.client.delete_tag(recorder.run_id, CHECKPOINT_PREVIOUS_TAG)


def reference_path(reference: str) -> str:
    """The artifact path in a checkpoint tag ("<artifact path> <bytes> <sha256>")."""
    return reference.split()[0] if reference.split() else ""


def reference_epoch(reference: str) -> int | None:
    """The epoch a checkpoint tag's file holds, from its name (``trainer_state-epochNNNN.pt``)."""
    found = re.search(r"trainer_state-epoch(\d+)\.pt$", reference_path(reference))
    return int(found.group(1)) if found else None


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
            recorder = self.recorder
            log_artifact_durably(
                recorder.client, recorder.run_id, recorder.artifact_uri, path, CHECKPOINT_FOLDER
            )
        if self.log_model:
            with store_errors("logging the MLflow model"):
                self._sync_model(self._log_model(trainer))

    def _sync_model(self, model_id: str) -> None:
        """The model's files on the disk before the run is ended FINISHED, which vouches for them."""
        location = self.recorder.client.get_logged_model(model_id).artifact_location
        folder = local_artifact_dir(location)
        if folder is not None and folder.is_dir():
            sync_tree(folder)  # <store>/<experiment>/models/<id>/artifacts, like a run's folder

    def _log_model(self, trainer) -> str:
        """Logs the model; its id."""
        import mlflow
        import torch

        options = dict(
            input_example=trainer.example_input(),  # batch of 2: batch 1 would fix the batch size
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            run_id=self.recorder.run_id,  # not the "active run": see altlearn.tracking.recorder
        )
        model = trainer.inference_model()
        try:
            model_id = self._new_model_id()
            mlflow.pytorch.log_model(model, model_id=model_id, **options)
        except Exception as exc:  # noqa: BLE001 - torch.export cannot trace every rule's model
            self.recorder.client.set_tag(
                self.recorder.run_id,
                "altlearn.model_format",
                f"pickle (pt2 export failed: {type(exc).__name__})",
            )
            model_id = self._new_model_id()
            mlflow.pytorch.log_model(model, model_id=model_id, serialization_format="pickle", **options)
        return model_id

    def _new_model_id(self) -> str:
        """A model entry in the run's experiment (MLflow would pick the "active" experiment)."""
        recorder = self.recorder
        model = recorder.client.create_logged_model(
            recorder.experiment_id, name="model", source_run_id=recorder.run_id
        )
        return model.model_id
