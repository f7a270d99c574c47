"""Faults during a run (issues 16 and 17): the recorded state never lies, and resume works or says
why not. Each fault is real: a second process holding the SQLite write lock, a folder without write
permission, a full file system, a killed tracking server, ten processes creating one store.

The read-only folder: the tests run as root in some places, and chmod does not stop root, so there
the folder is bind-mounted over itself read-only (the kernel then refuses every write, root's
included, with EROFS); as an ordinary user, chmod alone works. (Dropping the child to the user
`nobody` was tried first: it cannot reach an interpreter installed under /root.) A full disk needs a small tmpfs, which only root can
mount: elsewhere that test is skipped with a message.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
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

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins

TESTS = Path(__file__).parent
EPOCHS = 4


def fault_spec(rule: dict, **tracking) -> dict:
    return {
        "name": "faults",
        "seed": 1,
        "data": {"type": "digits", "batch_size": 32},  # 45 steps per epoch
        "network": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
        "rule": rule,
        "optimizer": {"type": "adam", "lr": 0.003},
        "train": {"epochs": EPOCHS, "device": "cpu", "threads": 1},
        "tracking": {
            "experiment": "faults",
            "checkpoint_minutes": 0,
            "log_model": False,
            "alignment_every": 0,
            **tracking,
        },
    }


def pause_spec(folder: Path) -> dict:
    return fault_spec({"type": "pause", "at_step": 60, "folder": str(folder)})  # in epoch 2


@pytest.fixture
def with_fake_rules(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)


def write_spec(folder: Path, spec: dict) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start_child(args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(TESTS / "fault_child.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        **kwargs,
    )


def wait_for(path: Path, child: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended early:\n{child.stdout.read()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def finish(child: subprocess.Popen, seconds: float = 240) -> tuple[int, str]:
    output, _ = child.communicate(timeout=seconds)  # a hang fails the test instead of blocking CI
    return child.returncode, output


def only_run(uri: str):
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    return client, run


def steps(client, run_id: str, key: str = "train_loss") -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def checkpoint_epoch_in_file(client, run) -> int:
    """The epoch inside the checkpoint the run's tag points at (not the tag's own claim)."""
    artifact = run.data.tags["altlearn.checkpoint"].split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=artifact, dst_path=tmp, tracking_uri=client.tracking_uri
        )
        return torch.load(path, weights_only=True)["epoch"]


def resume(uri: str, run_id: str):
    return CliRunner().invoke(main, ["resume", run_id, "--tracking-uri", uri, "--quiet"])


def assert_resumes_to_the_end(uri: str, run_id: str) -> None:
    result = resume(uri, run_id)
    assert result.exit_code == 0, result.output
    client, run = only_run(uri)
    assert run.info.status == "FINISHED" and "altlearn.error" not in run.data.tags
    assert steps(client, run_id) == list(range(1, EPOCHS + 1))
    assert checkpoint_epoch_in_file(client, run) == EPOCHS


# ------------------------------------------------------------------------------ SQLite lock


def test_a_store_locked_past_the_write_timeout_ends_failed_and_resumes(tmp_path, with_fake_rules):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    child = start_child(["run", str(write_spec(tmp_path, pause_spec(tmp_path))), "--tracking-uri", uri, "-q"])
    wait_for(tmp_path / "ready", child)
    client, run = only_run(uri)
    # while it trains, a resume is refused (both would log every step)
    result = resume(uri, run.info.run_id)
    assert result.exit_code == 2 and f"still training (process {child.pid}" in result.output
    # a second process takes the write lock for longer than SQLite's 20 s wait, then lets go
    locker = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    (tmp_path / "go").write_text("")
    time.sleep(24)
    locker.execute("COMMIT")
    locker.close()
    code, output = finish(child)
    assert code == 1, output
    assert "database is locked" in output and "Traceback" not in output
    assert f"altlearn resume {run.info.run_id}" in output
    client, run = only_run(uri)
    assert run.info.status == "FAILED"  # never FINISHED with 1 of 4 epochs
    assert "database is locked" in run.data.tags["altlearn.error"]
    assert steps(client, run.info.run_id) == [1]
    assert run.data.tags["altlearn.checkpoint_epoch"] == "1" == str(checkpoint_epoch_in_file(client, run))
    assert_resumes_to_the_end(uri, run.info.run_id)


# ------------------------------------------------------------------------- read-only folder


@contextlib.contextmanager
def read_only(folder: Path):
    """Take write access to ``folder`` from every process (see the module doc for why two ways)."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    mount = ["mount", "--bind", str(folder), str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("running as root without the right to mount: cannot make a folder read-only for root")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_folder_turning_read_only_mid_run_keeps_metrics_and_checkpoint_in_step(tmp_path, with_fake_rules):
    store, handshake = tmp_path / "store", tmp_path / "handshake"
    store.mkdir()
    handshake.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    child = start_child(
        ["run", str(write_spec(handshake, pause_spec(handshake))), "--tracking-uri", uri, "-q"],
        env={"ALTLEARN_STORE_PATIENCE_SECONDS": "3"},
    )
    wait_for(handshake / "ready", child)
    with read_only(store):
        (handshake / "go").write_text("")
        code, output = finish(child)
    assert code == 1, output
    assert "Traceback" not in output and "stays RUNNING" in output, output
    assert any(cause in output for cause in ("readonly database", "unable to open", "Read-only file")), output
    client, run = only_run(uri)
    # the end could not be written: RUNNING (never FINISHED), with the state it had
    assert run.info.status == "RUNNING"
    assert steps(client, run.info.run_id) == [1]
    assert run.data.tags["altlearn.checkpoint_epoch"] == "1" == str(checkpoint_epoch_in_file(client, run))
    spec_text = Path(client.download_artifacts(run.info.run_id, "spec.yaml", str(tmp_path))).read_text()
    assert yaml.safe_load(spec_text)["name"] == "faults"
    # its process is gone, so the RUNNING run may be resumed
    assert_resumes_to_the_end(uri, run.info.run_id)


