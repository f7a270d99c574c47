"""Real digits runs for the compare tests, made with `altlearn run` and read back with MLflow."""

from __future__ import annotations

import hashlib
import json
import re

import yaml
from click.testing import CliRunner

from altlearn.cli.commands import main

SPEC = {
    "name": "digits-compare",
    "seed": 0,
    "data": {"type": "digits", "batch_size": 32, "val_size": 100},
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
    "tracking": {"experiment": "compare", "log_model": False, "alignment_every": 10},
}
RUN_LINE = re.compile(r"MLflow run ([0-9a-f]{32}) in")


def write_spec(folder) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return str(path)


def train(uri: str, spec_path: str, experiment: str, seed: int, *overrides: str) -> str:
    """One `altlearn run`; returns its MLflow run id."""
    args = ["run", spec_path, "-q", "--tracking-uri", uri, "-s", f"seed={seed}"]
    args += ["-s", f"tracking.experiment={experiment}"]
    for override in overrides:
        args += ["-s", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return RUN_LINE.search(result.output).group(1)


def compare(uri: str, *args: str):
    """`altlearn compare` in process; stdout and stderr stay apart (result.stdout, result.stderr)."""
    return CliRunner().invoke(main, ["compare", "--tracking-uri", uri, *args])


def compare_json(uri: str, *args: str) -> dict:
    result = compare(uri, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def tag_as_sweep(client, experiment_id: str, trials: dict[str, list[str]]) -> str:
    """A sweep's parent run and its trials' tags, exactly as `altlearn sweep` writes them
    (interfaces: mlflow.parentRunId, altlearn.kind/sweep/trial_key/group_key/group)."""
    parent = client.create_run(
        experiment_id,
        run_name="digits-rules",
        tags={"altlearn.kind": "sweep", "altlearn.sweep_name": "digits-rules"},
    )
    parent_id = parent.info.run_id
    client.set_tag(parent_id, "altlearn.n_trials", str(sum(len(ids) for ids in trials.values())))
    for label, run_ids in trials.items():
        for run_id in run_ids:
            seed = client.get_run(run_id).data.params["seed"]
            tags = {
                "mlflow.parentRunId": parent_id,
                "altlearn.kind": "trial",
                "altlearn.sweep": parent_id,
                "altlearn.trial_key": _key(f"{label}|seed={seed}"),
                "altlearn.group_key": _key(label),
                "altlearn.group": label,
            }
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
    return parent_id


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def final_value(client, run_id: str, key: str) -> float:
    """The metric at its last step, read directly from MLflow's history."""
    return max(client.get_metric_history(run_id, key), key=lambda m: m.step).value


def holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's adjustment, written the textbook way: sort, multiply by m, m-1, ..., cumulative max."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * p_values[index]))
        adjusted[index] = running
    return adjusted
