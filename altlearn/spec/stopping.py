"""``train.stop_when``: end training before ``train.epochs`` once an epoch metric crosses a bound.

Any metric the run logs per epoch can be named: ``train_loss``, ``train_accuracy``, ``val_*`` and
``test_*``, a rule's own metrics and ``grad_norm`` under the names they are logged as.

The condition is read after every epoch's evaluation, on the mean of the metric over the epochs so
far, smoothed by ``train.stop_smoothing`` (``m = s * m + (1 - s) * value``, started at the first
epoch's value; 0 reads each epoch's own value). Nøkland's DFA code, for one, trains until its
smoothed training error reaches 0.01 % (``train_accuracy >= 0.9999`` with smoothing 0.75).

The mean is recomputed from the trainer's history, which checkpoints keep, so a resumed run stops
where an uninterrupted one would.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from altlearn.errors import StopMetricMissing

_CONDITION = re.compile(r"^\s*(?P<metric>[A-Za-z][\w/.-]*)\s*(?P<op>>=|<=)\s*(?P<bound>\S+)\s*$")
FORM = "'<epoch metric> >= <number>' or '<epoch metric> <= <number>', e.g. 'train_accuracy >= 0.9999'"


@dataclass(frozen=True)
class StopCondition:
    metric: str
    op: str  # ">=" or "<="
    bound: float

    @classmethod
    def parse(cls, text: str) -> StopCondition:
        match = _CONDITION.match(text)
        if match is None:
            if re.fullmatch(r"\s*[A-Za-z][\w/.-]*\s*", text):  # `-s x=metric>=0.9` unquoted: '>' redirected
                raise ValueError(
                    f"expected {FORM}; on a command line, quote it: -s 'train.stop_when={text.strip()} >= ...'"
                )
            raise ValueError(f"expected {FORM}")
        metric, op, bound_text = match["metric"], match["op"], match["bound"]
        try:
            bound = float(bound_text)
        except ValueError:
            raise ValueError(f"the bound {bound_text!r} is not a number; expected {FORM}") from None
        if not math.isfinite(bound):
            raise ValueError("the bound must be a finite number")
        if metric.endswith("accuracy") and not 0 <= bound <= 1:
            raise ValueError(f"an accuracy is a fraction from 0 to 1 (0.9999 for 99.99 %), not {bound_text}")
        return cls(metric, op, bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound!r}"

    def met_by(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound  # nan meets neither


def smoothed(history: list[dict[str, float]], metric: str, smoothing: float) -> float:
    """The metric's exponential mean over the epochs of ``history`` (oldest first)."""
    mean = history[0][metric]
    for metrics in history[1:]:
        mean = smoothing * mean + (1 - smoothing) * metrics[metric]
    return mean


#: what train.clip_grad_norm logs per epoch (the loop in altlearn.training.trainer)
CLIP_METRIC_NAMES = ("grad_norm", "clipped_fraction")


def every_runs_metrics(validation: bool, clipping: bool) -> list[str]:
    """The epoch metrics altlearn logs for every rule (a rule may log more under its own names)."""
    names = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "epoch_seconds"]
    names += ["epoch_cpu_seconds", "samples_per_second"]
    names += ["val_loss", "val_accuracy"] if validation else []
    return names + (list(CLIP_METRIC_NAMES) if clipping else [])


def unlikely_metric(condition: StopCondition, validation: bool, clipping: bool) -> str | None:
    """Why the condition's metric is probably a mistake, seen before any training: a clipping
    metric without clipping, or a near miss of a name every run logs. Any other name may be a
    rule's own metric, which only its first epoch shows."""
    metric, known = condition.metric, every_runs_metrics(validation, clipping)
    if metric in known:
        return None
    if metric in CLIP_METRIC_NAMES:
        return f"{metric} is logged only with train.clip_grad_norm"
    # A near miss, a wrong case, or a shortened name (train_acc, val_acc: no built-in rule's metric
    # is the start of a name logged for every rule).
    lower = metric.lower()
    close = difflib.get_close_matches(metric, known, n=1, cutoff=0.8)
    close += [name for name in known if lower == name or ("_" in lower and name.startswith(lower))]
    if close:
        return f"{metric!r} is not a metric altlearn logs: did you mean {close[0]!r}?"
    return None


def check_logged(condition: StopCondition, metrics: dict[str, float]) -> None:
    """Raise :class:`StopMetricMissing` if an epoch's ``metrics`` lack the condition's metric."""
    if condition.metric not in metrics:
        from altlearn.text import did_you_mean

        logged = sorted(metrics)
        raise StopMetricMissing(
            f"train.stop_when names {condition.metric!r}, which this run does not log; "
            f"{did_you_mean(condition.metric, logged)}its epoch metrics: {', '.join(logged)}"
        )


def stop_reason(condition: StopCondition, smoothing: float, history: list[dict[str, float]]) -> str | None:
    """Why training ends after the last epoch of ``history``, or None to go on (also when the
    metric is not logged: :func:`check_logged` says so)."""
    if not history or condition.metric not in history[-1]:
        return None
    value = smoothed(history, condition.metric, smoothing)
    if not condition.met_by(value):
        return None
    return (
        f"{_named(condition, smoothing)} is {value:.6g}, {condition.op} {condition.bound:g} (train.stop_when)"
    )


def unmet(condition: StopCondition, smoothing: float, history: list[dict[str, float]]) -> str | None:
    """That a run trained every epoch without meeting the condition, with where the metric ended
    (None if it was met, at the last epoch)."""
    if condition.metric not in history[-1]:
        return None
    value = smoothed(history, condition.metric, smoothing)
    if condition.met_by(value):
        return None
    return (
        f"train.stop_when ({condition}) not met in {len(history)} epochs: "
        f"{_named(condition, smoothing)} ended at {value:.6g}"
    )


def _named(condition: StopCondition, smoothing: float) -> str:
    return f"{condition.metric} smoothed over epochs ({smoothing:g})" if smoothing else condition.metric