# ------------------------------------------------------------------------------- full disk


@contextlib.contextmanager
def small_file_system(folder: Path, size: str = "8m"):
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        yield folder
    finally:
        # lazily: this process's cached MLflow store still holds the database file open
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_disk_filling_during_a_checkpoint_keeps_the_last_good_one(tmp_path, with_fake_rules):
    with small_file_system(tmp_path / "small") as small:
        uri = f"sqlite:///{small / 'mlflow.db'}"
        filler = small / "filler"
        spec = fault_spec({"type": "fill_disk", "at_step": 60, "path": str(filler), "leave": 200_000})
        spec["network"]["layers"][1]["out_features"] = 2000  # a checkpoint of ~1.5 MB does not fit
        spec["network"]["layers"] += [{"type": "relu"}, {"type": "linear", "out_features": 10}]
        result = CliRunner().invoke(
            main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"]
        )
        assert result.exit_code == 1, result.output
        assert "No space left on device" in result.output and "checkpoint of epoch 2" in result.output
        client, run = only_run(uri)
        assert run.info.status == "FAILED" and "No space left" in run.data.tags["altlearn.error"]
        assert steps(client, run.info.run_id) == [1, 2]
        # the partial copy of epoch 2 is gone; epoch 1's checkpoint is whole and still the one tagged
        files = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
        assert files == ["checkpoint/trainer_state-epoch0001.pt"]
        assert run.data.tags["altlearn.checkpoint_epoch"] == "1" == str(checkpoint_epoch_in_file(client, run))
        filler.unlink()
        assert_resumes_to_the_end(uri, run.info.run_id)


# ---------------------------------------------------------------------- store creation races


def test_ten_runs_at_once_on_a_fresh_store_all_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = fault_spec({"type": "bp"})
    spec["train"]["epochs"] = 1
    spec["data"]["train_subset"] = 200
    path = write_spec(tmp_path, spec)
    children = [start_child(["run", str(path), "--tracking-uri", uri, "-q"]) for _ in range(10)]
    outcomes = [finish(child, seconds=400) for child in children]
    assert [code for code, _ in outcomes] == [0] * 10, [out for _, out in outcomes]
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert len(runs) == 10
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.data.tags["altlearn.checkpoint_epoch"] == "1" for r in runs)
    from altlearn.tracking.sqlite_store import leftover_tables

    assert leftover_tables(tmp_path / "mlflow.db") == []


