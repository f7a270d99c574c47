"""What `altlearn sweep` costs and gains: a 12-trial digits sweep (bp, fa, dfa x 4 seeds) with
2 local workers, against the same 12 trials run one after another in one process.

    python benchmarks/sweep_overhead.py              # 12 trials of 300 epochs (~12 s each), 1 thread each
    python benchmarks/sweep_overhead.py --epochs 40 --workers 2     # ~1.5 s trials: start-up dominates

Both write to their own fresh SQLite store in a temporary folder and train through the same code
(the sweep's run adapter). Prints the wall times and their ratio (target: the sweep <= 0.6x the
sequential time with 2 workers on 2 cores), each way's mean trial duration (the run's own start to
end, from MLflow), the sweep's time to its first trial, and its start-up overhead per trial:
(wall time x workers - the trials' summed durations) / trials, i.e. the core-seconds a trial costs
beyond its own run (worker start, imports, the parent run, idle cores at the end).
No assertions: the figures depend on the machine and on its other load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
EXPERIMENT = "sweep-benchmark"
ALTLEARN = Path(sys.executable).parent / "altlearn"


def sweep_file(folder: Path, epochs: int) -> Path:
    base = {
        "name": "digits-benchmark",
        "data": {"type": "digits", "batch_size": 32},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 128},
                {"type": "tanh"},
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": {"type": "bp"},
        "optimizer": {"type": "adam", "lr": 0.002},
        "train": {"epochs": epochs, "device": "cpu", "threads": 1},
        "tracking": {"experiment": EXPERIMENT, "log_model": False},
    }
    (folder / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    sweep = {
        "name": "overhead",
        "base": "base.yaml",
        "cases": [{"rule.type": "bp"}, {"rule.type": "fa"}, {"rule.type": "dfa"}],
        "seeds": 4,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def run_durations(uri: str) -> tuple[list[float], float]:
    """Each trial run's seconds from start to end, and the first run's start (epoch seconds)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = [
        r
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if r.data.tags.get("altlearn.kind") != "sweep"
    ]
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    durations = [(r.info.end_time - r.info.start_time) / 1000 for r in runs]
    return durations, min(r.info.start_time for r in runs) / 1000


def time_sweep(path: Path, folder: Path, workers: int) -> tuple[float, float, list[float]]:
    uri = f"sqlite:///{folder / 'sweep.db'}"
    start = time.time()
    subprocess.run(
        [str(ALTLEARN), "sweep", str(path), "--workers", str(workers), "--tracking-uri", uri, "--quiet"],
        check=True,
        cwd=folder,
    )
    wall = time.time() - start
    durations, first_start = run_durations(uri)
    return wall, first_start - start, durations


def time_sequential(path: Path, folder: Path) -> tuple[float, list[float]]:
    """The same trials, one after another, in this process, through the same adapter."""
    from altlearn.sweep.adapter import train_trial
    from altlearn.sweep.trials import load_trials
    from altlearn.tracking import connect

    uri = f"sqlite:///{folder / 'sequential.db'}"
    start = time.time()
    _, trials = load_trials(path)
    connect(uri, EXPERIMENT)
    for trial in trials:
        outcome = train_trial(trial.spec, uri=uri)
        assert outcome.status == "FINISHED", outcome
    wall = time.time() - start
    return wall, run_durations(uri)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = sweep_file(folder, args.epochs)
        sequential_wall, sequential_runs = time_sequential(path, folder)
        sweep_wall, first_trial, sweep_runs = time_sweep(path, folder, args.workers)
    trials = len(sweep_runs)
    overhead = (sweep_wall * args.workers - sum(sweep_runs)) / trials
    print(f"{trials} digits trials of {args.epochs} epochs, 1 torch thread each, {os.cpu_count()} CPUs")
    print(
        f"sequential, one process:   {sequential_wall:7.1f} s  (mean trial run {statistics.fmean(sequential_runs):.2f} s)"
    )
    print(
        f"sweep, {args.workers} workers:          {sweep_wall:7.1f} s  (mean trial run {statistics.fmean(sweep_runs):.2f} s)"
    )
    print(f"ratio sweep / sequential:  {sweep_wall / sequential_wall:7.2f}  (target <= 0.6)")
    print(f"sweep start to first trial run: {first_trial:.1f} s")
    print(
        f"start-up overhead per trial: {overhead:.2f} core-seconds ((wall x workers - summed runs) / trials)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
