"""train.stop_when: training ends once an epoch metric, smoothed over epochs, crosses its bound."""

from __future__ import annotations

import os

import pytest
import torch

from altlearn.errors import SpecError, StopMetricMissing
from altlearn.spec.load import validate
from altlearn.spec.stopping import smoothed
from altlearn.training.observers import Observer
from altlearn.training.trainer import Trainer

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

BASE = {
    "name": "stop",
    "seed": 2,
    "data": {"type": "digits", "batch_size": 64},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 32},
            {"type": "tanh"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "rule": {"type": "bp"},
    "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    "tracking": {"alignment_every": 0},
}


def trainer(**train) -> Trainer:
    return Trainer(validate({**BASE, "train": {"epochs": 30, "device": "cpu", **train}}))


class Ends(Observer):
    def __init__(self) -> None:
        self.last_epoch_seen: list[bool] = []
        self.outcome = None

    def on_epoch_end(self, trainer, epoch, metrics) -> None:
        self.last_epoch_seen.append(trainer.last_epoch)

    def on_end(self, trainer, outcome) -> None:
        self.outcome = outcome


def test_training_stops_at_the_first_epoch_whose_smoothed_metric_crosses_the_bound():
    t = trainer(stop_when="train_accuracy >= 0.9", stop_smoothing=0.5)
    ends = Ends()
    t.observers.append(ends)
    t.fit()
    accuracies = [m["train_accuracy"] for m in t.history]
    # the mean by hand: m1 = a1, m_k = 0.5 m_(k-1) + 0.5 a_k
    means = [accuracies[0]]
    for a in accuracies[1:]:
        means.append(0.5 * means[-1] + 0.5 * a)
    assert 1 < t.epoch < 30
    assert means[-1] >= 0.9 and all(m < 0.9 for m in means[:-1])
    assert smoothed(t.history, "train_accuracy", 0.5) == pytest.approx(means[-1])
    assert ends.last_epoch_seen == [False] * (t.epoch - 1) + [True]  # observers know the last epoch
    assert ends.outcome.status == "FINISHED" and ends.outcome.epoch == t.epoch
    assert "train_accuracy smoothed over epochs (0.5)" in ends.outcome.stopped
    # without smoothing the same bound is met earlier: each epoch's own value counts
    plain = trainer(stop_when="train_accuracy >= 0.9")
    plain.fit()
    assert plain.epoch < t.epoch
    assert plain.history[-1]["train_accuracy"] >= 0.9 > plain.history[-2]["train_accuracy"]


def test_a_bound_from_below_stops_on_a_falling_metric_and_an_unmet_one_trains_every_epoch():
    t = trainer(stop_when="test_loss <= 0.5")
    t.fit()
    losses = [m["test_loss"] for m in t.history]
    assert losses[-1] <= 0.5 and all(loss > 0.5 for loss in losses[:-1])
    never = trainer(epochs=3, stop_when="train_loss <= 0.0")  # cross-entropy stays above 0
    ends = Ends()
    never.observers.append(ends)
    never.fit()
    assert never.epoch == 3 and ends.outcome.status == "FINISHED" and ends.outcome.stopped is None