def test_a_store_left_half_migrated_is_repaired(tmp_path):
    """The state a lost creation race left behind: migrations stopped inside a SQLite batch
    migration of latest_metrics, its copy _alembic_tmp_latest_metrics still there."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    from altlearn.tracking.store import connect

    db = tmp_path / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "a8c4a736bde6")  # the revision before the batch migration
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE _alembic_tmp_latest_metrics AS SELECT * FROM latest_metrics")
    engine.dispose()
    with pytest.raises(Exception, match="_alembic_tmp_latest_metrics already exists"):
        mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # MLflow alone
    client, experiment = connect(f"sqlite:///{db}", "faults")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "x", 1.0)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "x")] == [1.0]


# ----------------------------------------------------------------------- user-facing mistakes


def test_a_sqlite_uri_in_a_missing_folder_is_a_user_error_naming_it(tmp_path):
    missing = tmp_path / "no" / "such"
    spec = write_spec(tmp_path, fault_spec({"type": "bp"}))
    result = CliRunner().invoke(main, ["run", str(spec), "-q", "--tracking-uri", f"sqlite:///{missing}/m.db"])
    assert result.exit_code == 2, result.output
    assert f"the folder {missing} does not exist" in result.output
    assert not (tmp_path / "no").exists()  # and nothing was created


def test_control_sequences_from_a_spec_are_printed_escaped(tmp_path):
    evil = "digits\x1b]0;owned\x07\x1b[2J\x9b31m"
    spec = fault_spec({"type": "bp"})
    spec.update(name=evil)
    spec["train"]["epochs"] = 1
    spec["tracking"]["experiment"] = evil
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "training digits\\x1b]0;owned\\x07\\x1b[2J\\x9b31m:" in result.output  # the progress line
    assert "experiment 'digits\\x1b]0;owned" in result.output  # the summary line
    spec["rule"] = {"type": "bp\x1b[31m"}  # quoted back in an error
    for command in (["validate"], ["render"], ["run", "--tracking-uri", uri]):
        result = CliRunner().invoke(main, [command[0], str(write_spec(tmp_path, spec)), *command[1:]])
        assert "\x1b" not in result.output and "\x9b" not in result.output, (command, result.output)


def test_resume_of_a_run_whose_spec_artifact_is_empty_or_a_list_says_so(tmp_path, with_fake_rules):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = fault_spec({"type": "interrupt", "at_step": 50})
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"])
    assert result.exit_code == 130, result.output
    client, run = only_run(uri)
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)
    )  # a million values once expanded
    cases = (("", "is empty"), ("- a\n- b\n", "not a mapping (list)"), (bomb, "not a readable spec"))
    for text, words in cases:
        client.log_text(run.info.run_id, text, "spec.yaml")
        result = resume(uri, run.info.run_id)
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output


def test_resume_of_a_run_whose_only_checkpoint_is_truncated_says_what_to_do(tmp_path, with_fake_rules):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = fault_spec({"type": "interrupt", "at_step": 50})
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"])
    assert result.exit_code == 130 and "continue it after epoch 1" in result.output, result.output
    client, run = only_run(uri)
    (stored,) = (tmp_path / "mlartifacts").rglob("trainer_state-epoch0001.pt")
    stored.write_bytes(stored.read_bytes()[:1000])  # cut as a full disk or a lost connection would
    result = resume(uri, run.info.run_id)
    assert result.exit_code == 2, result.output
    assert "has no intact checkpoint" in result.output and "Traceback" not in result.output
    assert "trainer_state-epoch0001.pt is damaged (1000 bytes, expected" in result.output
    assert "Start the run again with altlearn run" in result.output


def test_a_run_resumed_on_other_cpu_kernels_says_so_and_its_tag_records_both(tmp_path, with_fake_rules):
    """A resume repeats an uninterrupted run exactly only on the kernels it ran with: continued on a
    machine whose kernels round differently, the user is told and the run's tag keeps both."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = fault_spec({"type": "interrupt", "at_step": 50})
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"])
    assert result.exit_code == 130, result.output
    client, run = only_run(uri)
    here = run.data.tags["torch.cpu_capability"]  # the kernels this machine ran it with
    assert here == torch.backends.cpu.get_cpu_capability()
    elsewhere = "AVX2" if here != "AVX2" else "AVX512"
    client.set_tag(run.info.run_id, "torch.cpu_capability", elsewhere)  # as if started on another machine
    result = resume(uri, run.info.run_id)  # the rule stops it again at its step 50: a second resume
    assert result.exit_code == 130, result.output
    assert f"ran with torch's {elsewhere} CPU kernels and continues with {here} ones" in result.output
    assert only_run(uri)[1].data.tags["torch.cpu_capability"] == f"{elsewhere} then {here}"
    result = resume(uri, run.info.run_id)  # on the kernels it continued with: nothing more to say
    assert "CPU kernels" not in result.output, result.output
    assert only_run(uri)[1].data.tags["torch.cpu_capability"] == f"{elsewhere} then {here}"


