"""Ctrl-C and SIGTERM checkpoint the last completed epoch, so that resuming continues there.

With the default tracking.checkpoint_minutes (10) a run of seconds-long epochs writes no timed
checkpoint before its end; an interrupt mid-epoch must still leave one (of the epoch before, the
last one whose state can be resumed bit-identically), and `altlearn resume`, or running a sweep
again, continues the same MLflow run from it. The interrupts are real signals to real processes,
sent while a test rule waits mid-epoch (tests/fake_rules.py's PausingRule) so that they land where
they should every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fake_rules
import mlflow
import pytest
import torch
import yaml
from click.testing import CliRunner
from sweep_helpers import DIGITS_BASE, store, sweep_runs, write_sweep

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TESTS = Path(__file__).parent
EXPERIMENT = "interrupt"


@pytest.fixture
def with_fake_rules(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    monkeypatch.setattr(fake_rules.InterruptOnceRule, "fired", False)


def spec(rule: dict) -> dict:
    """10 steps per epoch, 3 epochs, tracking.checkpoint_minutes left at its default (10): the only
    checkpoints are the interrupt's and the last epoch's."""
    return {
        "name": "interrupt",
        "seed": 5,
        "data": {"type": "digits", "batch_size": 64, "train_subset": 640},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 32},
                {"type": "relu"},
                {"type": "dropout", "p": 0.2},  # draws from the global random stream
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": rule,
        "optimizer": {"type": "adam", "lr": 0.003},
        "schedule": {"type": "cosine"},
        "train": {"epochs": 3, "device": "cpu", "threads": 1},
        "tracking": {"experiment": EXPERIMENT, "log_model": False, "alignment_every": 0},
    }


def write(folder: Path, content: dict) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def uri_of(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def cli(folder: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--tracking-uri", uri_of(folder), "--quiet"])


def only_run(folder: Path):
    client = mlflow.tracking.MlflowClient(tracking_uri=uri_of(folder))
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    return client, run


def steps(client, run_id: str, key: str = "train_loss") -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def checkpoint_files(run) -> list[str]:
    folder = Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoint"
    return sorted(p.name for p in folder.glob("trainer_state-*.pt"))


def tagged_state(client, run) -> dict:
    """The trainer state in the file the run's checkpoint tag names."""
    artifact = run.data.tags["altlearn.checkpoint"].split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        return torch.load(client.download_artifacts(run.info.run_id, artifact, tmp), weights_only=True)


def assert_resumes_to_the_end(folder: Path, run_id: str) -> None:
    """`altlearn resume` finishes the run in the same MLflow run, each epoch logged once."""
    result = cli(folder, "resume", run_id)
    assert result.exit_code == 0, result.output
    client, run = only_run(folder)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert "altlearn.error" not in run.data.tags and run.data.tags["altlearn.checkpoint_epoch"] == "3"
    for key in ("train_loss", "test_accuracy", "lr"):
        assert steps(client, run_id, key) == [1, 2, 3], key


# ------------------------------------------------------------------------------ in process


def test_ctrl_c_mid_epoch_checkpoints_the_epoch_before_and_resume_ends_as_if_never_stopped(
    tmp_path, with_fake_rules
):
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    stopped.mkdir()
    straight.mkdir()
    interrupted = spec({"type": "interrupt_once", "at_step": 25})  # in epoch 3, after 2 completed
    result = cli(stopped, "run", write(stopped, interrupted))
    assert result.exit_code == 130, result.output
    client, run = only_run(stopped)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    assert (
        "continue it after epoch 2 with: " in result.output and f"altlearn resume {run_id}" in result.output
    )
    assert run.data.tags["altlearn.checkpoint_epoch"] == "2"
    assert checkpoint_files(run) == ["trainer_state-epoch0002.pt"]  # the interrupt's, not a timed one
    state = tagged_state(client, run)
    assert state["epoch"] == 2 and state["global_step"] == 20  # the end of epoch 2, not mid-epoch 3
    assert steps(client, run_id) == [1, 2]

    assert_resumes_to_the_end(stopped, run_id)

    # bit-identical: the same spec never interrupted (the rule fires once per process)
    result = cli(straight, "run", write(straight, interrupted))
    assert result.exit_code == 0, result.output
    straight_client, straight_run = only_run(straight)
    for key in ("train_loss", "test_loss", "test_accuracy"):
        expected = [m.value for m in straight_client.get_metric_history(straight_run.info.run_id, key)]
        assert [m.value for m in client.get_metric_history(run_id, key)] == expected, key


def test_ctrl_c_in_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, with_fake_rules):
    result = cli(tmp_path, "run", write(tmp_path, spec({"type": "interrupt_once", "at_step": 5})))
    assert result.exit_code == 130, result.output
    assert "no epoch had completed, so there is no checkpoint to resume from" in result.output
    assert "altlearn resume" not in result.output
    _, run = only_run(tmp_path)
    assert run.info.status == "KILLED" and "altlearn.checkpoint" not in run.data.tags
    assert checkpoint_files(run) == []


