"""train.precision and train.compile change speed, not results (within tolerance)."""

from __future__ import annotations

import pytest

from altlearn.spec import validate
from altlearn.train import Trainer

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
