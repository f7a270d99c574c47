"""The sweep's MLflow record: its parent run, what an earlier run of the same sweep left behind
(so that running it again continues it), and the summary the parent logs at the end.

Tags (shared with altlearn.compare): the parent has altlearn.kind=sweep and altlearn.sweep_name;
every trial has mlflow.parentRunId, altlearn.kind=trial, altlearn.sweep (the parent's run id),
altlearn.trial_key, altlearn.group_key and altlearn.group (the configuration's label).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from altlearn.components.values import MAX_TAG_VALUE
from altlearn.errors import SweepUsageError
from altlearn.sweep.configurations import Trial
from altlearn.sweep.sweep_file import SweepFile
from altlearn.tracking.sweep_tags import PHASE_TAG, PRUNED_TAG, SUPERSEDED_TAG, SWEEP_TEXT_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class Plan:
    trial: Trial
    action: str  # "skip" (finished before), "resume" (from its checkpoint), "start" or "later"
    # ("later": not selected by --case/--seed this time)
    run_id: str | None = None  # the run skipped or resumed
    checkpoint_gone: bool = False  # "start" again although it had a checkpoint: the file is gone


@dataclass
class SweepRecord:
    client: MlflowClient
    uri: str
    experiment_id: str
    run_id: str
    continued: bool
    # Trials of an earlier run of the sweep that the file no longer makes and that never finished
    # (a configuration fixed after it failed): their labels; their runs are tagged superseded.
    dropped: tuple[str, ...] = ()


def trial_tags(record: SweepRecord, trial: Trial) -> dict[str, str]:
    return {
        "altlearn.kind": "trial",
        "altlearn.sweep": record.run_id,
        "altlearn.trial_key": trial.key,
        "altlearn.group_key": trial.group_key,
        "altlearn.group": trial.label[:5000],
    }


def open_sweep(uri: str, sweep: SweepFile, trials: list[Trial], fresh: bool) -> SweepRecord:
    """The parent run: the newest one of this sweep in its experiment (reopened), or a new one.

    The store and the experiment are created here, once, before any worker starts: trials that
    open their runs at the same moment then only ever write rows, never create a schema. Whether
    the sweep is running already is checked and its driver tag written under one lock, so two
    commands started at once on this machine cannot both pass the check."""
    from filelock import FileLock

    experiment = trials[0].spec.tracking.experiment
    with FileLock(_driver_lock(uri, experiment, sweep.name)):
        return _open(uri, sweep, trials, fresh, experiment)


def _driver_lock(uri: str, experiment: str, name: str) -> str:
    """A lock file per (store, experiment, sweep name) in the temporary folder: the running check
    reads this machine's processes, so a lock on this machine is the one that matters."""
    import tempfile

    digest = hashlib.sha256(f"{uri}\0{experiment}\0{name}".encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"altlearn-sweep-{digest}.lock")


def _open(uri: str, sweep: SweepFile, trials: list[Trial], fresh: bool, experiment: str) -> SweepRecord:
    from altlearn.tracking.store import connect

    client, experiment_id = connect(uri, experiment)
    trial_set = hashlib.sha256(" ".join(sorted(t.key for t in trials)).encode()).hexdigest()[:12]
    previous = None if fresh else _previous_parent(client, experiment_id, sweep.name)
    if previous is not None:
        record = SweepRecord(client, uri, experiment_id, previous.info.run_id, continued=True)
        record.dropped = _drop_unfinished(
            record, _left_behind(previous, sweep, experiment, children(record), {t.key for t in trials})
        )
        client.update_run(record.run_id, status="RUNNING")
        client.set_tag(record.run_id, "altlearn.sweep_trials", trial_set)  # it may have grown
        client.set_tag(record.run_id, "altlearn.sweep_driver", _driver())
        _log_description(record, sweep, trials)
        return record
    tags = {
        "altlearn.kind": "sweep",
        "altlearn.sweep_name": sweep.name,
        "altlearn.sweep_trials": trial_set,
        "altlearn.sweep_driver": _driver(),
        "mlflow.source.name": str(sweep.path),
        "mlflow.source.type": "LOCAL",
    }
    if sweep.description:
        tags["mlflow.note.content"] = sweep.description
    run = client.create_run(experiment_id, run_name=sweep.name, tags=tags)
    record = SweepRecord(client, uri, experiment_id, run.info.run_id, continued=False)
    _log_description(record, sweep, trials)
    return record


