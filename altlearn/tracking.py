"""MLflow: one run per ``altlearn run``, with what a comparison across rules needs.

Logged: the flattened resolved spec as params; rule/dataset/network and package versions as tags;
per-epoch metrics under names shared by all rules; the resolved spec, the training state (every
``tracking.checkpoint_minutes`` and at the end: what ``altlearn resume`` continues from), the
weights' state_dict and the trained model as artifacts. A run that raises ends FAILED, Ctrl-C ends
KILLED, and whatever was logged before stays (metrics are written as they happen).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from altlearn.spec_model import Spec, flatten
from altlearn.train import CHECKPOINT_FORMAT, Observer, Trainer
from altlearn.version import __version__

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value is 6000 characters
CHECKPOINT_FOLDER = "checkpoint"
TRAINER_STATE_FILE = "trainer_state.pt"  # Trainer.state(): what `altlearn resume` continues from


def tracking_uri(cli_uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _experiment_id(client, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the database, where `mlflow ui` started in this folder finds them.
        db_path = Path(uri[len("sqlite:///") :]).resolve()
        artifact_location = (db_path.parent / ARTIFACT_FOLDER).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another run of a sweep created it between our look-up and now: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class TrackingUnavailable(Exception):
    """The MLflow tracking store cannot be used; the message names the URI and the cause."""


def connect(uri: str, experiment: str | None = None):
    """An MlflowClient for ``uri`` (and the id of ``experiment``, created if new; else the store
    is only read), or
    TrackingUnavailable with a one-line reason: called before any data is loaded, so a wrong URI
    costs the user seconds, not a training run."""
    from mlflow.tracking import MlflowClient

    # MLflow configures its logger on import; keep its database set-up chatter off the console.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    _check_server_reachable(uri)
    attempts = 3 if uri.startswith("sqlite:") else 1
    for attempt in range(attempts):
        try:
            client = MlflowClient(tracking_uri=uri)
            if experiment:
                return client, _experiment_id(client, experiment, uri)
            client.search_experiments(max_results=1)  # touch the store: fail now if it is unusable
            return client, None
        except Exception as exc:  # noqa: BLE001 - any store failure becomes one clear message
            # Two runs creating a new SQLite store at once race on its schema: the loser retries.
            if attempt + 1 < attempts and "OperationalError" in type(exc).__name__ + str(exc):
                time.sleep(1.0 + attempt)
                continue
            raise TrackingUnavailable(
                f"cannot use the MLflow tracking store {uri}: {type(exc).__name__}: "
                f"{_first_line(exc)} (set --tracking-uri or MLFLOW_TRACKING_URI; the default is "
                f"{DEFAULT_TRACKING_URI})"
            ) from None
    raise AssertionError("unreachable")


def _check_server_reachable(uri: str) -> None:
    """Fail in seconds on an unreachable server (MLflow itself retries for minutes)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=5):
            pass
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking server {uri}: {exc.strerror or exc} (is `mlflow "
            "server` running there?)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


