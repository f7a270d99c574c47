"""Which runs a comparison reads, straight from the tracking store.

Three ways to choose: a sweep's trials (the children of its parent run), an experiment's runs
(optionally narrowed by an MLflow search filter), or run ids. Each run comes with its params, its tags
and the metric curves the statistics and figures need, so nothing later talks to MLflow again.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from altlearn.compare.search_file import SearchPlan, parse_plan, read_sweep_text
from altlearn.errors import CompareError
from altlearn.tracking.sweep_tags import PHASE_TAG, SUPERSEDED_TAG, SWEEP_TEXT_TAG

# The per-epoch metrics the table and figures read (names as altlearn's tracking logs them).
# epoch_cpu_seconds: an epoch's process CPU time (older runs lack it; a search's cost and the
# leaderboard prefer it to wall time)
CURVE_METRICS = ("test_accuracy", "val_accuracy", "epoch_seconds", "samples_per_second", "epoch_cpu_seconds")
# Alignment angles: today's `alignment/angle_layer1`, and the `alignment/<layer>/angle` form.
ALIGNMENT_ANGLE = (
    re.compile(r"^alignment/angle_(?P<layer>.+)$"),
    re.compile(r"^alignment/(?P<layer>.+)/angle$"),
)
SWEEP_KIND_TAG = "altlearn.kind"

PARENT_TAG = "mlflow.parentRunId"
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_RESULTS = 1000  # one page of MLflow's search; more pages are fetched as needed

Curve = list[tuple[int, float]]  # (step, value), sorted by step


@dataclass
class RunData:
    run_id: str
    name: str
    status: str  # FINISHED, RUNNING, FAILED, KILLED, SCHEDULED
    params: dict[str, str]
    tags: dict[str, str]
    curves: dict[str, Curve] = field(default_factory=dict)
    start_time: int = 0  # milliseconds since the epoch, as MLflow keeps it

    @property
    def seed(self) -> str:
        return self.params.get("seed", "?")

    @property
    def rule(self) -> str:
        return self.params.get("rule.type") or self.tags.get("altlearn.rule") or "?"

    def final(self, key: str) -> float | None:
        """The metric's value at its last step (the last epoch for per-epoch metrics)."""
        curve = self.curves.get(key)
        return curve[-1][1] if curve else None

    def alignment_curves(self) -> dict[str, Curve]:
        """Layer name -> angle curve (degrees over training steps)."""
        found = {}
        for key, curve in self.curves.items():
            for pattern in ALIGNMENT_ANGLE:
                match = pattern.match(key)
                if match:
                    found[match["layer"]] = curve
                    break
        return found

    def alignment_over_training(self) -> bool:
        """Whether alignment was measured at least twice: a run shorter than
        ``tracking.alignment_every`` steps measured it once, at step 0, before any update, which
        shows the random start (about 90 degrees for a feedback rule), not what training did."""
        return any(len(curve) >= 2 for curve in self.alignment_curves().values())


@dataclass
class Selection:
    description: str  # what was chosen, e.g. "the 18 trials of sweep 'mnist-rules' (run 3f2a...)"
    runs: list[RunData]
    sweep_run_id: str | None = None
    notes: list[str] = field(default_factory=list)  # runs left out of the selection itself, and why
    plan: SearchPlan | None = None  # a search sweep's settings, from the sweep file on its parent
    sweep_name: str | None = None


def open_store(uri: str):
    """An MlflowClient for ``uri``; a missing SQLite file is an error, not a new empty store."""
    from altlearn.errors import TrackingUnavailable
    from altlearn.tracking import connect

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise CompareError(
            f"there is no MLflow database {Path(uri[len('sqlite:///') :]).absolute()}: give the "
            "--tracking-uri the runs were logged to (the default is mlflow.db in the current folder)"
        )
    try:
        client, _ = connect(uri, reading=True)
    except TrackingUnavailable as exc:
        raise CompareError(str(exc)) from None
    return client


def select_sweep(
    client, sweep_run_id: str, filter_string: str | None = None, extra: tuple[str, ...] = ()
) -> Selection:
    """The trials of a sweep: every run whose MLflow parent is ``sweep_run_id``. ``extra``: metric
    curves to read besides the table's (a --select-by metric); a search's objective is read too."""
    parent = _get_run(client, sweep_run_id, "--sweep")
    children = _children(client, parent, filter_string)
    name = parent.data.tags.get("altlearn.sweep_name") or parent.info.run_name or sweep_run_id
    if not children:
        _no_trials(parent, name, filter_string)
    # A run the sweep replaced (its trial started again) or dropped (its trial left the file) is
    # not one of its trials any more.
    superseded = [run for run in children if SUPERSEDED_TAG in run.data.tags]
    current = [run for run in children if SUPERSEDED_TAG not in run.data.tags]
    plan = None
    if any(PHASE_TAG in run.data.tags for run in current):
        # The file as a tag first: a store kept without its artifacts still has it.
        text = parent.data.tags.get(SWEEP_TEXT_TAG) or read_sweep_text(client, sweep_run_id)
        plan = parse_plan(text) if text else None
        extra = (*extra, plan.objective if plan else "val_accuracy")
    runs = [_load(client, run, extra) for run in current]
    if not runs:
        raise CompareError(
            f"sweep {name!r} (run {sweep_run_id}) has no trials that count: every run is superseded"
        )
    description = f"the {_count(runs, 'trial')} of sweep {name!r} (run {sweep_run_id})"
    notes = []
    if superseded:
        notes.append(
            f"{_count(superseded, 'run')} of the sweep left out: tagged {SUPERSEDED_TAG} (started "
            "again in a new run, or its trial left the sweep file): "
            + ", ".join(run.info.run_id[:8] for run in superseded[:5])
            + (" ..." if len(superseded) > 5 else "")
        )
    return Selection(description, runs, sweep_run_id, notes, plan, name)


