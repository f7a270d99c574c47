"""The end of a sweep: every trial's outcome read back from MLflow (so that a continued sweep's
summary includes the trials finished earlier), per configuration the mean and std of the final
test accuracy, logged to the parent run as metrics and as table artifacts."""

from __future__ import annotations

import csv
import io
import re
import statistics
import time
from dataclasses import dataclass

from altlearn.sweep.adapter import RunOutcome
from altlearn.sweep.configurations import Trial
from altlearn.sweep.record import Plan, SweepRecord, children
from altlearn.tracking.sweep_tags import PRUNED_TAG, SUPERSEDED_TAG

NOT_STARTED = "NOT STARTED"
LATER = "LATER"  # not selected by --case/--seed, and no run of it yet
PRUNED = "PRUNED"  # a search trial its pruner stopped: ended as planned (its run is KILLED)
#: how a trial may end and leave its sweep complete
DONE = ("FINISHED", PRUNED)
MAX_METRIC_NAME = 250


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    status: str  # FINISHED, PRUNED, FAILED, KILLED, RUNNING (its process vanished), NOT STARTED, LATER
    run_id: str | None
    test_accuracy: float | None
    message: str | None
    earlier: bool  # finished by an earlier run of the sweep


@dataclass(frozen=True)
class GroupResult:
    group_key: str
    label: str
    trials: int
    finished: int
    mean: float | None  # of the final test accuracy of its FINISHED trials
    std: float | None  # sample standard deviation (n - 1); None with fewer than 2
    choice: str = ""  # a search's line: the trial it chose (or the best so far) on its objective


def collect(record: SweepRecord, plans: list[Plan], outcomes: dict[int, RunOutcome]) -> list[TrialResult]:
    by_key = children(record)
    return [_result(plan, outcomes.get(plan.trial.index), by_key.get(plan.trial.key, [])) for plan in plans]


def _result(plan: Plan, outcome: RunOutcome | None, runs: list) -> TrialResult:
    finished = [r for r in runs if r.info.status == "FINISHED" or PRUNED_TAG in r.data.tags]
    mine = [r for r in runs if outcome is not None and r.info.run_id == outcome.run_id]
    current = [r for r in runs if SUPERSEDED_TAG not in r.data.tags]
    run = (finished or mine or current or [None])[0]
    # A trial this sweep meant to run but stopped before it began (never handed to a worker, or
    # interrupted before its run opened) has not started: the next run of the sweep starts or
    # resumes it. One left for later, or waiting like this, keeps whatever its old run says
    # (KILLED, FAILED, or RUNNING in a store copied mid-training): it has not failed or been stopped
    # in this run of the sweep.
    never_opened = outcome is not None and outcome.run_id is None and outcome.status == "KILLED"
    waited = plan.action in ("start", "resume") and (outcome is None or never_opened)
    if run is None:
        ran = outcome is not None and not waited  # ended without a run: a set-up failure
        status = LATER if plan.action == "later" else outcome.status if ran and outcome else NOT_STARTED
        message = outcome.message if ran and outcome else None
        return TrialResult(plan.trial, status, None, None, message, False)
    waited = waited and run not in finished  # a late signal after its run finished changes nothing
    message = (
        None if waited else run.data.tags.get("altlearn.error") or (outcome.message if outcome else None)
    )
    status = (
        LATER
        if plan.action == "later"
        else NOT_STARTED
        if waited
        else PRUNED
        if PRUNED_TAG in run.data.tags
        else run.info.status
    )
    return TrialResult(
        plan.trial,
        status,
        run.info.run_id,
        run.data.metrics.get("test_accuracy"),
        _stop_note(run.data.tags) if status == "FINISHED" else message,  # no trouble to tell
        plan.action == "skip",
    )


def _stop_note(tags: dict[str, str]) -> str | None:
    """A FINISHED run's word on its train.stop_when: when it stopped, or that it was never met."""
    return tags.get("altlearn.stopped") or tags.get("altlearn.stop_unmet")


def groups(results: list[TrialResult], choices: dict[str, str] | None = None) -> list[GroupResult]:
    """One line per configuration (a search's trials: one per case); ``choices``, from
    :func:`search_choices`, says what each case's search chose."""
    by_group: dict[str, list[TrialResult]] = {}
    for result in results:
        by_group.setdefault(_group_of(result.trial), []).append(result)
    out = []
    for key, members in by_group.items():
        values = [r.test_accuracy for r in members if r.status == "FINISHED" and r.test_accuracy is not None]
        trial = members[0].trial
        out.append(
            GroupResult(
                key,
                f"{trial.case}, search" if trial.phase == "search" else trial.label,
                len(members),
                sum(r.status in DONE for r in members),
                statistics.fmean(values) if values else None,
                statistics.stdev(values) if len(values) > 1 else None,
                (choices or {}).get(trial.case, "") if trial.phase == "search" else "",
            )
        )
    return out


