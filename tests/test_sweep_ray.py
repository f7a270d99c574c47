"""Real Ray sweeps on digits: against a Ray head started on loopback here (stopped by its PID, never
`ray stop`, which stops every Ray on the machine by name), and on the Ray instance the sweep
starts and stops itself."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sweep_helpers import DIVERGING, start_sweep, store, sweep_runs, write_sweep

from altlearn.cli.commands import main

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).parent / "ray"
SWEEP = {"name": "on-ray", "cases": [{"label": "bp", "rule.type": "bp"}, DIVERGING], "seeds": [0, 1]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def ray_head():
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs, in its own short temp dir (Ray's socket
    paths must stay under 108 characters); `ray start --block` stops its processes when it ends."""
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    port = free_port()
    # Ray keeps the cluster's auth token in ~/.ray: a HOME of its own for the head and the sweep
    env = {**os.environ, "HOME": temp}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--include-dashboard=false",
         "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        lines = []
        for line in head.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                break
        else:
            raise AssertionError("ray start failed:\n" + "".join(lines))
        yield f"127.0.0.1:{port}", {"HOME": temp}
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for pid in processes_mentioning(temp):  # anything that outlived its head, by PID
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def check_ray_sweep(folder: Path, output: str, returncode: int) -> None:
    assert returncode == 1, output  # the diverging trials failed, the others finished
    parent, children = sweep_runs(store(folder))
    assert parent.info.status == "FAILED" and len(children) == 4
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    statuses = {(c.data.tags["altlearn.group"], c.info.status) for c in children}
    assert statuses == {("bp", "FINISHED"), ("diverges", "FAILED")}
    assert parent.data.metrics["bp/finished"] == 2


#: A hang guard, not a speed target: four seconds-long trials take about a minute on a quiet 2-core
#: machine, but Ray's dozen processes share those cores with whatever else runs (two trainings
#: beside the suite took the cluster test past 400 s).
RAY_SWEEP_TIMEOUT = 900


def test_sweep_on_a_ray_cluster_given_by_address(tmp_path, ray_head):
    address, env = ray_head
    path = write_sweep(tmp_path, SWEEP)
    args = [str(path), "--engine", "ray", "--address", address, "--tracking-uri", store(tmp_path)]
    process = start_sweep(args, tmp_path, env)
    try:
        output = process.communicate(timeout=RAY_SWEEP_TIMEOUT)[0]
    finally:
        process.kill()  # a sweep that timed out must not outlive the test (its head is stopped next)
    check_ray_sweep(tmp_path, output, process.returncode)
    assert "ray, cluster 127.0.0.1" in output


def test_sweep_on_the_ray_instance_it_starts_and_stops(tmp_path):
    before = set(processes_mentioning("gcs_server"))
    path = write_sweep(tmp_path, SWEEP)
    ray_temp = tempfile.mkdtemp(prefix="rayl", dir="/tmp")  # short: Ray's socket paths
    env = {"HOME": str(tmp_path), "RAY_TMPDIR": ray_temp}
    process = start_sweep([str(path), "--engine", "ray", "--tracking-uri", store(tmp_path)], tmp_path, env)
    try:
        output = process.communicate(timeout=RAY_SWEEP_TIMEOUT)[0]
    finally:
        process.kill()
        shutil.rmtree(ray_temp, ignore_errors=True)
    check_ray_sweep(tmp_path, output, process.returncode)
    deadline = time.monotonic() + 30
    while set(processes_mentioning("gcs_server")) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(processes_mentioning("gcs_server")) - before  # the sweep stopped its Ray


def test_a_sqlite_store_with_a_remote_cluster_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, SWEEP)
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--engine", "ray", "--address", "ray://127.0.0.1:1"]
    )
    assert result.exit_code == 2, result.output
    assert "start an MLflow tracking server" in result.output and "--tracking-uri http://" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_a_search_with_pruning_on_a_ray_cluster(tmp_path, ray_head):
    """Each Ray task judges its trial against the store, as a local worker does."""
    from test_tuning_sweep import BASE, SEARCH

    address, env = ray_head
    # Trials run two at a time here, and a hopeless trial starts when a good one has completed (see
    # SEARCH), so it is judged against it.
    path = write_sweep(tmp_path, SEARCH, BASE)
    args = [str(path), "--engine", "ray", "--address", address, "--tracking-uri", store(tmp_path)]
    process = start_sweep(args, tmp_path, env)
    try:
        output = process.communicate(timeout=RAY_SWEEP_TIMEOUT)[0]
    finally:
        process.kill()
    assert process.returncode == 0, output
    parent, children = sweep_runs(store(tmp_path))
    search = [c for c in children if c.data.tags.get("altlearn.phase") == "search"]
    finals = [c for c in children if c.data.tags.get("altlearn.phase") == "final"]
    assert len(search) == 6 and len(finals) == 2 and parent.info.status == "FINISHED"
    assert any("altlearn.pruned_epoch" in c.data.tags for c in search)
    assert {c.data.tags["altlearn.search_params"] for c in finals} == {'{"optimizer.lr": 0.01}'}