def _children(client, parent, filter_string: str | None) -> list:
    query = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    if filter_string:
        query += f" and {filter_string}"
    children = search_runs(client, [parent.info.experiment_id], query, filter_string)
    if not children:  # trials logged to other experiments than their parent
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
        children = search_runs(client, experiment_ids, query, filter_string)
    return children


def _no_trials(parent, name: str, filter_string: str | None) -> None:
    sweep_run_id = parent.info.run_id
    if filter_string:
        raise CompareError(f"no trial of sweep {name!r} ({sweep_run_id}) matches --filter {filter_string!r}")
    if parent.data.tags.get(SWEEP_KIND_TAG) == "sweep":
        raise CompareError(
            f"sweep {name!r} (run {sweep_run_id}) has no trials yet: they appear as child runs "
            "once `altlearn sweep` starts them"
        )
    raise CompareError(
        f"run {sweep_run_id} has no child runs, so it is not a sweep's parent: give the run id "
        "`altlearn sweep` printed, or compare runs by id or with --experiment"
    )


def select_experiment(
    client, name: str, filter_string: str | None = None, extra: tuple[str, ...] = ()
) -> Selection:
    """The experiment's active runs (narrowed by ``filter_string``); sweep parents are left out."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = ", ".join(repr(e.name) for e in client.search_experiments()) or "none"
        raise CompareError(f"no experiment {name!r} in this tracking store; its experiments: {known}")
    found = search_runs(client, [experiment.experiment_id], filter_string or "", filter_string)
    notes, runs = [], []
    for run in found:
        if run.data.tags.get(SWEEP_KIND_TAG) == "sweep":
            # A sweep's parent holds no training of its own; its trials are in the experiment.
            notes.append(
                f"left out run {run.info.run_id} ({run.info.run_name}): the parent of a sweep, not a "
                f"training run (compare its trials alone with --sweep {run.info.run_id})"
            )
        else:
            runs.append(_load(client, run, extra))
    if not runs:
        narrowed = f" matching --filter {filter_string!r}" if filter_string else ""
        raise CompareError(f"no runs in experiment {name!r}{narrowed}")
    description = f"the {_count(runs, 'run')} of experiment {name!r}"
    return Selection(description + (f" where {filter_string}" if filter_string else ""), runs, notes=notes)


def select_run_ids(client, run_ids: list[str], extra: tuple[str, ...] = ()) -> Selection:
    unique = list(dict.fromkeys(run_ids))  # a run named twice counts once
    runs = []
    for run_id in unique:
        run = _get_run(client, run_id, "RUN_ID")
        if run.data.tags.get(SWEEP_KIND_TAG) == "sweep":
            raise CompareError(
                f"run {run_id} is the parent of a sweep, not a training run: compare its trials "
                f"with --sweep {run_id}"
            )
        runs.append(_load(client, run, extra))
    return Selection(f"the {_count(runs, 'run')} given by id", runs)


def _count(runs: list, noun: str) -> str:
    return f"{len(runs)} {noun}{'s' if len(runs) != 1 else ''}"


def _get_run(client, run_id: str, option: str):
    from mlflow.exceptions import MlflowException

    if not RUN_ID.fullmatch(run_id):
        raise CompareError(f"{option} {run_id!r} is not a run id (32 hex digits, as `mlflow ui` shows)")
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise CompareError(
            f"no run {run_id!r} in this tracking store (check the id and --tracking-uri)"
        ) from None
    if run.info.lifecycle_stage != "active":
        raise CompareError(f"run {run_id} is deleted; restore it in the MLflow UI first")
    return run


def search_runs(client, experiment_ids: list[str], query: str, user_filter: str | None) -> list:
    from mlflow.exceptions import MlflowException

    runs, token = [], None
    while True:
        try:
            page = client.search_runs(experiment_ids, query, max_results=MAX_RESULTS, page_token=token)
        except MlflowException as exc:
            message = str(exc).strip().splitlines()[0][:300]
            raise CompareError(
                f"--filter {user_filter!r} is not a valid MLflow search ({message}); for example: "
                "--filter \"params.`rule.type` = 'dfa' and metrics.test_accuracy > 0.9\""
            ) from None
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _load(client, run, extra: tuple[str, ...] = ()) -> RunData:
    data = RunData(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        start_time=run.info.start_time or 0,
    )
    for key in run.data.metrics:
        if key in CURVE_METRICS or key in extra or any(p.match(key) for p in ALIGNMENT_ANGLE):
            data.curves[key] = _history(client, run.info.run_id, key)
    return data


def _history(client, run_id: str, key: str) -> Curve:
    # One value per step: a step logged twice (e.g. around a resume) keeps its latest value.
    by_step: dict[int, tuple[int, float]] = {}
    for metric in client.get_metric_history(run_id, key):
        if metric.step not in by_step or metric.timestamp >= by_step[metric.step][0]:
            by_step[metric.step] = (metric.timestamp, metric.value)
    return [(step, _unclamped(value)) for step, (_, value) in sorted(by_step.items())]


def _unclamped(value: float) -> float:
    """MLflow's SQL stores keep an inf as the largest float: read it back as the inf it was."""
    if abs(value) == sys.float_info.max:
        return math.copysign(math.inf, value)
    return value