def search_choices(record: SweepRecord, results: list[TrialResult]) -> dict[str, str]:
    """Per searched case, the trial its search chose on its objective, read back from the store as
    the finals read it (``chose trial 12 (lr 0.0012): val_accuracy 98.12%``; ``best so far`` while trials of
    the search have not finished). Without it a search's line would say only how many ran."""
    from altlearn.sweep.study import chosen, search_trials
    from altlearn.sweep.tuning import values_text

    cases = {r.trial.case: r.trial.search for r in results if r.trial.phase == "search" and r.trial.search}
    out = {}
    for label, case in cases.items():
        settings = case.settings
        trials = search_trials(record.client, record.experiment_id, record.run_id, label, settings)
        best = chosen(trials, settings.direction)
        if best is None or best.value is None:
            continue
        searched = [r for r in results if r.trial.phase == "search" and r.trial.case == label]
        # a failed trial has ended too: the search chose without it, and its finals ran
        ended = all(r.status in (*DONE, "FAILED") for r in searched)
        verb = "chose" if ended else "best so far:"
        value = f"{best.value:.2%}" if "accuracy" in settings.objective else f"{best.value:.4g}"
        values = f" ({values_text(best.params)})" if best.params else ""
        out[label] = f"{verb} trial {best.number}{values}: {settings.objective} {value}"
    return out


def _group_of(trial: Trial) -> str:
    """A search's trials are one line per case (they have no test accuracy); any other trial is
    grouped with the seeds of its configuration."""
    return f"search of {trial.case}" if trial.phase == "search" else trial.group_key


def parent_status(results: list[TrialResult], interrupted: bool) -> str:
    """FINISHED only when every trial of the sweep is; FAILED when a trial failed; else KILLED: it
    was stopped, or some trials have not run (yet) or stopped earlier and wait to be resumed."""
    statuses = {r.status for r in results}
    if interrupted:
        return "KILLED"
    if "FAILED" in statuses or "RUNNING" in statuses:  # RUNNING: a process that vanished
        return "FAILED"
    return "FINISHED" if statuses <= set(DONE) else "KILLED"


def log_summary(record: SweepRecord, results: list[TrialResult], summary: list[GroupResult]) -> None:
    import mlflow.entities

    now = int(time.time() * 1000)
    metrics = []
    names = _metric_names(summary)
    for group in summary:
        values = {
            "test_accuracy_mean": group.mean,
            "test_accuracy_std": group.std,
            "finished": group.finished,
        }
        metrics += [
            mlflow.entities.Metric(f"{names[group.group_key]}/{k}", float(v), now, 0)
            for k, v in values.items()
            if v is not None
        ]
    for status in ("FINISHED", PRUNED, "FAILED", "KILLED", NOT_STARTED, LATER):
        count = sum(r.status == status for r in results)
        metrics.append(mlflow.entities.Metric(f"trials_{status.lower().replace(' ', '_')}", count, now, 0))
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        record.client.log_batch(record.run_id, metrics=metrics[start : start + 1000], synchronous=True)
    record.client.log_text(record.run_id, outcomes_csv(results), "outcomes.csv")
    record.client.log_text(record.run_id, summary_csv(summary), "summary.csv")


def _metric_names(summary: list[GroupResult]) -> dict[str, str]:
    """A configuration's metrics are named by its label where MLflow allows (letters, digits and
    _ - . : / space), else, or if two labels would collide, by its group key."""
    names: dict[str, str] = {}
    for group in summary:
        name = re.sub(r"[^\w.\-:/ ]", "_", group.label.replace("=", ":").replace(", ", " "))
        if len(name) > MAX_METRIC_NAME - 30 or name in names.values():
            name = group.group_key
        names[group.group_key] = name
    return names


def outcomes_csv(results: list[TrialResult]) -> str:
    return _csv(
        [
            "trial",
            "configuration",
            "seed",
            "status",
            "test_accuracy",
            "run_id",
            "trial_key",
            "group_key",
            "message",
        ],
        [
            [
                r.trial.index + 1,  # numbered as the progress lines and --dry-run number it
                r.trial.label,
                r.trial.seed,
                r.status,
                _number(r.test_accuracy),
                r.run_id or "",
                r.trial.key,
                r.trial.group_key,
                (r.message or "").splitlines()[0] if r.message else "",
            ]
            for r in results
        ],
    )


def summary_csv(summary: list[GroupResult]) -> str:
    return _csv(
        ["configuration", "group_key", "trials", "finished", "test_accuracy_mean", "test_accuracy_std"],
        [[g.label, g.group_key, g.trials, g.finished, _number(g.mean), _number(g.std)] for g in summary],
    )


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def end_parent(record: SweepRecord, status: str) -> None:
    record.client.set_terminated(record.run_id, status)
