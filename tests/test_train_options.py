"""train.precision and train.compile change speed, not results (within tolerance)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from altlearn.errors import SpecError
from altlearn.spec.load import validate
from altlearn.training.observers import Observer
from altlearn.training.trainer import Trainer

BASE = {
    "name": "options",
    "seed": 5,
    "data": {"type": "digits", "batch_size": 64},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 48},
            {"type": "tanh"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    "tracking": {"alignment_every": 0},
}


def final_metrics(rule: str, **train) -> dict[str, float]:
    spec = validate({**BASE, "rule": {"type": rule}, "train": {"epochs": 2, "device": "cpu", **train}})
    trainer = Trainer(spec)
    return trainer.fit()


@pytest.mark.parametrize("rule", ["bp", "fa", "dfa"])
def test_bf16_autocast_stays_close_to_fp32(rule):
    fp32 = final_metrics(rule)
    bf16 = final_metrics(rule, precision="bf16")
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], abs=0.05)
    assert bf16["test_accuracy"] == pytest.approx(fp32["test_accuracy"], abs=0.03)
    assert bf16["test_accuracy"] > 0.8


def test_compile_flag_accepts_booleans():
    spec = validate({**BASE, "rule": {"type": "bp"}, "train": {"compile": True}})
    assert spec.train.compile == "default"
    spec = validate({**BASE, "rule": {"type": "bp"}, "train": {"compile": False}})
    assert spec.train.compile == "off"


@pytest.mark.slow
def test_compiled_step_matches_eager():
    # torch.compile on the CPU generates and builds C++ (tens of seconds); one small case suffices.
    eager = final_metrics("bp")
    compiled = final_metrics("bp", compile="default")
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert compiled[key] == pytest.approx(eager[key], abs=1e-4), key


class FirstStep(Observer):
    """Keeps the parameters before the first step and before the second: the first update."""

    def __init__(self) -> None:
        self.snapshots: list[torch.Tensor] = []

    def on_batch_start(self, trainer, step, x, y) -> None:
        if step < 2:
            self.snapshots.append(parameters_to_vector(trainer.rule.parameters()).detach().clone())

    def update(self) -> torch.Tensor:
        return self.snapshots[1] - self.snapshots[0]


def first_update(rule: str, **train) -> tuple[torch.Tensor, dict[str, float]]:
    spec = validate(
        {
            **BASE,
            "rule": {"type": rule},
            "optimizer": {"type": "sgd", "lr": 0.5},  # plain SGD: the update is -lr * the signal
            "train": {"epochs": 1, "device": "cpu", **train},
        }
    )
    observer = FirstStep()
    metrics = Trainer(spec, observers=[observer]).fit()
    return observer.update(), metrics


@pytest.mark.parametrize("rule", ["bp", "dfa"])
def test_clip_grad_norm_scales_the_update_to_the_limit(rule):
    free, free_metrics = first_update(rule)
    signal_norm = free.norm().item() / 0.5
    limit = signal_norm / 4  # the first step's signal is 4x over the limit
    clipped, metrics = first_update(rule, clip_grad_norm=limit)
    # same direction, scaled to the limit: the step is a quarter of the free one
    assert clipped.norm().item() == pytest.approx(0.5 * limit, rel=1e-5)
    torch.testing.assert_close(clipped, free / 4, rtol=1e-4, atol=1e-7)
    assert "grad_norm" not in free_metrics and "clipped_fraction" not in free_metrics
    assert metrics["grad_norm"] > 0
    assert 0 < metrics["clipped_fraction"] <= 1  # the first step at least was clipped


def test_clip_grad_norm_above_the_signal_changes_nothing():
    free, free_metrics = first_update("fa")
    loose, metrics = first_update("fa", clip_grad_norm=1e6)
    torch.testing.assert_close(loose, free, rtol=0, atol=0)
    assert metrics["test_accuracy"] == free_metrics["test_accuracy"]
    assert metrics["grad_norm"] < 1e6
    assert metrics["clipped_fraction"] == 0


@pytest.mark.parametrize("rule", ["dfa", "goup"])  # goup steps with its own optimizer
def test_a_limit_below_every_norm_clips_every_step(rule):
    spec = {**BASE, "rule": {"type": rule}, "train": {"epochs": 1, "device": "cpu", "clip_grad_norm": 1e-9}}
    if rule == "goup":
        spec.pop("optimizer")
    metrics = Trainer(validate(spec)).fit()
    assert metrics["clipped_fraction"] == 1.0
    assert metrics["grad_norm"] > 1e-6


@pytest.mark.parametrize(
    "bad, reason",
    [
        (0, "greater than 0"),
        (-1.0, "greater than 0"),
        (".inf", "finite number"),
        (True, "true is a yes/no value, not a number"),
        ("big", "a valid number"),
    ],
)
def test_clip_grad_norm_must_be_a_positive_number(bad, reason):
    with pytest.raises(SpecError) as info:
        validate(
            {
                **BASE,
                "rule": {"type": "bp"},
                "train": {"clip_grad_norm": float("inf") if bad == ".inf" else bad},
            }
        )
    (problem,) = info.value.problems
    assert problem.path == "train.clip_grad_norm"
    assert reason in problem.message


def test_a_trainer_flushes_denormal_floats_to_zero():
    # Denormals (below 1.2e-38) multiply ~100x slower on x86 CPUs; weights decaying to zero make them
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode")
    try:
        tiny = torch.tensor([1.0e-39])
        assert (tiny * 1.0).item() != 0.0  # this CPU computes denormals unless told not to
        spec = validate({**BASE, "rule": {"type": "bp"}, "train": {"epochs": 1, "device": "cpu"}})
        Trainer(spec)
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(True)  # as every trainer leaves it
