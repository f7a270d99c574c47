"""How much budget a pruned TPE search saves against a grid, for the same quality of choice.

    python benchmarks/tuning_efficiency.py                 # the full comparison (~25 min on 2 cores)
    python benchmarks/tuning_efficiency.py --quick         # a smoke run: 2 epochs, a 2x2 grid

A 784-256-256-10 ReLU MLP, Adam, 10 epochs, on a 15,000-image MNIST subset of which 5,000 are
held out for validation (10,000 trained on). Both searches choose on val_accuracy at the last
epoch; each choice is re-run on the same 3 final seeds (1, 2, 3; the searches train with seed 0)
and scored on the test set:
- grid: 8 learning rates x 3 weight decays, every trial to its last epoch (240 trial-epochs);
- TPE: the same ranges (lr log-uniform, weight decay a choice), 16 trials, pruned by successive
  halving from epoch 2; repeated for search seeds 0, 1 and 2.
Everything runs through `altlearn sweep` (sampler: grid / tpe), in a fresh store per search.
Prints each repeat (its choice, trial-epochs, final test accuracy) and the target: TPE's mean final
test accuracy within 0.3 points of the grid's, using at most 40 % of its trial-epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
EXPERIMENT = "tuning-benchmark"
ALTLEARN = Path(sys.executable).parent / "altlearn"
RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
DECAYS = [0, 1e-5, 1e-4]


def base_spec(epochs: int) -> dict:
    return {
        "name": "mnist-mlp-tuning",
        "seed": 0,
        "data": {"type": "mnist", "batch_size": 128, "train_subset": 15000, "val_size": 5000},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 256},
                {"type": "relu"},
                {"type": "linear", "out_features": 256},
                {"type": "relu"},
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": {"type": "bp"},
        "optimizer": {"type": "adam", "lr": 0.001},
        "schedule": {"type": "constant"},
        "train": {"epochs": epochs, "device": "cpu", "threads": 1},
        "tracking": {"experiment": EXPERIMENT, "log_model": False, "alignment_every": 0},
    }


def search_file(folder: Path, kind: str, seed: int, quick: bool) -> Path:
    rates, decays = (RATES[2:4], DECAYS[:2]) if quick else (RATES, DECAYS)
    if kind == "grid":
        search = {
            "space": {"optimizer.lr": {"choice": rates}, "optimizer.weight_decay": {"choice": decays}},
            "trials": len(rates) * len(decays),
            "sampler": "grid",
            "pruner": "none",
        }
    else:
        search = {
            "space": {
                "optimizer.lr": {"log_uniform": [rates[0], rates[-1]]},
                "optimizer.weight_decay": {"choice": decays},
            },
            "trials": 4 if quick else 16,
            "sampler": "tpe",
            "startup_trials": 2 if quick else 6,
            "pruner": {"type": "successive_halving", "min_epochs": 1 if quick else 2, "reduction_factor": 3},
        }
    sweep = {
        "name": f"{kind}-{seed}",
        "base": "base.yaml",
        "search": {**search, "seed": seed},
        "final": {"seeds": [1, 2, 3]},
    }
    (folder / "base.yaml").write_text(yaml.safe_dump(base_spec(2 if quick else 10), sort_keys=False))
    path = folder / f"{kind}-{seed}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def run(folder: Path, path: Path, workers: int) -> dict:
    """Run one search sweep; its choice, trial-epochs and finals' test accuracy from the store."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    started = time.monotonic()
    subprocess.run(
        [str(ALTLEARN), "sweep", str(path), "--tracking-uri", uri, "--workers", str(workers), "-q"],
        check=True,
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    name = yaml.safe_load(path.read_text())["name"]
    parent = client.search_runs(
        [experiment.experiment_id], f"tags.`altlearn.sweep_name` = '{name}'", max_results=1
    )[0]
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`altlearn.sweep` = '{parent.info.run_id}'", max_results=1000
    )
    search = [r for r in runs if r.data.tags.get("altlearn.phase") == "search"]
    finals = [r for r in runs if r.data.tags.get("altlearn.phase") == "final"]
    epochs = sum(len(client.get_metric_history(r.info.run_id, "val_accuracy")) for r in search)
    return {
        "choice": json.loads(finals[0].data.tags["altlearn.search_params"]),
        "trial_epochs": epochs,
        "pruned": sum("altlearn.pruned_epoch" in r.data.tags for r in search),
        "trials": len(search),
        "test_accuracy": statistics.fmean(r.data.metrics["test_accuracy"] for r in finals),
        "minutes": (time.monotonic() - started) / 60,
    }


def describe(name: str, result: dict) -> str:
    choice = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.3g}" for k, v in result["choice"].items())
    return (
        f"{name:<8} chose {choice:<32} {result['trial_epochs']:>4} trial-epochs "
        f"({result['trials']} trials, {result['pruned']} pruned)  final test acc "
        f"{100 * result['test_accuracy']:.2f} %  ({result['minutes']:.1f} min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs and a 2x2 grid: a smoke run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="TPE search seeds 0..N-1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        grid = run(folder, search_file(folder, "grid", 0, args.quick), args.workers)
        print(describe("grid", grid), flush=True)
        tpe = []
        for seed in range(args.repeats):
            tpe.append(run(folder, search_file(folder, "tpe", seed, args.quick), args.workers))
            print(describe(f"tpe {seed}", tpe[-1]), flush=True)
    accuracy = statistics.fmean(r["test_accuracy"] for r in tpe)
    budget = statistics.fmean(r["trial_epochs"] for r in tpe) / grid["trial_epochs"]
    gap = 100 * (grid["test_accuracy"] - accuracy)
    print(
        f"TPE (mean of {len(tpe)}): final test acc {100 * accuracy:.2f} % vs grid "
        f"{100 * grid['test_accuracy']:.2f} % ({gap:+.2f} points behind; target <= 0.3), "
        f"{100 * budget:.0f} % of the grid's trial-epochs (target <= 40 %): "
        f"{'met' if gap <= 0.3 and budget <= 0.4 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
