"""Checkpoints and `altlearn resume`: a resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import io
import os
from pathlib import Path

import fake_rules
import mlflow
import pytest
import torch
import yaml
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins
from altlearn.spec.load import validate
from altlearn.training.trainer import Observer, Trainer

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

MLP = [
    {"type": "flatten"},
    {"type": "linear", "out_features": 32},
    {"type": "relu"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "out_features": 10},
]
TANH_MLP = [
    {"type": "flatten"},
    {"type": "linear", "out_features": 32},
    {"type": "tanh"},
    {"type": "linear", "out_features": 10},
]


def digits_spec(rule: dict, layers=MLP, optimizer=None, epochs: int = 4) -> dict:
    spec = {
        "name": "resume",
        "seed": 5,
        "data": {"type": "digits", "batch_size": 64, "train_subset": 640},
        "network": {"layers": layers},
        "rule": rule,
        "schedule": {"type": "cosine"},
        "train": {"epochs": epochs, "device": "cpu"},
        # measured at step 20, the first step after the epoch-2 snapshot: alignment right after a
        # restore must not shift any random stream either
        "tracking": {"alignment_every": 5},
    }
    if optimizer is not None:
        spec["optimizer"] = optimizer
    return spec


class SnapshotAt(Observer):
    """Keeps a serialised ``Trainer.state()`` taken right after epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.snapshot: bytes | None = None

    def on_epoch_end(self, trainer, epoch, metrics) -> None:
        if epoch == self.epoch:
            buffer = io.BytesIO()
            torch.save(trainer.state(), buffer)
            self.snapshot = buffer.getvalue()


def without_timing(history):
    return [
        {k: v for k, v in m.items() if k not in ("epoch_seconds", "epoch_cpu_seconds", "samples_per_second")}
        for m in history
    ]


@pytest.mark.parametrize(
    "rule, layers, optimizer",
    [
        ({"type": "bp"}, MLP, {"type": "adam", "lr": 0.003}),  # dropout: the global random stream
        ({"type": "dfa"}, TANH_MLP, {"type": "sgd", "lr": 0.05, "momentum": 0.9}),
        ({"type": "goup", "lr": 0.05}, TANH_MLP, None),  # GO-UP's noise generator, no optimizer
        (
            {"type": "ff"},
            [
                {"type": "flatten"},
                {"type": "linear", "out_features": 32},
                {"type": "relu"},
                {"type": "linear", "out_features": 32},
                {"type": "relu"},
            ],
            {"type": "adam", "lr": 0.003},
        ),
        (  # optimizer groups: the head's own lr and weight decay, its momentum in the state too
            {"type": "ff", "inference": "softmax_head"},
            [
                {"type": "flatten"},
                {"type": "linear", "out_features": 32},
                {"type": "relu"},
                {"type": "linear", "out_features": 32},
                {"type": "relu"},
            ],
            {
                "type": "sgd",
                "lr": 0.01,
                "momentum": 0.9,
                "groups": [{"params": "head", "lr": 0.1, "weight_decay": 0.003}],
            },
        ),
    ],
    ids=["bp-dropout-adam", "dfa-sgd-momentum", "goup", "ff", "ff-head-group"],
)
def test_a_restored_trainer_finishes_exactly_like_an_uninterrupted_one(rule, layers, optimizer):
    spec = validate(digits_spec(rule, layers, optimizer))
    torch.set_num_threads(1)
    snapshot = SnapshotAt(epoch=2)
    whole = Trainer(spec, observers=[snapshot])
    whole.fit()

    resumed = Trainer(spec)
    # weights_only=True: what `altlearn resume` loads, so the state must be plain tensors/containers
    resumed.restore(torch.load(io.BytesIO(snapshot.snapshot), weights_only=True))
    assert resumed.epoch == 2 and len(resumed.history) == 2
    resumed.fit()

    assert resumed.epoch == whole.epoch == 4
    assert without_timing(resumed.history) == without_timing(whole.history)
    expected, got = whole.rule.state_dict(), resumed.rule.state_dict()
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, got[key]), key
    # and training after epoch 2 really changed the weights: the comparison above is not vacuous
    early = Trainer(spec)
    early.restore(torch.load(io.BytesIO(snapshot.snapshot), weights_only=False))
    changed = [
        k
        for k, v in early.rule.state_dict().items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.equal(v, expected[k])
    ]
    assert changed


