"""End to end: `altlearn run` on real data, read back with the MLflow client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fake_rules
import mlflow
import pytest
import torch
import yaml
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins
from altlearn.spec.stopping import smoothed
from altlearn.tracking.provenance import cpu_model

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

DIGITS_SPEC = {
    "name": "digits-e2e",
    "seed": 3,
    "data": {"type": "digits", "batch_size": 32},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 64},
            {"type": "relu"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "rule": {"type": "bp"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "schedule": {"type": "cosine"},
    "train": {"epochs": 3, "device": "cpu"},
    "tracking": {"experiment": "e2e"},
}


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def run_cli(tmp_path: Path, spec_path: Path, *extra: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(spec_path), "--tracking-uri", uri, *extra])
    return result, mlflow.tracking.MlflowClient(tracking_uri=uri)


def only_run(client, experiment="e2e"):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.fixture
def with_fake_rules(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)


def test_digits_run_is_recorded_completely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result, client = run_cli(tmp_path, write_spec(tmp_path, DIGITS_SPEC), "-s", "train.epochs=4")
    assert result.exit_code == 0, result.output
    run = only_run(client)
    assert run.info.status == "FINISHED"
    # the run is named as soon as it opens, so a long one can be watched or resumed before it ends
    opened = result.output.index(f"MLflow run {run.info.run_id} in sqlite:///")
    assert opened < result.output.index("epoch 1/4")
    # params: the flattened resolved spec, overrides applied, defaults filled in
    params = run.data.params
    assert params["rule.type"] == "bp"
    assert params["train.epochs"] == "4"
    assert params["data.batch_size"] == "32"
    assert params["network.layers.1.out_features"] == "64"
    assert params["optimizer.betas"] == "[0.9, 0.999]"
    # tags
    tags = run.data.tags
    assert tags["altlearn.rule"] == "bp" and tags["altlearn.dataset"] == "digits"
    assert tags["torch.version"] == torch.__version__
    assert tags["torch.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert tags["host.cpu"] == cpu_model()  # where its CPU-seconds were spent
    assert "altlearn.stopped" not in tags  # no train.stop_when: every epoch trained
    # per-epoch metrics under the shared names, one value per epoch
    for key in (
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "epoch_seconds",
        "epoch_cpu_seconds",
        "samples_per_second",
        "lr",
    ):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3, 4], key
    accuracy = run.data.metrics["test_accuracy"]
    assert accuracy > 0.9
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert losses[-1] < losses[0]
    # artifacts: resolved spec and checkpoint beside the database
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.yaml", "checkpoint"} <= names
    logged = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "spec.yaml", str(tmp_path))).read_text()
    )
    assert logged["train"]["epochs"] == 4 and logged["optimizer"]["type"] == "adam"
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    # the logged model classifies raw [0, 1] images by itself, as well as the run says
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model_id = run.outputs.model_outputs[0].model_id
    model = mlflow.pytorch.load_model(f"models:/{model_id}")
    from altlearn.data.datasets import Digits

    splits = Digits.load(Digits.Params())
    with torch.no_grad():
        predicted = model(splits.test_x).argmax(dim=1)
    model_accuracy = (predicted == splits.test_y).float().mean().item()
    assert model_accuracy == pytest.approx(accuracy, abs=1e-6)


#: digits meets this within a few of its 30 epochs
STOP_AT_90 = [
    "-s",
    "train.epochs=30",
    "-s",
    "train.stop_when=train_accuracy >= 0.9",
    "-s",
    "tracking.log_model=false",
]


def test_a_run_ended_by_stop_when_is_finished_with_its_reason_and_final_checkpoint(tmp_path):
    result, client = run_cli(tmp_path, write_spec(tmp_path, DIGITS_SPEC), *STOP_AT_90)
    assert result.exit_code == 0, result.output
    run = only_run(client)
    epochs = [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")]
    assert run.info.status == "FINISHED" and len(epochs) < 30
    assert run.data.tags["altlearn.checkpoint_epoch"] == str(epochs[-1])  # the last epoch's, as always
    assert run.data.tags["altlearn.stopped"].startswith(
        f"stopped after epoch {epochs[-1]} of 30: train_accuracy is 0.9"
    )
    assert run.data.tags["altlearn.stopped"] + "; test accuracy" in result.output
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    again = CliRunner().invoke(main, ["resume", run.info.run_id, "--tracking-uri", uri])
    assert again.exit_code == 2 and f"finished: stopped after epoch {epochs[-1]} of 30" in again.output
    assert "start a new run with another train.stop_when or none" in again.output


def test_a_run_that_never_meets_stop_when_says_so_at_its_end(tmp_path):
    never = ["-s", "train.stop_when=train_accuracy >= 1.0", "-s", "train.stop_smoothing=0.5"]
    result, client = run_cli(
        tmp_path, write_spec(tmp_path, DIGITS_SPEC), *never, "-s", "tracking.log_model=false"
    )
    assert result.exit_code == 0, result.output
    assert (
        "train.stop_when (train_accuracy >= 1.0) not met in 3 epochs: train_accuracy smoothed"
        in result.output
    )
    run = only_run(client)
    assert run.info.status == "FINISHED" and "altlearn.stopped" not in run.data.tags
    # each epoch's line shows the smoothed value the stop reads
    accuracy = [m.value for m in client.get_metric_history(run.info.run_id, "train_accuracy")]
    epoch_lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == len(accuracy) == 3
    for epoch, line in enumerate(epoch_lines, 1):
        value = smoothed([{"train_accuracy": a} for a in accuracy[:epoch]], "train_accuracy", 0.5)
        assert line.endswith(f"  stop at train_accuracy >= 1.0: {value:.6g} smoothed")
    # the tag compare reads to tell runs at the cap from runs at their stop
    assert run.data.tags["altlearn.stop_unmet"].startswith("train.stop_when (train_accuracy >= 1.0) not met")


def test_a_stop_metric_the_run_does_not_log_fails_it_after_logging_the_first_epoch(tmp_path):
    result, client = run_cli(
        tmp_path, write_spec(tmp_path, DIGITS_SPEC), "-s", "train.stop_when=trainacc >= 0.9"
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "train.stop_when names 'trainacc', which this run does not log" in result.output
    assert "altlearn resume" not in result.output  # resuming would fail the same way
    run = only_run(client)
    assert run.info.status == "FAILED" and "altlearn.stopped" not in run.data.tags
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1]


def test_a_run_killed_after_its_stopping_epoch_resumes_to_finished_without_training_more(
    tmp_path, monkeypatch
):
    from altlearn.tracking.checkpoints import FinalArtifacts

    def interrupted(self, trainer, metrics):
        raise KeyboardInterrupt

    spec = write_spec(tmp_path, DIGITS_SPEC)
    with monkeypatch.context() as patch:
        patch.setattr(FinalArtifacts, "on_train_end", interrupted)
        result, client = run_cli(tmp_path, spec, *STOP_AT_90)
    run = only_run(client)
    assert run.info.status == "KILLED" and "altlearn.stopped" not in run.data.tags
    epochs = [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resumed = CliRunner().invoke(main, ["resume", run.info.run_id, "--tracking-uri", uri])
    assert resumed.exit_code == 0, resumed.output
    run = only_run(client)
    assert run.info.status == "FINISHED" and run.data.tags["altlearn.stopped"].startswith(
        "stopped after epoch"
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == epochs
    assert f"stopped after epoch {epochs[-1]} of 30" in resumed.output


def test_a_run_with_overrides_is_named_after_them_unless_the_spec_names_it(tmp_path):
    path = write_spec(tmp_path, {**DIGITS_SPEC, "train": {"epochs": 1, "device": "cpu"}})
    tags = 'tracking.tags={note: "ok \U0001f600"}'  # outside the BMP: no surrogate escapes
    result, client = run_cli(tmp_path, path, "-s", "rule.type=fa", "-s", tags, "-q")
    assert result.exit_code == 0, result.output
    assert only_run(client).info.run_name == f"digits-e2e [rule.type=fa, {tags}]"
    named = {**DIGITS_SPEC, "tracking": {"experiment": "named", "run_name": "mine"}}
    result, client = run_cli(tmp_path, write_spec(tmp_path, named, "named.yaml"), "-s", "rule.type=fa")
    assert result.exit_code == 0, result.output
    assert only_run(client, "named").info.run_name == "mine"


def test_same_seed_gives_identical_metrics_and_another_seed_differs(tmp_path):
    from altlearn.spec.load import validate
    from altlearn.training.trainer import Trainer

    def history(seed):
        spec = validate({**DIGITS_SPEC, "seed": seed})
        trainer = Trainer(spec)
        trainer.fit()
        return [
            {
                k: v
                for k, v in h.items()
                if k not in ("epoch_seconds", "epoch_cpu_seconds", "samples_per_second")
            }
            for h in trainer.history
        ]

    first, second, other = history(1), history(1), history(2)
    assert first == second
    assert first != other


def test_real_mnist_subset_trains(tmp_path):
    spec = {
        **DIGITS_SPEC,
        "name": "mnist-subset",
        "data": {
            "type": "mnist",
            "batch_size": 64,
            "train_subset": 4000,
            "test_subset": 1000,
            "val_size": 500,
        },
        "train": {"epochs": 2, "device": "cpu"},
    }
    result, client = run_cli(
        tmp_path, write_spec(tmp_path, spec), "--quiet", "-s", "tracking.log_model=false"
    )
    assert result.exit_code == 0, result.output
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.85
    assert "val_accuracy" in run.data.metrics
    assert run.data.tags["altlearn.dataset"] == "mnist"


def test_crash_inside_a_rule_ends_failed_and_keeps_metrics(tmp_path, with_fake_rules):
    spec = {**DIGITS_SPEC, "rule": {"type": "crash", "at_step": 100}}  # 45 steps/epoch: dies in epoch 3
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)  # a bug in code is a bug: traceback kept
    run = only_run(client)
    assert run.info.status == "FAILED"
    assert "boom" in run.data.tags["altlearn.error"]
    assert run.data.tags["plugin.altlearn-test-fakes"] == "9.9"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1, 2]


def test_ctrl_c_ends_killed_and_keeps_metrics(tmp_path, with_fake_rules):
    spec = {**DIGITS_SPEC, "rule": {"type": "interrupt", "at_step": 50}}
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 130
    assert "KILLED" in result.output
    run = only_run(client)
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("float", "'loss' is a float, not a scalar tensor"),
        ("vector", "'loss' is a tensor of shape (32,), not a scalar tensor"),
        ("no_loss", "train_step returned no 'loss' (keys: losss)"),
        ("none", "train_step returned NoneType"),
        ("no_grad", "filled no parameter's .grad"),
    ],
)
def test_a_rule_breaking_the_step_contract_is_named_after_one_step(tmp_path, with_fake_rules, mistake, words):
    spec = {**DIGITS_SPEC, "rule": {"type": "bad_step", "mistake": mistake}}
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 1
    assert "rule 'bad_step' (package altlearn-test-fakes)" in result.output
    assert words in result.output
    if mistake != "no_grad":
        assert "docs/plugin-hooks.md" in result.output  # where the contract is written
    assert "Traceback" not in result.output
    assert only_run(client).info.status == "FAILED"


def test_a_rule_metric_named_like_clippings_is_refused_only_when_clipping(tmp_path, with_fake_rules):
    spec = {**DIGITS_SPEC, "rule": {"type": "bad_step", "mistake": "grad_norm"}}
    result, _ = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 0, result.output  # without clipping the name is the rule's to use
    clipped = {**spec, "train": {**DIGITS_SPEC["train"], "clip_grad_norm": 1.0}}
    result, _ = run_cli(tmp_path, write_spec(tmp_path, clipped), "--quiet")
    assert result.exit_code == 1
    assert "train_step returns 'grad_norm', which train.clip_grad_norm logs itself" in result.output


def test_sigterm_ends_killed_and_says_it_was_sigterm(tmp_path, with_fake_rules, monkeypatch):
    from altlearn.tracking import Terminated

    def terminate(self, metrics):
        raise Terminated

    monkeypatch.setattr(fake_rules.InterruptedRule, "misbehave", terminate)
    spec = {**DIGITS_SPEC, "rule": {"type": "interrupt", "at_step": 50}}
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 130
    run = only_run(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["altlearn.error"] == "interrupted (SIGTERM)"


def test_a_signal_while_the_run_opens_ends_it_killed_not_finished(tmp_path, monkeypatch):
    import signal

    real_create_run = mlflow.tracking.MlflowClient.create_run

    def create_run_then_ctrl_c(*args, **kwargs):
        run = real_create_run(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the run is being set up
        return run

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "create_run", create_run_then_ctrl_c)
    result, client = run_cli(tmp_path, write_spec(tmp_path, DIGITS_SPEC), "--quiet")
    assert result.exit_code == 130
    run = only_run(client)
    assert run.info.status == "KILLED"
    assert mlflow.active_run() is None


def test_ctrl_c_while_reading_the_spec_exits_130_with_a_message(tmp_path, monkeypatch):
    import altlearn.spec.load

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(altlearn.spec.load, "load_spec", interrupted)
    result, _ = run_cli(tmp_path, write_spec(tmp_path, DIGITS_SPEC), "--quiet")
    assert result.exit_code == 130
    assert "interrupted before training started" in result.output


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "make_uri, words",
    [
        (lambda tmp: f"http://127.0.0.1:{free_port()}", "cannot reach the MLflow tracking server"),
        (lambda tmp: f"sqlite:///{tmp / 'a_file' / 'x.db'}", "cannot use the MLflow tracking store"),
        (lambda tmp: f"sqlite:///{tmp / 'not_a_db'}", "file is not a database"),
        (lambda tmp: "bogus://x", "cannot use the MLflow tracking store bogus://x"),
    ],
    ids=["unreachable-server", "parent-is-a-file", "not-a-database", "unknown-scheme"],
)
def test_an_unusable_tracking_store_is_reported_before_the_data_loads(tmp_path, monkeypatch, make_uri, words):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "not_a_db").write_text("certainly not sqlite " * 50)
    from altlearn.training import trainer as train

    def no_training(*args, **kwargs):
        raise AssertionError("the trainer must not be built when the tracking store is unusable")

    monkeypatch.setattr(train, "Trainer", no_training)
    result = CliRunner().invoke(
        main, ["run", str(write_spec(tmp_path, DIGITS_SPEC)), "--quiet", "--tracking-uri", make_uri(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output


def test_two_runs_creating_one_new_experiment_both_get_it(tmp_path):
    from mlflow.exceptions import MlflowException

    from altlearn.tracking.store import experiment_id

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)

    class LateClient:
        """Sees no experiment, then loses the race to create it to another process."""

        def __init__(self):
            self.lookups = 0

        def get_experiment_by_name(self, name):
            self.lookups += 1
            return None if self.lookups == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, name, artifact_location=None, tags=None):
            client.create_experiment(name)  # the other process, a moment earlier
            raise MlflowException(f"Experiment(name={name}) already exists")

        def set_experiment_tag(self, experiment_id, key, value):
            client.set_experiment_tag(experiment_id, key, value)

    late = LateClient()
    assert experiment_id(late, "sweep", None) == client.get_experiment_by_name("sweep").experiment_id
    # the other process's experiment is marked as holding training runs too
    assert client.get_experiment_by_name("sweep").tags["mlflow.experimentKind"] == "custom_model_development"


def test_nan_loss_stops_with_a_message_and_failed(tmp_path, with_fake_rules):
    spec = {
        **DIGITS_SPEC,
        "rule": {"type": "nan", "at_step": 60},
        "train": {"epochs": 3, "device": "cpu", "log_every": 5},
    }
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 1
    assert "nan" in result.output and "lower optimizer.lr (it is 0.003;" in result.output
    assert "-s optimizer.lr=0.0003" in result.output
    assert "Traceback" not in result.output
    run = only_run(client)
    assert run.info.status == "FAILED"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1


def test_rule_with_its_own_update_needs_no_optimizer(tmp_path, with_fake_rules):
    spec = {k: v for k, v in DIGITS_SPEC.items() if k != "optimizer"}
    spec["rule"] = {"type": "own_update"}
    result, client = run_cli(
        tmp_path, write_spec(tmp_path, spec), "--quiet", "-s", "tracking.log_model=false"
    )
    assert result.exit_code == 0, result.output
    run = only_run(client)
    assert "optimizer.type" not in run.data.params
    spec["optimizer"] = {"type": "sgd"}
    result = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, spec, "bad.yaml"))])
    assert result.exit_code == 2
    assert "optimizer: rule 'own_update' brings its own update" in result.output


def test_three_mistakes_three_messages_exit_2_no_traceback(tmp_path):
    spec = {
        **DIGITS_SPEC,
        "data": {"type": "digits", "batch_size": 0},
        "optimizer": {"type": "adam", "lr": 0.001, "momentum": 0.9},
        "train": {"epochs": 3, "device": "gpu"},
    }
    path = write_spec(tmp_path, spec)
    proc = subprocess.run(
        [sys.executable, "-m", "altlearn.cli.commands", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 3, proc.stderr
    assert any(line.strip().startswith("- data.batch_size:") for line in lines)
    assert any("optimizer.momentum" in line and "its options are" in line for line in lines)
    assert any(line.strip().startswith("- train.device:") and "'cuda'" in line for line in lines)


def test_missing_data_is_a_user_error(tmp_path):
    spec = {**DIGITS_SPEC, "data": {"type": "fashion_mnist", "root": str(tmp_path / "nowhere")}}
    result, _ = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 2
    assert "dataset-fashion-mnist" in result.output


def test_cuda_requested_without_cuda_is_a_user_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result, _ = run_cli(tmp_path, write_spec(tmp_path, DIGITS_SPEC), "-s", "train.device=cuda")
    assert result.exit_code == 2
    assert "no CUDA device" in result.output


def test_render_prints_resolved_spec_with_overrides(tmp_path):
    result = CliRunner().invoke(
        main,
        ["render", str(write_spec(tmp_path, DIGITS_SPEC)), "-s", "rule.type=bp", "-s", "optimizer.lr=0.5"],
    )
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.output)
    assert rendered["optimizer"] == {
        "type": "adam",
        "lr": 0.5,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "eps": 1e-08,
    }
    assert rendered["data"]["eval_batch_size"] == 1000


@pytest.mark.gpu
def test_digits_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    result, client = run_cli(
        tmp_path, write_spec(tmp_path, DIGITS_SPEC), "-s", "train.device=cuda", "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert only_run(client).data.metrics["test_accuracy"] > 0.9


def test_mistake_found_at_load_time_opens_no_run(tmp_path):
    spec = {**DIGITS_SPEC, "data": {"type": "digits", "val_size": 100000}}
    result, client = run_cli(tmp_path, write_spec(tmp_path, spec), "--quiet")
    assert result.exit_code == 2
    assert "data.val_size: 100000 leaves no training examples" in result.output
    assert client.get_experiment_by_name("e2e") is None
