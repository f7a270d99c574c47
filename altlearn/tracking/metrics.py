"""Per-epoch metrics and alignment measurements, written into the run as they happen."""

from __future__ import annotations

import time

from altlearn.tracking.signals import signals_deferred
from altlearn.tracking.store import store_errors
from altlearn.training.observers import Observer


class MetricsObserver(Observer):
    """Logs each epoch's metrics (step = epoch) and each alignment measurement (step = global
    step). Every write is synchronous, so what a crash leaves in the store is what was trained."""

    def __init__(self, recorder) -> None:
        self.recorder = recorder
        # A resumed run repeats the epochs after its checkpoint that the stopped process had
        # logged already (the same values, as training is repeatable): log those steps once.
        self.logged_epoch = 0
        self.logged_alignment_step = -1

    def on_start(self, trainer) -> None:
        if trainer.epoch:  # resumed
            with store_errors("reading the run's logged metrics"):
                self.logged_epoch = self._last_step("train_loss", default=0)
                keys = [k for k in self._run_metric_keys() if k.startswith("alignment/")]
                self.logged_alignment_step = max((self._last_step(k, default=-1) for k in keys), default=-1)

    def _run_metric_keys(self) -> list[str]:
        return list(self.recorder.client.get_run(self.recorder.run_id).data.metrics)

    def _last_step(self, key: str, default: int) -> int:
        history = self.recorder.client.get_metric_history(self.recorder.run_id, key)
        return max((m.step for m in history), default=default)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if epoch > self.logged_epoch:
            self._log(metrics, epoch, f"logging epoch {epoch}'s metrics")

    def on_alignment(self, trainer, step: int, values: dict[str, float]) -> None:
        if step > self.logged_alignment_step:
            named = {f"alignment/{k}": v for k, v in values.items()}
            self._log(named, step, f"logging the alignment at step {step}")

    def _log(self, values: dict[str, float], step: int, what: str) -> None:
        import mlflow.entities

        now = int(time.time() * 1000)
        batch = [mlflow.entities.Metric(key, float(value), now, step) for key, value in values.items()]
        # Ctrl-C or SIGTERM waits until the write is done: raised inside MLflow's SQLAlchemy
        # session it could leave this process holding the SQLite write lock, and the run's own
        # ending (or a sweep's summary, from another process) would then wait on it for ever.
        with signals_deferred(), store_errors(what):
            self.recorder.client.log_batch(self.recorder.run_id, metrics=batch, synchronous=True)