def learned(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """The epochs' metrics without their timings."""
    return [{k: v for k, v in m.items() if k.startswith(("train_", "test_"))} for m in history]


def test_a_resumed_run_stops_where_an_uninterrupted_one_does():
    whole = trainer(stop_when="train_accuracy >= 0.93", stop_smoothing=0.75)
    whole.fit()
    assert whole.epoch > 3

    class Interrupt(Observer):
        def on_epoch_end(self, trainer, epoch, metrics) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    first = trainer(stop_when="train_accuracy >= 0.93", stop_smoothing=0.75)
    first.observers.append(Interrupt())
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    state = first.state()
    second = trainer(stop_when="train_accuracy >= 0.93", stop_smoothing=0.75)
    second.restore(state)
    second.fit()
    assert second.epoch == whole.epoch
    assert learned(second.history) == learned(whole.history)
    for a, b in zip(second.rule.parameters(), whole.rule.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_run_resumed_after_its_stopping_epoch_trains_no_further():
    done = trainer(stop_when="train_accuracy >= 0.9")
    done.fit()
    state = done.state()  # as if killed right after its last epoch, before the run ended
    again = trainer(stop_when="train_accuracy >= 0.9")
    again.restore(state)
    again.fit()
    assert again.epoch == done.epoch and again.stopped == done.stopped


@pytest.mark.parametrize(
    "condition, words",
    [
        ("train_accuracy > 0.9", "expected '<epoch metric> >= <number>'"),
        ("train accuracy >= 0.9", "expected '<epoch metric> >= <number>'"),
        ("train_loss <= low", "the bound 'low' is not a number"),
        ("train_loss <= nan", "the bound must be a finite number"),
        ("train_accuracy >= 99.99", "an accuracy is a fraction from 0 to 1 (0.9999 for 99.99 %), not 99.99"),
        ("train_accuracy", "on a command line, quote it: -s 'train.stop_when=train_accuracy >= ...'"),
        (0.95, "expected text: '<epoch metric> >= <number>'"),
        (
            "train_acuracy >= 0.9",
            "'train_acuracy' is not a metric altlearn logs: did you mean 'train_accuracy'?",
        ),
        ("Test_Loss <= 0.1", "did you mean 'test_loss'?"),
        ("train_acc >= 0.9", "'train_acc' is not a metric altlearn logs: did you mean 'train_accuracy'?"),
        ("Train_Acc >= 0.9", "did you mean 'train_accuracy'?"),
        ("grad_norm <= 10", "grad_norm is logged only with train.clip_grad_norm"),
        ("val_accuracy >= 0.9", "a val_ metric needs a validation split: set data.val_size"),
    ],
)
def test_a_malformed_condition_is_a_problem_at_its_path(condition, words):
    with pytest.raises(SpecError) as error:
        validate({**BASE, "train": {"stop_when": condition}})
    assert [p.path for p in error.value.problems] == ["train.stop_when"]
    assert words in error.value.problems[0].message


def test_the_condition_is_kept_in_its_plain_spelling_and_a_val_metric_works_with_a_split():
    spec = validate(
        {**BASE, "data": {**BASE["data"], "val_size": 200}, "train": {"stop_when": " val_loss<=1e-1 "}}
    )
    assert spec.train.stop_when == "val_loss <= 0.1"
    with pytest.raises(SpecError, match="stop_smoothing"):
        validate({**BASE, "train": {"stop_when": "train_loss <= 0.1", "stop_smoothing": 1.0}})
    with pytest.raises(SpecError) as error:
        validate({**BASE, "train": {"stop_smoothing": 0.5}})
    assert [str(p) for p in error.value.problems] == [
        "train.stop_smoothing: smooths train.stop_when's metric, and train.stop_when is not set"
    ]


def test_a_val_metric_and_a_metric_the_rule_or_clipping_logs_can_stop_training():
    val = Trainer(
        validate(
            {
                **BASE,
                "data": {**BASE["data"], "val_size": 300},
                "train": {"epochs": 30, "stop_when": "val_accuracy >= 0.9"},
            }
        )
    )
    val.fit()
    assert val.epoch < 30 and val.history[-1]["val_accuracy"] >= 0.9 > val.history[-2]["val_accuracy"]
    clipped = trainer(clip_grad_norm=100.0, stop_when="grad_norm <= 1e6")  # logged under its own name
    clipped.fit()
    assert clipped.epoch == 1 and clipped.stopped.startswith("stopped after epoch 1 of 30: grad_norm is")


def test_a_bound_first_met_at_the_last_epoch_is_no_early_stop():
    t = trainer(stop_when="train_accuracy >= 0.9")
    t.fit()
    at_cap = trainer(epochs=t.epoch, stop_when="train_accuracy >= 0.9")
    ends = Ends()
    at_cap.observers.append(ends)
    at_cap.fit()
    assert at_cap.epoch == t.epoch and at_cap.stopped is None and at_cap.stop_note is None  # nor "not met"
    assert ends.outcome.status == "FINISHED" and ends.outcome.stopped is None


def test_a_metric_the_run_does_not_log_is_named_after_the_first_epoch_with_what_it_logs():
    t = trainer(stop_when="trainacc >= 0.9")
    ends = Ends()
    t.observers.append(ends)
    with pytest.raises(StopMetricMissing) as error:
        t.fit()
    assert t.epoch == 1 and ends.last_epoch_seen == [False]  # the epoch reached its observers
    message = str(error.value)
    assert "did you mean 'train_accuracy'?" in message
    assert (
        "its epoch metrics: epoch_cpu_seconds, epoch_seconds, lr, samples_per_second, test_accuracy, test_loss, "
        in message
    )
    assert ends.outcome.status == "FAILED"


def test_validate_says_the_epochs_are_a_cap(tmp_path):
    import yaml
    from click.testing import CliRunner

    from altlearn.cli.commands import main

    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump({**BASE, "train": {"epochs": 299, "stop_when": "train_accuracy>=0.9999"}}))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("up to 299 epochs, until train_accuracy >= 0.9999")
