"""What the sweep tests share: a seconds-long digits spec, sweep files, and reading MLflow back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

ALTLEARN = Path(sys.executable).parent / "altlearn"  # the console script of this environment
EXPERIMENT = "sweep-tests"

DIGITS_BASE = {
    "name": "digits-sweep",
    "data": {"type": "digits", "batch_size": 64, "train_subset": 640},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 32},
            {"type": "relu"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "rule": {"type": "bp"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "train": {"epochs": 2, "device": "cpu", "threads": 1},
    "tracking": {"experiment": EXPERIMENT, "log_model": False, "alignment_every": 0},
}

#: Diverges within its first epoch (NaN loss): the deliberately failing trial.
DIVERGING = {"label": "diverges", "optimizer": {"type": "sgd", "lr": 1.0e30}}


def write_sweep(folder: Path, sweep: dict, base: dict | None = None) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base or DIGITS_BASE, sort_keys=False))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    return path


def store(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def sweep_runs(uri: str) -> tuple[object, list]:
    """(the parent run, its child runs) of the one sweep in the test's store."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("altlearn.kind") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    children = [r for r in runs if r.data.tags.get("altlearn.kind") == "trial"]
    return parents[0], children


def start_sweep(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`altlearn sweep ...` in its own process, its plain progress lines readable line by line."""
    env = {**os.environ, **(env or {}), "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [str(ALTLEARN), "sweep", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen, words: str, timeout: float = 240) -> list[str]:
    """The process's lines up to the first that contains ``words``."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if words in line:
            return lines
    raise AssertionError(f"no line with {words!r} in:\n{''.join(lines)}")


def worker_pids(pid: int) -> list[int]:
    """The sweep's spawned worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = []
    for child in map(int, children):
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            workers.append(child)
    return workers


def read_until_training(
    process: subprocess.Popen, trials: int, total: int, seen: list[str] | None = None
) -> list[str]:
    """The process's lines until each of the first ``trials`` trials has finished an epoch;
    ``seen``: lines read before (extended in place)."""
    lines: list[str] = [] if seen is None else seen
    while not all(
        any(line.startswith(f"[{n}/{total}]") and ": epoch " in line for line in lines)
        for n in range(1, trials + 1)
    ):
        more = read_until(process, ": epoch ")
        if not more:  # the sweep ended (or said nothing for minutes) before every trial trained
            raise AssertionError("the sweep stopped before its trials trained:\n" + "".join(lines))
        lines += more
    return lines


def training_worker_pid(uri: str, excluding: list[int] = ()) -> int:
    """The process of a trial that is training now, from its run's owner tag (``altlearn.pid``);
    not one of ``excluding`` (killed already: their runs may not be marked yet)."""
    _, children = sweep_runs(uri)
    pids = [int(c.data.tags["altlearn.pid"]) for c in children if c.info.status == "RUNNING"]
    pids = [pid for pid in pids if pid not in excluding]
    assert pids, [c.info.status for c in children]
    return pids[0]