def _previous_parent(client, experiment_id: str, name: str):
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`altlearn.kind` = 'sweep' and tags.`altlearn.sweep_name` = '{_quoted(name)}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _left_behind(
    previous, sweep: SweepFile, experiment: str, recorded: dict[str, list], keys: set[str]
) -> list:
    """A sweep continues with the same trials or more (another seed, case or grid value: only the
    new ones run). A trial it has already FINISHED that the file no longer makes would mix two
    different sweeps in one record, so that is refused; the runs of trials that never finished
    (a configuration edited after it failed or was stopped) are returned, to leave the sweep."""
    run_id, tags = previous.info.run_id, previous.data.tags
    host, _, pid = tags.get("altlearn.sweep_driver", "").rpartition(":")
    if previous.info.status == "RUNNING" and host == socket.gethostname() and _alive(pid):
        raise SweepUsageError(
            f"sweep {sweep.name!r} (run {run_id}) is running now in process {pid} on this machine; "
            "wait for it, or stop it (Ctrl-C) and run this again to continue it"
        )
    gone = {key: runs for key, runs in recorded.items() if key and key not in keys}  # "": no trial's
    # A search's finals leave when its budget grew: its choice is made anew, and they no longer count.
    finished = [
        key
        for key, runs in gone.items()
        if any(r.info.status == "FINISHED" and r.data.tags.get(PHASE_TAG) != "final" for r in runs)
    ]
    if finished:
        raise SweepUsageError(
            f"sweep {sweep.name!r} in experiment {experiment!r} is run {run_id}, which has "
            f"{len(finished)} finished trial(s) that the file no longer makes (the file or a spec it "
            "uses changed); a sweep may only grow. To keep that sweep, give this one another name; "
            "to run this one as a new sweep run, add --fresh"
        )
    return [run for runs in gone.values() for run in runs if SUPERSEDED_TAG not in run.data.tags]


def _drop_unfinished(record: SweepRecord, runs: list) -> tuple[str, ...]:
    """Tag the runs of trials that left the sweep superseded (a run still RUNNING is one whose
    process is gone, as for the trials plan_trials starts again: it ends KILLED); their labels."""
    for run in runs:
        record.client.set_tag(run.info.run_id, SUPERSEDED_TAG, "true")
        if run.info.status == "RUNNING":
            record.client.set_terminated(run.info.run_id, "KILLED")
    labels = {(run.data.tags.get("altlearn.group", "?"), run.data.params.get("seed", "?")) for run in runs}
    return tuple(f"{label} seed {seed}" for label, seed in sorted(labels))


def _alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _driver() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _log_description(record: SweepRecord, sweep: SweepFile, trials: list[Trial]) -> None:
    """The sweep's size as tags (not params: a continued sweep may have grown), the file as written
    and the listing of its trials, all rewritten whenever the sweep is opened."""
    counts = {
        "altlearn.n_trials": len(trials),
        "altlearn.n_configurations": len({t.group_key for t in trials}),
        "altlearn.n_seeds": len({t.seed for t in trials}),
        "altlearn.sweep_file": str(sweep.path),
    }
    for key, value in counts.items():
        record.client.set_tag(record.run_id, key, str(value))
    record.client.log_text(record.run_id, sweep.text, "sweep.yaml")
    if len(sweep.text) <= MAX_TAG_VALUE:
        record.client.set_tag(record.run_id, SWEEP_TEXT_TAG, sweep.text)
    listing = [
        {
            "index": t.index,
            "trial_key": t.key,
            "group_key": t.group_key,
            "configuration": t.label,
            "seed": t.seed,
        }
        for t in trials
    ]
    record.client.log_text(record.run_id, yaml.safe_dump(listing, sort_keys=False), "trials.yaml")


