"""Time one training step of DFA against BP (and FA, IFA) on a 784-2000-2000-2000-2000-10 tanh MLP.

DFA sends the output error to every hidden layer directly, so its backward pass skips the
(B, n_l) x (n_l, n_{l-1}) products that carry the error down through the forward weights: it should
cost clearly less than BP. Both run in the same process on the same data, interleaved, and the
median over repeats is reported.

    python benchmarks/dfa_vs_bp_step.py [--threads 1] [--batch 128] [--repeats 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from altlearn.optim.losses import cross_entropy
from altlearn.rules.backprop import Backprop
from altlearn.rules.base import RuleContext
from altlearn.rules.feedback.dfa import DirectFeedbackAlignment
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.feedback.ifa import IndirectFeedbackAlignment
from altlearn.training.build import flush_denormals

RULES = {
    "bp": Backprop,
    "dfa": DirectFeedbackAlignment,
    "fa": FeedbackAlignment,
    "ifa": IndirectFeedbackAlignment,
}


def make_network(widths=(784, 2000, 2000, 2000, 2000, 10)) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rules", default="bp,dfa,fa,ifa")
    args = parser.parse_args()
    flush_denormals()  # as altlearn run does: a denormal weight would time the CPU's slow path
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.rules.split(",")

    torch.manual_seed(0)
    rules = {}
    for name in names:
        cls = RULES[name]
        rules[name] = cls(cls.Params(), RuleContext(make_network(), cross_entropy, 10, 0)).to(device)
    x = torch.randn(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step(rule) -> float:
        for p in rule.parameters():
            p.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        rule.train_step(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for rule in rules.values():  # warm-up
        for _ in range(3):
            step(rule)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):  # interleaved, so machine load affects every rule alike
        for name, rule in rules.items():
            times[name].append(step(rule))

    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"784-2000-2000-2000-2000-10 tanh MLP, batch {args.batch}, {args.threads} thread(s), {device}")
    for name in names:
        print(f"  {name:4s} step: {median[name] * 1000:8.2f} ms (median of {args.repeats})")
    if "bp" in median:
        for name in names:
            if name != "bp":
                print(f"  {name}/bp ratio: {median[name] / median['bp']:.3f}")


if __name__ == "__main__":
    main()