def test_a_checkpoint_of_another_format_is_refused():
    trainer = Trainer(validate(digits_spec({"type": "bp"}, epochs=1)))
    state = trainer.state()
    state["format"] = 999
    with pytest.raises(ValueError, match="format 999"):
        trainer.restore(state)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def with_fake_rules(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    monkeypatch.setattr(fake_rules.InterruptOnceRule, "fired", False)


def cli(tmp_path, *args):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, [*args, "--tracking-uri", uri, "--quiet"])
    return result, mlflow.tracking.MlflowClient(tracking_uri=uri)


def write(tmp_path, spec, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def interrupted_spec(at_step: int, checkpoint_minutes: float = 0) -> dict:
    spec = digits_spec(
        {"type": "interrupt_once", "at_step": at_step}, MLP, {"type": "adam", "lr": 0.003}, epochs=3
    )
    spec["tracking"].update(experiment="resume", log_model=False, checkpoint_minutes=checkpoint_minutes)
    return spec


def test_ctrl_c_then_resume_finishes_the_same_run_as_if_never_interrupted(
    tmp_path, with_fake_rules, monkeypatch
):
    from altlearn.tracking.checkpoints import CheckpointObserver

    # 10 steps per epoch: checkpoint after epoch 1 only, Ctrl-C in epoch 3, so the resumed run
    # repeats epoch 2, which the stopped process had logged already
    save = CheckpointObserver.on_epoch_end

    def save_after_epoch_1_only(self, trainer, epoch, metrics):
        if epoch == 1 or fake_rules.InterruptOnceRule.fired:
            save(self, trainer, epoch, metrics)

    monkeypatch.setattr(CheckpointObserver, "on_epoch_end", save_after_epoch_1_only)
    spec_path = write(tmp_path, interrupted_spec(at_step=25))
    result, client = cli(tmp_path, "run", spec_path)
    assert result.exit_code == 130
    (run,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    assert (
        "continue it after epoch 1 with: " in result.output and f"altlearn resume {run_id}" in result.output
    )
    assert run.data.tags["altlearn.checkpoint_epoch"] == "1"

    result, client = cli(tmp_path, "resume", run_id)
    assert result.exit_code == 0, result.output
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "altlearn.error" not in run.data.tags
    assert run.data.tags["altlearn.checkpoint_epoch"] == "3"
    for key in ("test_accuracy", "train_loss", "lr"):  # each step logged once
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert steps == sorted(set(steps)), key
    assert [m.step for m in client.get_metric_history(run_id, "test_accuracy")] == [1, 2, 3]
    checkpoint = mlflow.artifacts.download_artifacts(
        run_id=run_id,
        artifact_path="checkpoint",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=client.tracking_uri,
    )
    assert sorted(os.listdir(checkpoint)) == [
        "state_dict.pt",
        "trainer_state-epoch0002.pt",  # kept to fall back on, should epoch 3's be damaged
        "trainer_state-epoch0003.pt",
    ]  # epoch 1's is gone
    assert run.data.tags["altlearn.checkpoint_previous"].startswith("checkpoint/trainer_state-epoch0002.pt ")

    # the same spec, never interrupted (the rule only fires once per process)
    other = tmp_path / "uninterrupted"
    other.mkdir()
    result, other_client = cli(other, "run", write(other, interrupted_spec(at_step=25)))
    assert result.exit_code == 0, result.output
    (straight,) = other_client.search_runs([other_client.get_experiment_by_name("resume").experiment_id])
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert [m.value for m in other_client.get_metric_history(straight.info.run_id, key)] == [
            m.value for m in client.get_metric_history(run_id, key)
        ], key


def test_resume_refuses_a_finished_run_an_unknown_run_and_a_run_without_checkpoint(tmp_path, with_fake_rules):
    spec = interrupted_spec(at_step=10_000)
    result, client = cli(tmp_path, "run", write(tmp_path, spec))
    assert result.exit_code == 0, result.output
    (finished,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    result, _ = cli(tmp_path, "resume", finished.info.run_id)
    assert result.exit_code == 2 and "finished" in result.output
    assert "Traceback" not in result.output

    result, _ = cli(tmp_path, "resume", "0123456789abcdef")
    assert result.exit_code == 2 and "no run '0123456789abcdef'" in result.output

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = CliRunner().invoke(
        main, ["resume", finished.info.run_id, "--tracking-uri", f"sqlite:///{elsewhere / 'mlflow.db'}"]
    )
    assert result.exit_code == 2 and "there is no MLflow database" in result.output
    assert not (elsewhere / "mlflow.db").exists()  # and none was created

    # Ctrl-C in the first epoch (10 steps per epoch): no epoch completed, so there is no checkpoint
    spec = interrupted_spec(at_step=5, checkpoint_minutes=10)
    spec["tracking"]["experiment"] = "early"
    result, client = cli(tmp_path, "run", write(tmp_path, spec, "early.yaml"))
    assert result.exit_code == 130
    assert "no epoch had completed, so there is no checkpoint" in result.output
    assert "altlearn resume" not in result.output
    (early,) = client.search_runs([client.get_experiment_by_name("early").experiment_id])
    result, _ = cli(tmp_path, "resume", early.info.run_id)
    assert result.exit_code == 2
    assert "no checkpoint" in result.output and "checkpoint_minutes is 10.0" in result.output

    # a checkpoint that is not altlearn's (or from another version) is refused, not unpickled
    bad = tmp_path / "trainer_state.pt"
    torch.save({"format": 999}, bad)
    client.log_artifact(early.info.run_id, str(bad), "checkpoint")
    result, _ = cli(tmp_path, "resume", early.info.run_id)
    assert result.exit_code == 2 and "cannot be used" in result.output and "format 999" in result.output

    client.delete_run(early.info.run_id)
    result, _ = cli(tmp_path, "resume", early.info.run_id)
    assert result.exit_code == 2 and "is deleted" in result.output


def test_resume_says_when_the_checkpoint_a_run_names_is_gone_from_its_artifacts(tmp_path, with_fake_rules):
    spec = interrupted_spec(at_step=25, checkpoint_minutes=0)  # checkpoints after epochs 1 and 2
    result, client = cli(tmp_path, "run", write(tmp_path, spec))
    assert result.exit_code == 130
    (run,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    folder = Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoint"
    for checkpoint in folder.glob("trainer_state-*.pt"):
        checkpoint.unlink()
    result, _ = cli(tmp_path, "resume", run.info.run_id)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "trainer_state-epoch0002.pt is gone from its artifact store" in result.output, result.output


def test_ctrl_c_during_a_checkpoint_write_waits_until_the_file_is_complete():
    import signal

    from altlearn.tracking.signals import signals_deferred

    finished = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            finished.append(True)  # reached: the signals did not cut the block short
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_a_checkpoint_from_a_gpu_resumes_on_a_cpu_with_a_note():
    spec = validate(digits_spec({"type": "goup", "lr": 0.05}, TANH_MLP, epochs=1))
    trainer = Trainer(spec)
    trainer.fit()
    state = trainer.state()
    state["device"] = "cuda"
    # GO-UP's noise generator as a CUDA run saves it (this machine may have no CUDA at all)
    state["optimizer"]["goup"]["generators"] = {"cuda:0": torch.zeros(16, dtype=torch.uint8)}
    resumed = Trainer(spec)
    if torch.cuda.is_available():
        pytest.skip("checks the CPU side of a GPU checkpoint")
    notes = resumed.restore(state)
    assert len(notes) == 1 and "written on cuda" in notes[0] and "on cpu" in notes[0]
    assert resumed.epoch == 1
    assert torch.equal(
        resumed.rule.state_dict()["network.1.weight"], trainer.rule.state_dict()["network.1.weight"]
    )


def test_ctrl_c_during_a_metrics_write_waits_until_the_write_is_done():
    """Raised inside MLflow's SQLite session, the interrupt could leave the process holding the
    store's write lock (seen: a sweep's summary then waited on it for minutes)."""
    import os
    import signal
    from types import SimpleNamespace

    from altlearn.tracking.metrics import MetricsObserver

    written = []

    def log_batch(run_id, metrics, synchronous):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives in the middle of the write
        written.extend(m.key for m in metrics)

    recorder = SimpleNamespace(run_id="r", client=SimpleNamespace(log_batch=log_batch))
    with pytest.raises(KeyboardInterrupt):
        MetricsObserver(recorder).on_epoch_end(None, 1, {"train_loss": 0.5})
    assert written == ["train_loss"]  # the write finished; the interrupt came after it