def test_a_second_signal_while_the_interrupt_checkpoint_is_written_is_held(
    tmp_path, with_fake_rules, monkeypatch
):
    from altlearn.tracking import checkpoints

    record, received = checkpoints._record, []

    def impatient(recorder, epoch, write_file):
        if fake_rules.InterruptOnceRule.fired:  # the interrupt's write: Ctrl-C again, and SIGTERM
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            received.append(epoch)
        record(recorder, epoch, write_file)

    monkeypatch.setattr(checkpoints, "_record", impatient)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = cli(tmp_path, "run", write(tmp_path, spec({"type": "interrupt_once", "at_step": 25})))
    for sig, handler in handlers.items():
        signal.signal(sig, handler)  # the CLI installed its SIGTERM handler in this process
    assert received == [2]
    assert result.exit_code == 130, result.output
    client, run = only_run(tmp_path)
    assert run.info.status == "KILLED"
    assert run.data.tags["altlearn.checkpoint_epoch"] == "2" and tagged_state(client, run)["epoch"] == 2
    assert "also failed while ending" not in result.output


# ------------------------------------------------------------------------- real processes


def start_child(args: list[str], cwd: Path) -> subprocess.Popen:
    """`altlearn ARGS` in its own process, with the test rules (tests/fault_child.py)."""
    return subprocess.Popen(
        [sys.executable, str(TESTS / "fault_child.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"},
    )


def wait_for(path: Path, child: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended early:\n{child.stdout.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"{path} never appeared:\n{child.communicate()[0]}")
        time.sleep(0.05)


def finish(child: subprocess.Popen, seconds: float = 120) -> tuple[int, str]:
    try:
        output, _ = child.communicate(timeout=seconds)  # a hang fails the test instead of blocking
    finally:
        child.kill()
    return child.returncode, output


def pausing(handshake: Path) -> dict:
    """Waits in its 15th step (mid-epoch 2, after epoch 1 completed) until ``handshake/go``."""
    return {"type": "pause", "at_step": 15, "folder": str(handshake)}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_mid_epoch_to_altlearn_run_then_resume_continues_after_the_epoch_before(
    tmp_path, with_fake_rules, signum
):
    handshake = tmp_path / "handshake"
    handshake.mkdir()
    child = start_child(
        ["run", write(tmp_path, spec(pausing(handshake))), "--tracking-uri", uri_of(tmp_path)], tmp_path
    )
    wait_for(handshake / "ready", child)
    child.send_signal(signum)
    code, output = finish(child)
    assert code == 130, output
    client, run = only_run(tmp_path)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert run.data.tags["altlearn.error"] == f"interrupted ({how})"
    assert "continue it after epoch 1 with: " in output and f"altlearn resume {run_id}" in output, output
    assert run.data.tags["altlearn.checkpoint_epoch"] == "1" and tagged_state(client, run)["epoch"] == 1
    assert steps(client, run_id) == [1]

    (handshake / "go").write_text("")  # the resumed rule passes its 15th step (global step 25)
    assert_resumes_to_the_end(tmp_path, run_id)


def test_ctrl_c_mid_epoch_to_a_sweep_then_running_it_again_resumes_the_trial_in_its_run(tmp_path):
    handshake = tmp_path / "handshake"
    handshake.mkdir()
    base = {**DIGITS_BASE, "rule": pausing(handshake), "train": {**DIGITS_BASE["train"], "epochs": 3}}
    path = write_sweep(tmp_path, {"name": "stopped-mid-epoch", "seeds": [0]}, base)
    args = ["sweep", str(path), "--workers", "1", "--tracking-uri", store(tmp_path)]
    sweep = start_child(args, tmp_path)
    wait_for(handshake / "ready", sweep)  # the trial's worker waits mid-epoch 2
    sweep.send_signal(signal.SIGINT)  # the terminal's Ctrl-C: the sweep passes it on to the trial
    code, output = finish(sweep)
    assert code == 130, output
    parent, (trial,) = sweep_runs(store(tmp_path))
    assert parent.info.status == "KILLED" and trial.info.status == "KILLED"
    assert trial.data.tags["altlearn.checkpoint_epoch"] == "1"
    client = mlflow.tracking.MlflowClient(store(tmp_path))
    assert steps(client, trial.info.run_id) == [1]

    (handshake / "go").write_text("")
    again = start_child(args, tmp_path)
    code, output = finish(again)
    assert code == 0, output
    assert "1 to resume" in output and "resumed after epoch 1" in output, output
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "FINISHED"
    assert [c.info.run_id for c in children] == [trial.info.run_id]  # its own run; no new one
    (resumed,) = children
    assert resumed.info.status == "FINISHED" and "altlearn.superseded" not in resumed.data.tags
    for key in ("train_loss", "test_accuracy"):
        assert steps(client, trial.info.run_id, key) == [1, 2, 3], key  # each epoch once