def test_a_run_resumed_on_its_own_cpu_kernels_keeps_its_tag_and_says_nothing_of_them(
    tmp_path, with_fake_rules
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = fault_spec({"type": "interrupt", "at_step": 50})
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"])
    assert result.exit_code == 130, result.output
    client, run = only_run(uri)
    result = resume(uri, run.info.run_id)
    assert result.exit_code == 130 and "CPU kernels" not in result.output, result.output
    assert "continue it after epoch 2" in result.output  # it did resume, and was stopped again
    assert only_run(uri)[1].data.tags["torch.cpu_capability"] == run.data.tags["torch.cpu_capability"]


def test_no_mlflow_active_run_exists_while_training(tmp_path):
    """MLflow's exit hook ends the "active run" FINISHED: altlearn never makes one."""
    from altlearn.runs import train_spec
    from altlearn.spec.load import validate
    from altlearn.training.observers import Observer

    seen = []

    class Watch(Observer):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append(mlflow.active_run())

    spec = fault_spec({"type": "bp"})
    spec["train"]["epochs"] = 2
    outcome = train_spec(
        validate(spec),
        uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        progress=Watch(),
        extra_tags={"altlearn.kind": "trial"},
        parent_run_id="0" * 32,
    )
    assert (outcome.status, outcome.exit_code) == ("FINISHED", 0), outcome.message
    assert seen == [None, None]
    tags = (
        mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(outcome.run_id).data.tags
    )
    assert tags["altlearn.kind"] == "trial" and tags["mlflow.parentRunId"] == "0" * 32


# ------------------------------------------------------------------------ tracking server


def start_server(folder: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    import urllib.request

    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_server(server)
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """By its PID: the server's session (uvicorn and its worker) is signalled as a group."""
    if server.poll() is None:
        os.killpg(server.pid, 9)
    server.wait(timeout=30)


def test_a_tracking_server_killed_mid_run_stops_it_within_bounds_and_resume_continues(
    tmp_path, with_fake_rules
):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    try:
        child = start_child(
            ["run", str(write_spec(tmp_path, pause_spec(tmp_path))), "--tracking-uri", uri, "-q"],
            env={"ALTLEARN_STORE_PATIENCE_SECONDS": "3"},
        )
        wait_for(tmp_path / "ready", child)
        stop_server(server)
        (tmp_path / "go").write_text("")
        code, output = finish(child, seconds=180)  # MLflow alone retried for over 12 minutes
        assert code == 1, output
        assert "Traceback" not in output and "logging epoch 2's metrics failed" in output, output
        assert "stays RUNNING" in output and "altlearn resume" in output, output
        server = start_server(tmp_path, port)
        client, run = only_run(uri)
        assert run.info.status == "RUNNING" and steps(client, run.info.run_id) == [1]
        assert_resumes_to_the_end(uri, run.info.run_id)
    finally:
        stop_server(server)


def test_resume_of_a_run_running_on_another_machine_says_how_to_release_it(tmp_path):
    from altlearn.tracking.store import connect

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment = connect(uri, "faults")
    run = client.create_run(experiment, tags={"altlearn.host": "gpu-node-7", "altlearn.pid": "4242"})
    result = resume(uri, run.info.run_id)
    assert result.exit_code == 2, result.output
    assert "process 4242 on gpu-node-7, which this machine cannot check" in result.output
    assert f"set_terminated('{run.info.run_id}', 'KILLED')" in result.output