def children(record: SweepRecord) -> dict[str, list[Run]]:
    """The sweep's child runs by trial key, newest first."""
    from altlearn.tracking.store import all_runs

    runs: list[Run] = all_runs(
        record.client,
        [record.experiment_id],
        f"tags.`altlearn.sweep` = '{record.run_id}'",
        order_by=["attributes.start_time DESC"],
    )
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.data.tags.get("altlearn.trial_key", ""), []).append(run)
    return by_key


def _done(run) -> bool:
    """A trial that needs no more training: FINISHED, or pruned by its search (never resumed)."""
    return run.info.status == "FINISHED" or PRUNED_TAG in run.data.tags


def plan_trials(record: SweepRecord, trials: list[Trial], selected: set[int] | None = None) -> list[Plan]:
    """Continue where an earlier run of the sweep stopped: a trial FINISHED before is skipped, an
    unfinished one with a checkpoint is resumed in its own run, the others start (a run that
    never reached a checkpoint, or whose checkpoint file is gone, gets the tag
    altlearn.superseded: a new run replaces it). An unfinished trial outside ``selected`` (when
    given) waits for a later run of the sweep, its runs untouched."""
    existing = children(record) if record.continued else {}
    plans = []
    for trial in trials:
        runs = existing.get(trial.key, [])
        finished = [r for r in runs if _done(r)]
        checkpointed = bool(runs) and "altlearn.checkpoint_epoch" in runs[0].data.tags
        if finished:
            plans.append(Plan(trial, "skip", finished[0].info.run_id))
        elif selected is not None and trial.index not in selected:
            plans.append(Plan(trial, "later"))
        elif checkpointed and _checkpoint_present(record, runs[0]):
            if SUPERSEDED_TAG in runs[0].data.tags:  # it left the sweep once, and is back in the file
                record.client.delete_tag(runs[0].info.run_id, SUPERSEDED_TAG)
            plans.append(Plan(trial, "resume", runs[0].info.run_id))
        else:
            for run in runs:
                record.client.set_tag(run.info.run_id, SUPERSEDED_TAG, "true")
            plans.append(Plan(trial, "start", checkpoint_gone=checkpointed))
    return plans


def _checkpoint_present(record: SweepRecord, run) -> bool:
    """Whether the checkpoint a run's tag names is still in its artifact store, at its size: a store
    copied to another machine without its artifacts folder, or a deleted folder, would otherwise
    make the trial fail to resume on every later run of the sweep."""
    from altlearn.tracking.recorder import CHECKPOINT_TAG

    reference = run.data.tags.get(CHECKPOINT_TAG, "").split()
    if len(reference) != 3 or not reference[1].isdigit():  # not ours to judge: the resume checks it
        return True
    path, size = reference[0], int(reference[1])
    try:
        listed = record.client.list_artifacts(run.info.run_id, path.rpartition("/")[0] or None)
    except Exception:  # noqa: BLE001 - unreachable is not gone: let the resume try and say why
        return True
    return any(f.path == path and f.file_size == size for f in listed)


def mark_lost(record: SweepRecord, trial: Trial, message: str, status: str = "FAILED") -> str | None:
    """A trial whose process died cannot end its own run: end it here, with the reason."""
    from altlearn.tracking.recorder import END_TAGS

    runs = [r for r in children(record).get(trial.key, []) if r.info.status == "RUNNING"]
    for run in runs:
        for told in END_TAGS:  # how it ended, written just before the end that never came
            if told in run.data.tags:
                record.client.delete_tag(run.info.run_id, told)
        record.client.set_tag(run.info.run_id, "altlearn.error", message[:5000])
        record.client.set_terminated(run.info.run_id, status)
    return runs[0].info.run_id if runs else None
