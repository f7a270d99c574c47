"""Time one training step of FA and DFA against BP on a ResNet-20-shaped network (CIFAR-style).

He et al. (2016)'s CIFAR ResNet-20, built from torch modules and ``altlearn.nn.composite.Residual``: a
3x3 conv stem with 16 channels, 3 stages of 3 basic blocks (two 3x3 convs with batch norm) with 16,
32 and 64 channels, a strided first block with a 1x1-conv + batch-norm projection shortcut in
stages 2 and 3, global average pooling and a linear layer. Targets (issue 14): FA <= 1.3x BP
(its feedback route recomputes the input gradient with B instead of W), DFA <= 1.0x BP (no error
crosses a block boundary backwards). All rules run in the same process on the same batch,
interleaved, so machine load affects them alike; the median over repeats is reported.

    python benchmarks/resnet_rule_step.py [--threads 1] [--batch 64] [--repeats 10] [--input 3x32x32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from altlearn.nn.composite import Residual
from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.training.build import flush_denormals

RULES = {"bp": Backprop, "fa": FeedbackAlignment, "dfa": DirectFeedbackAlignment}


def conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


def basic_block(c_in: int, c_out: int, stride: int) -> Residual:
    body = nn.Sequential(*conv_bn(c_in, c_out, stride), nn.ReLU(), *conv_bn(c_out, c_out))
    shortcut = (
        nn.Sequential(*conv_bn(c_in, c_out, stride, kernel=1)) if stride != 1 or c_in != c_out else None
    )
    return Residual(body, shortcut, nn.ReLU())


def resnet_cifar(blocks_per_stage: int = 3, in_channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    """ResNet-(6n+2) for 32x32 (or 28x28) inputs: n = ``blocks_per_stage`` (3 gives ResNet-20)."""
    layers: list[nn.Module] = [*conv_bn(in_channels, 16), nn.ReLU()]
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            layers.append(basic_block(c_in, width, 2 if stage > 0 and block == 0 else 1))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


def time_steps(rules: dict, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of one train_step per rule, interleaved after two warm-up steps.

    The CPU time of this process is reported beside the wall time because on a machine shared
    with other jobs the wall time also counts the time other processes held the cores.
    """

    def step(rule) -> tuple[float, float]:
        for p in rule.parameters():
            p.grad = None
        wall, cpu = time.perf_counter(), time.process_time()
        rule.train_step(x, y)
        return time.perf_counter() - wall, time.process_time() - cpu

    for rule in rules.values():
        step(rule), step(rule)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rules}
    for _ in range(repeats):
        for name, rule in rules.items():
            times[name].append(step(rule))
    return {
        name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--input", default="3x32x32", help="C x H x W of one example, e.g. 1x28x28")
    parser.add_argument("--blocks-per-stage", type=int, default=3, help="3: ResNet-20, 9: ResNet-56")
    args = parser.parse_args(argv)
    flush_denormals()  # as altlearn run does: a denormal weight would time the CPU's slow path
    torch.set_num_threads(args.threads)
    shape = tuple(int(n) for n in args.input.split("x"))
    torch.manual_seed(0)
    rules = {}
    for name, cls in RULES.items():
        network = resnet_cifar(args.blocks_per_stage, shape[0])
        rules[name] = cls(cls.Params(), RuleContext(network, cross_entropy, 10, 0)).train()
    x, y = torch.randn(args.batch, *shape), torch.randint(0, 10, (args.batch,))
    median = time_steps(rules, x, y, args.repeats)
    depth = 6 * args.blocks_per_stage + 2
    print(
        f"ResNet-{depth} (batch norm), input {args.input}, batch {args.batch}, {args.threads} thread(s), cpu"
    )
    print(f"  median of {args.repeats} steps    wall ms   CPU ms   wall/bp   CPU/bp")
    bp_wall, bp_cpu = median["bp"]
    for name, (wall, cpu) in median.items():
        print(f"  {name:4s} {wall * 1000:22.1f} {cpu * 1000:8.1f} {wall / bp_wall:9.2f} {cpu / bp_cpu:8.2f}")
    return median


if __name__ == "__main__":
    main()
