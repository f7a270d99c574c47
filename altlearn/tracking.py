"""MLflow: one run per ``altlearn run``, with what a comparison across rules needs.

Logged: the flattened resolved spec as params; rule/dataset/network and package versions as tags;
per-epoch metrics under names shared by all rules; the resolved spec, a state_dict checkpoint and
the trained model as artifacts. A run that raises ends FAILED, Ctrl-C ends KILLED, and whatever was
logged before stays (metrics are written as they happen).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from altlearn.spec import Spec, flatten
from altlearn.train import Observer, Trainer
from altlearn.version import __version__

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value is 6000 characters


def tracking_uri(cli_uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _experiment_id(client, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the database, where `mlflow ui` started in this folder finds them.
        db_path = Path(uri[len("sqlite:///"):]).resolve()
        artifact_location = (db_path.parent / ARTIFACT_FOLDER).as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


class MlflowObserver(Observer):
    """Writes the trainer's epoch metrics and alignment measurements into the active run."""

    def __init__(self, client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        import mlflow.entities

        now = _now_ms()
        batch = [mlflow.entities.Metric(key, float(value), now, epoch) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def on_alignment(self, step: int, values: dict[str, float]) -> None:
        import mlflow.entities

        now = _now_ms()
        batch = [mlflow.entities.Metric(f"alignment/{k}", float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@contextmanager
def mlflow_run(spec: Spec, uri: str) -> Iterator["RunHandle"]:
    """Open a run; end it FINISHED, FAILED (exception) or KILLED (Ctrl-C), keeping what was logged."""
    import mlflow
    from mlflow.tracking import MlflowClient

    # MLflow configures its logger on import; keep its database set-up chatter off the console.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, spec.tracking.experiment, uri)
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=spec.tracking.run_name or spec.name, tags=_tags(spec)
    )
    handle = RunHandle(client, run.info.run_id, run.info.artifact_uri, uri)
    try:
        handle.log_spec(spec)
        yield handle
    except KeyboardInterrupt:
        client.set_tag(handle.run_id, "altlearn.error", "interrupted (Ctrl-C)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        client.set_tag(handle.run_id, "altlearn.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


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

    def observer(self) -> MlflowObserver:
        return MlflowObserver(self.client, self.run_id)

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
            self.client.log_artifact(self.run_id, str(path), "checkpoint")
        if log_model:
            self._log_model(trainer)

    def _log_model(self, trainer: Trainer) -> None:
        import mlflow
        import torch

        model = trainer.inference_model()
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        example = trainer.example_input()  # batch of 2: a batch-1 example would fix the batch size
        try:
            mlflow.pytorch.log_model(model, name="model", input_example=example,
                                     pip_requirements=requirements)
        except Exception as exc:  # noqa: BLE001 - torch.export cannot trace every rule's model
            self.client.set_tag(self.run_id, "altlearn.model_format",
                                f"pickle (pt2 export failed: {type(exc).__name__})")
            mlflow.pytorch.log_model(model, name="model", input_example=example,
                                     pip_requirements=requirements, serialization_format="pickle")
