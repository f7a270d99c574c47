"""An MLflow run's lifecycle: opened when training starts, ended exactly once with its outcome.

``RunRecorder`` is the one place that ends a run. It is the first observer, so it opens the run
before any other observer logs and ends it before anything else runs in ``on_end``. It never uses
MLflow's "active run" (``mlflow.start_run``): MLflow's exit hook ends an active run FINISHED, which
once recorded a crashed 8-of-60-epoch run as finished. A run this process cannot end stays RUNNING,
and the message says so; ``altlearn resume`` continues it once its process is gone.
"""

from __future__ import annotations

import time

from altlearn.errors import TrackingFault
from altlearn.spec.model import Spec
from altlearn.tracking.durable import log_text_durably
from altlearn.tracking.signals import interruption, signals_deferred
from altlearn.tracking.store import describe, experiment_id, patiently, sqlite_path, store_errors
from altlearn.tracking.tags import _tags, owner_tags, spec_params
from altlearn.training.observers import Observer, Outcome, StopRun

ERROR_TAG = "altlearn.error"
CHECKPOINT_EPOCH_TAG = "altlearn.checkpoint_epoch"
STOPPED_TAG = "altlearn.stopped"  # why train.stop_when ended a FINISHED run before train.epochs
STOP_UNMET_TAG = "altlearn.stop_unmet"  # a FINISHED run trained every epoch, its stop_when unmet
CHECKPOINT_TAG = "altlearn.checkpoint"  # "<artifact path> <bytes> <sha256>" of the newest checkpoint
CHECKPOINT_PREVIOUS_TAG = "altlearn.checkpoint_previous"  # the same of the one before, kept as a fallback
END_TAGS = (ERROR_TAG, STOPPED_TAG, STOP_UNMET_TAG)  # how a run ended: cleared when it runs again


class RunRecorder(Observer):
    """Opens (or reopens) the run in ``on_start`` and records its end in ``on_end``."""

    def __init__(self, client, uri: str, spec: Spec, **options) -> None:
        self.client, self.uri, self.spec = client, uri, spec
        self.resume_run_id: str | None = options.get("resume_run_id")
        self.extra_tags: dict[str, str] = dict(options.get("extra_tags") or {})
        if options.get("parent_run_id"):
            self.extra_tags["mlflow.parentRunId"] = options["parent_run_id"]
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.artifact_uri: str | None = None
        self.checkpoint_epoch: int | None = None  # set by CheckpointObserver once recorded
        # the run's checkpoint tags, newest first (CHECKPOINT_TAG, CHECKPOINT_PREVIOUS_TAG)
        self.checkpoint_references: list[str] = []
        self.error_text: str | None = None
        self.stopped: str | None = None  # the outcome's train.stop_when reason, tagged at the end
        self.stop_unmet: str | None = None  # or that the condition was never met, tagged at the end
        self.recorded: str | None = None  # the status the store holds, once written
        self.unrecorded: str | None = None  # why the end could not be written
        self.end_tags: dict[str, str] = {}  # what an observer that stopped the run asked to tag

    # ------------------------------------------------------------------------------ open
    def on_start(self, trainer) -> None:
        # A signal while the run is being opened waits until it is open, then ends it KILLED.
        with signals_deferred(), store_errors("opening the MLflow run"):
            if self.resume_run_id is None:
                self._create()
            else:
                self._reopen()
        if self.resume_run_id is None:
            with store_errors("logging the spec"):
                self._log_spec()
        elif trainer.epoch:
            self.checkpoint_epoch = trainer.epoch  # the run holds the checkpoint it resumed from

    def _create(self) -> None:
        from mlflow.tracking.context.registry import resolve_tags

        # The experiment is created only now: a mistake found during set-up leaves no trace.
        experiment = experiment_id(self.client, self.spec.tracking.experiment, sqlite_path(self.uri))
        tags = resolve_tags({**_tags(self.spec), **self.extra_tags, **owner_tags()})
        run = self.client.create_run(
            experiment, run_name=self.spec.tracking.run_name or self.spec.name, tags=tags
        )
        self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
        self.experiment_id = experiment

    def _reopen(self) -> None:
        import mlflow.entities

        run = self.client.get_run(self.resume_run_id)
        self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
        self.experiment_id = run.info.experiment_id
        held = run.data.tags
        self.checkpoint_references = [
            held[t] for t in (CHECKPOINT_TAG, CHECKPOINT_PREVIOUS_TAG) if held.get(t)
        ]
        self.client.update_run(self.run_id, status="RUNNING")  # params and metrics stay
        tags = [mlflow.entities.RunTag(k, v) for k, v in {**owner_tags(), **self.extra_tags}.items()]
        self.client.log_batch(self.run_id, tags=tags, synchronous=True)
        for stale in END_TAGS:  # how the run ended before is not how it ends now
            if stale in run.data.tags:
                self.client.delete_tag(self.run_id, stale)

    def _log_spec(self) -> None:
        import mlflow.entities

        params = [mlflow.entities.Param(key, value) for key, value in spec_params(self.spec)]
        for start in range(0, len(params), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100], synchronous=True)
        # durable: `altlearn resume` rebuilds the run from it once a checkpoint tag names a file
        assert self.run_id is not None  # on_start created the run just before
        log_text_durably(self.client, self.run_id, self.artifact_uri, self.spec.to_yaml(), "spec.yaml")

    # ------------------------------------------------------------------------------- end
    def on_exception(self, trainer, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt):
            self.error_text = f"interrupted ({interruption(error)})"
        elif isinstance(error, StopRun):  # ended on purpose: the reason, and the tags it asks for
            self.error_text, self.end_tags = str(error)[:5000], dict(error.tags)
        else:
            self.error_text = f"{type(error).__name__}: {error}"[:5000]

    def on_end(self, trainer, outcome: Outcome) -> None:
        if self.run_id is None:
            return  # never opened: nothing to end
        status = outcome.status
        if status == "FINISHED" and self.checkpoint_epoch != outcome.epoch:
            # A FINISHED run always holds its final checkpoint: comparisons rely on it.
            status = "FAILED"
            self.error_text = f"the final checkpoint (epoch {outcome.epoch}) was not recorded"
        self.stopped = outcome.stopped if status == "FINISHED" else None
        self.stop_unmet = outcome.unmet if status == "FINISHED" else None
        # A Ctrl-C now must not cut the ending short; the ending it would ask for is under way.
        with signals_deferred(drop=True):
            try:
                patiently(lambda: self._write_end(status), f"recording the run's end ({status})")
                self.recorded = status
            except TrackingFault as fault:
                self.unrecorded = (
                    f"the run's end ({status}) could not be written to the store ({describe(fault.cause)}); "
                    "it stays RUNNING there"
                )

    def _write_end(self, status: str) -> None:
        if self.error_text is not None:
            self.client.set_tag(self.run_id, ERROR_TAG, self.error_text)
        for key, value in self.end_tags.items():
            self.client.set_tag(self.run_id, key, value)
        if self.stopped is not None:
            self.client.set_tag(self.run_id, STOPPED_TAG, self.stopped)
        if self.stop_unmet is not None:
            self.client.set_tag(self.run_id, STOP_UNMET_TAG, self.stop_unmet)
        self.client.set_terminated(self.run_id, status, end_time=int(time.time() * 1000))
