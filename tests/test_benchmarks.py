"""The benchmark suite runs end to end, and its hand-written baselines are correct training loops.

A throughput comparison against a broken baseline would be meaningless, so each hand-written loop
must reduce the loss on real MNIST, and the feedback-alignment loops must send the output error down
through their random matrices, not through the forward weights (their hidden-layer gradients differ
from backprop's while the output layer's equals it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import hand_loops  # noqa: E402
import suite  # noqa: E402
from hand_loops import CNN, HAND_LOOPS, MLP, build_model, train_round  # noqa: E402

TINY_MLP = MLP((32, 32))
TINY_CNN = CNN((4, 8), kernel=5)
SMALL_MLP = MLP((64, 64))  # 32 units align too slowly under fa/dfa for a 3-epoch check


@pytest.fixture(scope="module")
def mnist_subset():
    """2048 normalised MNIST training images (B, 1, 28, 28) and labels."""
    from altlearn.data.datasets import MNIST

    splits = MNIST.load(MNIST.Params())
    x, y = splits.train_x[:2048], splits.train_y[:2048]
    return (x - x.mean()) / x.std(), y


def test_suite_writes_positive_throughputs_and_memory(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    monkeypatch.setitem(suite.NETWORKS, "tiny", TINY_MLP)
    out = tmp_path / "result.json"
    code = suite.main(
        [
            "--device",
            "cpu",
            "--rules",
            "bp,dfa",
            "--networks",
            "tiny",
            "--steps",
            "3",
            "--rounds",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["rule"], r["network"], r["device"], r["status"]) for r in rows] == [
        ("bp", "tiny", "cpu", "ok"),
        ("dfa", "tiny", "cpu", "ok"),
    ]
    for row in rows:
        assert row["hand_samples_per_s"] > 0 and row["altlearn_samples_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["altlearn_samples_per_s"] / row["hand_samples_per_s"])
        assert len(row["hand_round_seconds"]) == len(row["altlearn_round_seconds"]) == 1
        if row["memory_method"] != "unavailable":
            assert row["hand_peak_mib"] >= 0 and row["altlearn_peak_mib"] >= 0
    assert result["machine"]["threads"] == 1
    assert result["summary"]["altlearn_bp_over_hand_bp_tiny_cpu"]["ratio"] == rows[0]["ratio"]
    printed = capsys.readouterr().out
    assert "| bp | tiny | cpu | eager-fp32 |" in printed


def test_altlearn_variants_are_each_compared_with_the_same_hand_rounds():
    torch.set_num_threads(1)
    variants = (suite.EAGER, suite.Variant("off", "bf16"))
    rows = suite.measure_cell(
        "bp", "tiny", "cpu", steps=2, rounds=2, net=TINY_MLP, variants=variants, log=lambda line: None
    )
    assert [row["variant"] for row in rows] == ["eager-fp32", "eager-bf16"]
    assert rows[0]["hand_round_seconds"] == rows[1]["hand_round_seconds"]
    assert rows[0]["altlearn_round_seconds"] != rows[1]["altlearn_round_seconds"]
    assert suite.variants_for("cpu", True, ["fp32", "bf16"]) == (suite.EAGER,)  # compile: CUDA only
    assert [v.name for v in suite.variants_for("cuda", True, ["fp32", "bf16"])] == [
        "eager-fp32",
        "eager-bf16",
        "reduce-overhead-fp32",
        "reduce-overhead-bf16",
    ]


def test_rule_that_rejects_the_network_is_reported_not_measured():
    rows = suite.measure_cell(
        "ifa", "tiny-cnn", "cpu", steps=2, rounds=1, net=TINY_CNN, log=lambda line: None
    )
    assert rows[0]["status"] == "not applicable"
    assert "MaxPool2d" in rows[0]["note"]


def test_a_failing_rule_is_reported_and_the_others_still_measured(monkeypatch):
    class Broken(hand_loops.Backprop):
        def step(self, x, y):
            raise RuntimeError("broken on purpose")

    monkeypatch.setitem(HAND_LOOPS, "bp", Broken)
    rows = suite.measure_network(
        ["bp", "dfa"], "tiny", "cpu", steps=2, rounds=1, net=TINY_MLP, log=lambda line: None
    )
    assert [(row["rule"], row["status"]) for row in rows] == [("bp", "error"), ("dfa", "ok")]
    assert "broken on purpose" in rows[0]["note"]


CASES = [(rule, SMALL_MLP) for rule in HAND_LOOPS] + [
    (rule, TINY_CNN) for rule in ("bp", "fa", "dfa", "goup")
]


@pytest.mark.parametrize("rule,net", CASES, ids=[f"{r}-{type(n).__name__}" for r, n in CASES])
def test_hand_written_loop_reduces_the_loss(rule, net, mnist_subset):
    torch.set_num_threads(1)
    x, y = mnist_subset
    torch.manual_seed(0)
    loop = HAND_LOOPS[rule](net, torch.device("cpu"), **({"lr": 0.05} if rule == "goup" else {}))
    shuffle = torch.Generator().manual_seed(0)
    first, _, last = [train_round(loop, x, y, 128, shuffle).item() for _ in range(3)]
    assert last < 0.85 * first, f"{rule}: summed loss {first:.2f} -> {last:.2f}"


@pytest.mark.parametrize("rule", ["fa", "dfa", "ifa"])
def test_feedback_loops_differ_from_backprop_below_the_output_layer(rule, mnist_subset):
    x, y = mnist_subset[0][:64], mnist_subset[1][:64]
    torch.manual_seed(1)
    loop = HAND_LOOPS[rule](TINY_MLP, torch.device("cpu"))
    params = loop.optimizer.param_groups[0]["params"]  # weight, bias per layer, in network order
    reference = build_model(TINY_MLP)
    with torch.no_grad():
        for mine, theirs in zip(reference.parameters(), params, strict=True):
            mine.copy_(theirs)
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    loop.step(x, y)
    grads, bp = [p.grad for p in params], [p.grad for p in reference.parameters()]
    torch.testing.assert_close(grads[-2], bp[-2])  # output weight: its exact local gradient
    torch.testing.assert_close(grads[-1], bp[-1])
    assert not torch.allclose(grads[0], bp[0], atol=1e-6)  # the first layer's error is not BP's


def test_forward_forward_baseline_matches_altleans_ff_network_shape():
    # ff trains the MLP without its output layer; the suite's spec must drop it too.
    layers = suite.spec_layers(TINY_MLP, with_output=False)
    assert layers[-1] == {"type": "relu"}
    assert [layer.out_features for layer in hand_loops.ForwardForward(TINY_MLP, "cpu").layers] == [32, 32]


@pytest.mark.usefixtures("one_thread")  # the script sets torch's thread count; the fixture restores it
def test_resnet_rule_step_benchmark_runs_every_rule_on_a_resnet(capsys):
    import resnet_rule_step

    network = resnet_rule_step.resnet_cifar(blocks_per_stage=1, in_channels=1)
    assert sum(isinstance(m, resnet_rule_step.Residual) for m in network) == 3  # one block per stage
    median = resnet_rule_step.main(
        ["--batch", "4", "--repeats", "1", "--blocks-per-stage", "1", "--input", "1x8x8"]
    )
    assert set(median) == {"bp", "fa", "dfa"} and all(wall > 0 and cpu >= 0 for wall, cpu in median.values())
    assert "ResNet-8" in capsys.readouterr().out


def test_optimizer_step_benchmark_times_both_kernels_on_the_same_update(monkeypatch, capsys):
    import optimizer_step

    monkeypatch.setitem(optimizer_step.NETWORKS, "tiny", [(16, 8), (16,)])
    rows = optimizer_step.main(["--networks", "tiny", "--repeats", "2"])
    assert [row["optimizer"] for row in rows] == ["adam", "adamw"]
    for row in rows:
        assert row["parameters_m"] == pytest.approx(144 / 1e6)
        assert row["default_ms"] > 0 and row["fused_ms"] > 0
        assert row["max_difference"] < 1e-5  # the same update, to rounding
    assert "tiny" in capsys.readouterr().out
