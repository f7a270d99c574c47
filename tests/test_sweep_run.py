"""Real local sweeps on digits: two spawned workers, a failing trial, a worker killed outright,
and a sweep stopped with Ctrl-C and continued; the MLflow parent/child structure read back."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from sweep_helpers import (
    DIVERGING,
    read_until_training,
    start_sweep,
    store,
    sweep_runs,
    training_worker_pid,
    worker_pids,
    write_sweep,
)

from altlearn.cli.commands import main

pytestmark = pytest.mark.slow


def artifact_csv(client, run_id: str, name: str, folder) -> list[dict]:
    path = client.download_artifacts(run_id, name, str(folder))
    return list(csv.DictReader(io.StringIO(open(path).read())))


def test_local_sweep_with_a_failing_trial_records_parent_children_and_summary(tmp_path):
    sweep = {
        "name": "local",
        "cases": [{"label": "bp", "rule.type": "bp"}, {"label": "dfa", "rule": {"type": "dfa"}}, DIVERGING],
        "seeds": [0, 1],
    }
    path = write_sweep(tmp_path, sweep)
    uri = store(tmp_path)
    result = CliRunner().invoke(main, ["sweep", str(path), "--workers", "2", "--tracking-uri", uri])
    assert result.exit_code == 1, result.output  # a trial failed; the others went on
    parent, children = sweep_runs(uri)
    assert parent.info.status == "FAILED"
    assert (
        parent.data.tags["altlearn.n_trials"] == "6" and parent.data.tags["altlearn.n_configurations"] == "3"
    )
    assert len(children) == 6
    for child in children:
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id == tags["altlearn.sweep"]
        assert tags["altlearn.kind"] == "trial" and len(tags["altlearn.trial_key"]) == 12
    by_group = {}
    for child in children:
        by_group.setdefault(child.data.tags["altlearn.group"], []).append(child)
    assert sorted(by_group) == ["bp", "dfa", "diverges"]
    assert {c.info.status for c in by_group["bp"] + by_group["dfa"]} == {"FINISHED"}
    assert {c.info.status for c in by_group["diverges"]} == {"FAILED"}
    assert "lower optimizer.lr" in by_group["diverges"][0].data.tags["altlearn.error"]
    assert {c.data.params["seed"] for c in by_group["bp"]} == {"0", "1"}
    assert len({c.data.tags["altlearn.group_key"] for c in by_group["bp"]}) == 1
    # the parent's summary: mean and std over seeds of each configuration's final test accuracy
    accuracies = [c.data.metrics["test_accuracy"] for c in by_group["bp"]]
    assert parent.data.metrics["bp/test_accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert parent.data.metrics["bp/test_accuracy_std"] == pytest.approx(
        abs(accuracies[0] - accuracies[1]) / 2**0.5
    )
    assert parent.data.metrics["trials_failed"] == 2 and parent.data.metrics["trials_finished"] == 4
    client = MlflowClient(uri)
    rows = artifact_csv(client, parent.info.run_id, "outcomes.csv", tmp_path)
    assert [r["status"] for r in rows].count("FAILED") == 2
    assert all(r["message"] for r in rows if r["status"] == "FAILED")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "sweep.yaml",
        "trials.yaml",
        "summary.csv",
    }
    assert "diverges" in result.output and "FAILED" in result.output


def test_workers_killed_outright_cost_only_their_own_trials(tmp_path):
    sweep = {
        "name": "crash",
        # Long enough that no trial can finish between "it is training" and its kill, even when
        # one worker starts seconds after the other on a loaded machine; an event every epoch, so
        # a kill may well land while the worker is writing one to the sweep.
        "set": {"train.epochs": 200, "data.train_subset": None},
        "cases": [{"rule.type": "bp"}, {"rule.type": "fa"}, {"rule.type": "dfa"}],
    }
    path = write_sweep(tmp_path, sweep)
    process = start_sweep([str(path), "--workers", "2", "--tracking-uri", store(tmp_path)], tmp_path)
    killed: list[int] = []
    try:
        lines = read_until_training(process, trials=2, total=3)  # both trials have their runs open
        killed.append(_kill_a_training_worker(process, store(tmp_path), killed))
        # The third trial trains on the dead worker's replacement: the other workers' channels and
        # the sweep's bookkeeping survived the kill. Then a second kill, while trials are running.
        read_until_training(process, trials=3, total=3, seen=lines)
        killed.append(_kill_a_training_worker(process, store(tmp_path), killed))
        output = process.communicate(timeout=300)[0]
    finally:
        process.kill()
    assert process.returncode == 1, output
    # the closing summary: one line per failed trial
    assert len(re.findall(r"^trial \d .*: its worker process died \(killed by SIGKILL", output, re.M)) == 2, (
        output
    )
    parent, children = sweep_runs(store(tmp_path))
    assert sorted(c.info.status for c in children) == ["FAILED", "FAILED", "FINISHED"]
    lost = [c for c in children if c.info.status == "FAILED"]
    assert all("worker process died" in c.data.tags["altlearn.error"] for c in lost)
    assert parent.info.status == "FAILED"


def _kill_a_training_worker(process, uri: str, already: list[int]) -> int:
    """SIGKILL the worker of a trial that is training now (a worker between trials would cost
    nothing), one not killed before."""
    victim = training_worker_pid(uri, excluding=already)
    assert victim in worker_pids(process.pid)
    os.kill(victim, signal.SIGKILL)
    return victim


def test_ctrl_c_stops_the_sweep_and_running_it_again_continues_it(tmp_path):
    sweep = {
        "name": "stop-and-go",
        # a checkpoint every epoch; enough epochs (about 10 s a trial) that both first trials are
        # still running when the signal comes, even when one worker started seconds before the other
        "set": {"train.epochs": 200, "tracking.checkpoint_minutes": 0, "data.train_subset": None},
        "cases": [{"rule.type": "bp"}, {"rule.type": "fa"}],
        "seeds": [0, 1],
    }
    path = write_sweep(tmp_path, sweep)
    args = [str(path), "--workers", "2", "--tracking-uri", store(tmp_path)]
    process = start_sweep(args, tmp_path)
    try:
        lines = read_until_training(process, trials=2, total=4)
        process.send_signal(signal.SIGINT)
        output = "".join(lines) + process.communicate(timeout=300)[0]
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "Continue it" in output
    # the same command, workers included: a search continued on other workers would draw otherwise
    assert f"altlearn sweep {path} --workers 2 --tracking-uri {store(tmp_path)}" in output
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "KILLED"
    stopped = {c.info.run_id: c for c in children if c.info.status == "KILLED"}
    finished = [c for c in children if c.info.status == "FINISHED"]  # none, unless a trial outran the signal
    assert len(stopped) == 2 and len(children) == 2 + len(finished) < 4  # the waiting trials never started
    assert all("altlearn.checkpoint_epoch" in c.data.tags for c in stopped.values())
    assert all(c.data.metrics.get("train_loss") is not None for c in stopped.values())  # metrics kept

    again = start_sweep(args, tmp_path)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output
    assert "2 to resume" in output and "resumed after epoch" in output
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "FINISHED" and len(children) == 4  # the same parent; resumed in their runs
    assert {c.info.status for c in children} == {"FINISHED"}
    assert set(stopped) <= {c.info.run_id for c in children}  # resumed in their own runs
    client = MlflowClient(store(tmp_path))
    for run_id in stopped:
        steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
        assert steps == list(range(1, 201))  # every epoch once

    third = CliRunner().invoke(main, ["sweep", *args])  # all finished: nothing left to do
    assert third.exit_code == 0, third.output
    assert "4 finished before" in third.output
    assert len(sweep_runs(store(tmp_path))[1]) == 4


def test_ten_trials_on_ten_workers_at_once_on_a_fresh_store_all_finish(tmp_path):
    # Issue 16's concurrency case through a sweep: ten worker processes write one new SQLite
    # store at the same moment; not one run may be lost, left RUNNING or end FAILED.
    path = write_sweep(tmp_path, {"name": "ten", "seeds": list(range(10))})
    uri = store(tmp_path)
    assert not (tmp_path / "mlflow.db").exists()
    result = CliRunner().invoke(main, ["sweep", str(path), "--workers", "10", "--tracking-uri", uri, "-q"])
    assert result.exit_code == 0, result.output
    parent, children = sweep_runs(uri)
    assert parent.info.status == "FINISHED"
    assert len(children) == 10 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.params["seed"] for c in children} == {str(seed) for seed in range(10)}
    client = MlflowClient(uri)
    for child in children:  # every epoch of every trial recorded once
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test_accuracy")]
        assert sorted(steps) == [1, 2]


def test_an_unfinished_trial_whose_checkpoint_file_is_gone_starts_again(tmp_path):
    """A store copied without its mlartifacts folder: resuming would fail on every later run of
    the sweep, so the trial starts afresh in a new run, the old one is marked superseded, and the
    user is told even under --quiet (the work they thought kept is done again)."""
    sweep = {"name": "lost-checkpoints", "set": {"tracking.checkpoint_minutes": 0}, "seeds": [0, 1]}
    path = write_sweep(tmp_path, sweep)
    args = ["sweep", str(path), "--workers", "1", "--tracking-uri", store(tmp_path), "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    client = MlflowClient(store(tmp_path))
    _, done = sweep_runs(store(tmp_path))
    kept, lost = sorted(done, key=lambda r: r.data.params["seed"])
    for run in (kept, lost):  # as if both had been interrupted after their last checkpoint
        client.set_terminated(run.info.run_id, "KILLED")
    folder = client.get_run(lost.info.run_id).info.artifact_uri.removeprefix("file://")
    for checkpoint in (Path(folder) / "checkpoint").glob("trainer_state-*.pt"):
        checkpoint.unlink()

    again = CliRunner().invoke(main, args)  # --quiet still says that work is done again
    assert again.exit_code == 0, again.output
    assert "seed 1) starts again from the first epoch" in again.stderr, again.stderr
    parent, children = sweep_runs(store(tmp_path))
    by_id = {c.info.run_id: c for c in children}
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert by_id[kept.info.run_id].info.status == "FINISHED"  # resumed in its own run
    assert by_id[lost.info.run_id].data.tags.get("altlearn.superseded") == "true"
    (new,) = [c for c in children if c.info.run_id not in (kept.info.run_id, lost.info.run_id)]
    assert new.info.status == "FINISHED" and new.data.params["seed"] == "1"


def test_case_and_seed_run_part_of_a_sweep_and_a_later_run_finishes_it(tmp_path):
    sweep = {
        "name": "part-now",
        "set": {"train.epochs": 1},
        "cases": [{"label": "bp"}, {"label": "fa", "rule.type": "fa"}, {"label": "dfa", "rule.type": "dfa"}],
        "seeds": [0, 1],
    }
    path = write_sweep(tmp_path, sweep)
    args = ["sweep", str(path), "--workers", "1", "--tracking-uri", store(tmp_path)]

    listed = CliRunner().invoke(main, [*args, "--case", "*fa", "--seed", "1", "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert "6 trials: 3 configurations x 2 seeds; 2 selected" in listed.output
    assert [line.split()[-1] for line in listed.output.splitlines()[2:]] == ["fa", "dfa"]

    part = CliRunner().invoke(main, [*args, "--case", "*fa", "--seed", "1"])
    assert part.exit_code == 0, part.output
    assert "(2 to start, 0 to resume, 0 finished before, 4 not selected)" in part.output
    assert (
        "4 trials of 6 not selected" in part.stderr
        and f"altlearn sweep {path} --workers 1 --tracking-uri" in part.stderr
    )
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "KILLED"  # incomplete: never FINISHED with trials still to run
    assert sorted((c.data.params["rule.type"], c.data.params["seed"]) for c in children) == [
        ("dfa", "1"),
        ("fa", "1"),
    ]
    outcomes = artifact_csv(
        MlflowClient(store(tmp_path)), parent.info.run_id, "outcomes.csv", tmp_path / "dl"
    )
    assert sorted(o["status"] for o in outcomes) == ["FINISHED"] * 2 + ["LATER"] * 4
    assert parent.data.metrics["trials_later"] == 4

    rest = CliRunner().invoke(main, args)
    assert rest.exit_code == 0, rest.output
    assert "(4 to start, 0 to resume, 2 finished before)" in rest.output
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "FINISHED" and len(children) == 6

    wrong = CliRunner().invoke(main, [*args, "--case", "3x800 *", "--seed", "7"])
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output
    assert "--case '3x800 *' matches no configuration of this sweep" in wrong.output
    assert "'bp', 'dfa', 'fa'" in wrong.output and "--seed 7: this sweep has seeds 0, 1" in wrong.output


def test_a_configuration_fixed_after_it_failed_replaces_it_and_the_finished_trials_are_kept(tmp_path):
    from altlearn.compare.selection import open_store, select_sweep

    typo = {"label": "stop", "train.stop_when": "trainacc >= 0.5"}  # a name only training finds missing
    sweep = {"name": "fixed", "set": {"train.epochs": 2}, "cases": [{"label": "bp"}, typo]}
    path = write_sweep(tmp_path, sweep)
    args = ["sweep", str(path), "--workers", "1", "--tracking-uri", store(tmp_path), "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1 and "trainacc" in first.output, first.output
    _, before = sweep_runs(store(tmp_path))
    (failed,) = [run for run in before if run.info.status == "FAILED"]

    path.write_text(path.read_text().replace("trainacc", "train_accuracy"))
    fixed = CliRunner().invoke(main, args)
    assert fixed.exit_code == 0, fixed.output
    assert "1 trial (stop seed 0) no longer in the file and never finished" in fixed.stderr
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "FINISHED" and len(children) == 3  # bp was not trained again
    by_id = {run.info.run_id: run for run in children}
    assert by_id[failed.info.run_id].data.tags["altlearn.superseded"] == "true"
    assert sorted(run.info.status for run in children) == ["FAILED", "FINISHED", "FINISHED"]
    selection = select_sweep(open_store(store(tmp_path)), parent.info.run_id)
    assert sorted(run.name.split(",")[0] for run in selection.runs) == [
        "bp",
        "stop",
    ]  # names lead with the label
    assert selection.notes[0].startswith("1 run of the sweep left out: tagged altlearn.superseded")
    assert selection.notes[0].endswith(failed.info.run_id[:8])


def test_workers_beyond_the_machines_slots_are_lowered_and_the_continue_command_names_what_ran(capsys):
    """A search continued on other workers would draw other values: the command printed after an
    interruption must name the workers that ran (the slots), not the --workers asked for."""
    from altlearn.sweep import runner

    asked = runner.SweepOptions("sweep.yaml", workers=64)
    ran = runner._clamp_workers(asked, 2)
    assert ran.workers == 2 and "--workers 64 is more than this machine can run" in capsys.readouterr().err
    assert "altlearn sweep sweep.yaml --workers 2 --tracking-uri" in runner._same_command(
        ran, "sqlite:///x.db"
    )
    assert runner._clamp_workers(runner.SweepOptions("sweep.yaml", workers=2), 2).workers == 2
    assert runner._clamp_workers(runner.SweepOptions("sweep.yaml"), 2).workers is None