class MlflowObserver(Observer):
    """Writes the trainer's epoch metrics and alignment measurements into the active run."""

    def __init__(self, client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        # A resumed run repeats the epochs after its checkpoint that the stopped process had
        # logged already (the same values, as training is repeatable): log those steps once.
        self.logged_epoch = 0
        self.logged_alignment_step = -1

    def on_start(self, trainer: Trainer) -> None:
        if trainer.epoch:  # resumed
            self.logged_epoch = self._last_step("train_loss", default=0)
            self.logged_alignment_step = max(
                (
                    self._last_step(key, default=-1)
                    for key in self._run_metric_keys()
                    if key.startswith("alignment/")
                ),
                default=-1,
            )

    def _run_metric_keys(self) -> list[str]:
        return list(self.client.get_run(self.run_id).data.metrics)

    def _last_step(self, key: str, default: int) -> int:
        return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=default)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        import mlflow.entities

        if epoch <= self.logged_epoch:
            return
        now = _now_ms()
        batch = [mlflow.entities.Metric(key, float(value), now, epoch) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def on_alignment(self, step: int, values: dict[str, float]) -> None:
        import mlflow.entities

        if step <= self.logged_alignment_step:
            return
        now = _now_ms()
        batch = [mlflow.entities.Metric(f"alignment/{k}", float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


class CheckpointObserver(Observer):
    """Logs ``Trainer.state()`` to the run every ``tracking.checkpoint_minutes`` and after the last
    epoch, so an interrupted run loses at most that much training (``altlearn resume``)."""

    def __init__(self, client, run_id: str, minutes: float) -> None:
        self.client = client
        self.run_id = run_id
        self.seconds = minutes * 60
        self.trainer: Trainer | None = None
        self.last_time = 0.0
        self.saved_epoch: int | None = None  # the epoch of the newest checkpoint in the run

    def on_start(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.last_time = time.monotonic()
        if trainer.epoch:  # resumed: the run already holds the checkpoint it started from
            self.saved_epoch = trainer.epoch

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        last_epoch = epoch == self.trainer.spec.train.epochs
        if last_epoch or time.monotonic() - self.last_time >= self.seconds:
            # Signals wait until the file is complete and recorded as such: an interrupted copy
            # would replace the last good checkpoint with a truncated one.
            with _signals_deferred():
                log_trainer_state(self.client, self.run_id, self.trainer)
                self.saved_epoch = epoch
            self.last_time = time.monotonic()


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise them (SIGTERM as Terminated)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            raise Terminated if signal.SIGTERM in received else KeyboardInterrupt


def log_trainer_state(client, run_id: str, trainer: Trainer) -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / TRAINER_STATE_FILE
        torch.save(trainer.state(), path)
        # Same artifact path each time: the newest checkpoint replaces the previous one.
        client.log_artifact(run_id, str(path), CHECKPOINT_FOLDER)
    client.set_tag(run_id, "altlearn.checkpoint_epoch", str(trainer.epoch))


class ResumeError(Exception):
    """The run cannot be resumed; the message says why and what to do."""


def resumable_run(uri: str, run_id: str) -> tuple[str, dict]:
    """The resolved spec (YAML text) and the trainer state of an unfinished run."""
    import mlflow
    import torch
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        # Do not create an empty store in a folder the user did not train in.
        raise ResumeError(
            f"there is no MLflow database {uri[len('sqlite:///') :]}: resume in the "
            "folder the run was started from, or give its --tracking-uri"
        )
    client, _ = connect(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ResumeError(
            f"no run {run_id!r} in {uri} (give the run ID from `mlflow ui` or from "
            "the line `altlearn run` printed, and the same --tracking-uri)"
        ) from None
    if run.info.lifecycle_stage != "active":
        raise ResumeError(f"run {run_id} is deleted; restore it in the MLflow UI first")
    if run.info.status == "FINISHED":
        raise ResumeError(f"run {run_id} finished; there is nothing to resume")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            spec_path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="spec.yaml", dst_path=tmp, tracking_uri=uri
            )
            state_path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=f"{CHECKPOINT_FOLDER}/{TRAINER_STATE_FILE}",
                dst_path=tmp,
                tracking_uri=uri,
            )
        except (MlflowException, OSError):
            raise ResumeError(
                f"run {run_id} has no checkpoint to resume from: it stopped before its first "
                f"one (tracking.checkpoint_minutes is {_checkpoint_minutes(run)}); start it again "
                "with altlearn run"
            ) from None
        spec_text = Path(spec_path).read_text()
        try:
            # weights_only: tensors and plain containers only, so a checkpoint on a shared server
            # cannot run code on the machine that resumes it.
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(
                    f"format {state.get('format') if isinstance(state, dict) else '?'}"
                    f", expected {CHECKPOINT_FORMAT} (another altlearn version?)"
                )
        except Exception as exc:  # noqa: BLE001 - a damaged file can fail in many ways
            raise ResumeError(
                f"the checkpoint of run {run_id} cannot be used ({exc}); start the "
                "run again with altlearn run"
            ) from None
    return spec_text, state


def _checkpoint_minutes(run) -> str:
    return run.data.params.get("tracking.checkpoint_minutes", "unknown")


@contextmanager
def mlflow_run(spec: Spec, uri: str, resume_run_id: str | None = None) -> Iterator[RunHandle]:
    """Open a run (or reopen ``resume_run_id``); end it FINISHED, FAILED (exception) or KILLED
    (Ctrl-C, SIGTERM), keeping what was logged."""
    import mlflow

    client, experiment_id = connect(uri, None if resume_run_id else spec.tracking.experiment)
    mlflow.set_tracking_uri(uri)
    handle = None
    try:
        # A signal while the run is being opened waits until it is open, then ends it KILLED
        # below (otherwise MLflow's exit hook would close the half-made run as FINISHED).
        with _signals_deferred():
            if resume_run_id is None:
                run = mlflow.start_run(
                    experiment_id=experiment_id,
                    run_name=spec.tracking.run_name or spec.name,
                    tags=_tags(spec),
                )
            else:
                run = mlflow.start_run(run_id=resume_run_id)  # RUNNING again; params, metrics stay
                if "altlearn.error" in run.data.tags:
                    client.delete_tag(resume_run_id, "altlearn.error")
            handle = RunHandle(client, run.info.run_id, run.info.artifact_uri, uri)
        if resume_run_id is None:
            handle.log_spec(spec)
        yield handle
    except KeyboardInterrupt as exc:
        if handle is not None:
            how = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            with _signals_deferred():  # a second Ctrl-C must not leave the run to atexit's FINISHED
                client.set_tag(handle.run_id, "altlearn.error", f"interrupted ({how})")
                mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        if handle is not None:
            with _signals_deferred():
                client.set_tag(handle.run_id, "altlearn.error", f"{type(exc).__name__}: {exc}"[:5000])
                mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop): handled like Ctrl-C, recorded as what it was."""


def _tags(spec: Spec) -> dict[str, str]:
    import torch

    tags = {
        "altlearn.rule": spec.rule.type,
        "altlearn.dataset": spec.data.type,
        "altlearn.network": " ".join(_layer_label(b) for b in spec.layers),
        "altlearn.version": __version__,
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
        "mlflow.source.name": spec.source or "",
        "mlflow.source.type": "LOCAL",
    }
    for package, version in sorted(spec.packages.items()):
        tags[f"plugin.{package}"] = version
    tags.update(spec.tracking.tags)
    return tags


def _layer_label(block) -> str:
    params = block.params.model_dump()
    size = params.get("out_features") or params.get("out_channels")
    return f"{block.type}{size}" if size else block.type


class RunHandle:
    def __init__(self, client, run_id: str, artifact_uri: str, uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.artifact_uri = artifact_uri
        self.uri = uri

    def observers(self, spec: Spec) -> list[Observer]:
        self.checkpoints = CheckpointObserver(self.client, self.run_id, spec.tracking.checkpoint_minutes)
        return [MlflowObserver(self.client, self.run_id), self.checkpoints]

    @property
    def checkpoint_epoch(self) -> int | None:
        """The epoch `altlearn resume` would continue after; None if the run has no checkpoint."""
        checkpoints = getattr(self, "checkpoints", None)
        return checkpoints.saved_epoch if checkpoints is not None else None

    def log_spec(self, spec: Spec) -> None:
        import mlflow.entities

        params = []
        for key, value in flatten(spec.to_dict()).items():
            text = str(value)[:MAX_PARAM_LENGTH]
            params.append(mlflow.entities.Param(key, text))
        for start in range(0, len(params), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100], synchronous=True)
        self.client.log_text(self.run_id, spec.to_yaml(), "spec.yaml")

    def log_outcome(self, trainer: Trainer, log_model: bool) -> None:
        """Checkpoint (always) and the MLflow model (unless disabled) after training."""
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "state_dict.pt"
            torch.save(trainer.rule.state_dict(), path)
            self.client.log_artifact(self.run_id, str(path), CHECKPOINT_FOLDER)
        if log_model:
            self._log_model(trainer)

    def _log_model(self, trainer: Trainer) -> None:
        import mlflow
        import torch

        model = trainer.inference_model()
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        example = trainer.example_input()  # batch of 2: a batch-1 example would fix the batch size
        try:
            mlflow.pytorch.log_model(
                model, name="model", input_example=example, pip_requirements=requirements
            )
        except Exception as exc:  # noqa: BLE001 - torch.export cannot trace every rule's model
            self.client.set_tag(
                self.run_id, "altlearn.model_format", f"pickle (pt2 export failed: {type(exc).__name__})"
            )
            mlflow.pytorch.log_model(
                model,
                name="model",
                input_example=example,
                pip_requirements=requirements,
                serialization_format="pickle",
            )
