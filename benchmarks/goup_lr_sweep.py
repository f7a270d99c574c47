"""GO-UP's stable range of lr on real MNIST: reproduces the stability table in docs/rules/goup.md.

Each run trains an MLP with the ``goup`` rule in a loop that follows altlearn's trainer (train-set
normalisation, a seeded shuffle per epoch, batches of --batch-size, the rule's own optimizer, a
per-step lr schedule, the rule's health check every --log-every steps, a stop on a non-finite loss)
and appends one JSON line per epoch to --out. ``--table`` prints the markdown table of a results file.

    python benchmarks/goup_lr_sweep.py --lrs 0.005 0.01 0.02 0.05 0.1 --schedules constant cosine \\
        --epochs 10 --out goup_sweep.jsonl
    python benchmarks/goup_lr_sweep.py --table goup_sweep.jsonl

It uses one CPU thread by default (--threads), as the sweep in the docs did.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from altlearn.data.datasets import MNIST
from altlearn.nn.network import build_network
from altlearn.optim.losses import cross_entropy
from altlearn.registry.registry import get_registry
from altlearn.rules.base import RuleContext
from altlearn.rules.goup import GoUp
from altlearn.spec.load import Block
from altlearn.training.build import flush_denormals


def mlp(hidden: list[int], activation: str, num_classes: int = 10) -> list[Block]:
    registry = get_registry()
    blocks = [("flatten", {})]
    for width in hidden:
        blocks += [("linear", {"out_features": width}), (activation, {})]
    blocks.append(("linear", {"out_features": num_classes}))
    specs = []
    for type_name, options in blocks:
        layer = registry.load("layer", type_name)
        specs.append(Block(type_name, layer, layer.Params(**options)))
    return specs


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base lr at a step: the same per-step cosine as altlearn's schedules."""
    if schedule == "constant":
        return 1.0
    progress = min(step / max(total, 1), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))


def load_mnist() -> tuple[torch.Tensor, ...]:
    splits = MNIST.load(MNIST.Params())
    mean, std = splits.train_x.mean(), splits.train_x.std()  # one scalar each, as the trainer
    return ((splits.train_x - mean) / std, splits.train_y, (splits.test_x - mean) / std, splits.test_y)


def std_ratios(rule: GoUp, initial: dict[str, float]) -> dict[str, float]:
    """Spread of each weight matrix relative to its spread at the start (noise accumulation)."""
    return {
        name: round(p.detach().std().item() / initial[name], 4)
        for name, p in rule.network.named_parameters()
        if name in initial
    }


def run(args: argparse.Namespace, lr: float, schedule: str, data, out) -> None:
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(args.seed)
    network, _ = build_network(mlp(args.hidden, args.activation), (1, 28, 28))
    options = dict(
        lr=lr,
        noise_scale=args.noise_scale,
        source={"type": args.source, **json.loads(args.source_options)},
    )
    loss_fn = cross_entropy
    rule = GoUp(GoUp.Params(**options), RuleContext(network, loss_fn, 10, args.seed))
    optimizer = rule.make_optimizer()
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total = steps_per_epoch * args.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, step, total))
    shuffle = torch.Generator().manual_seed(args.seed)
    initial = {n: p.detach().std().item() for n, p in network.named_parameters() if p.ndim > 1}
    base = dict(
        lr=lr,
        schedule=schedule,
        hidden=args.hidden,
        activation=args.activation,
        batch_size=args.batch_size,
        source=args.source,
        noise_scale=args.noise_scale,
        epochs=args.epochs,
        seed=args.seed,
    )
    step = 0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(train_x), generator=shuffle)
        loss_sum, seen, failure = torch.zeros(()), 0, None
        for first in range(0, len(train_x), args.batch_size):
            index = order[first : first + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            metrics = rule.train_step(train_x[index], train_y[index])
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += metrics["loss"].detach() * len(index)
            seen += len(index)
            if step % args.log_every == 0:
                if not math.isfinite(loss_sum.item()):
                    failure = f"non-finite training loss at step {step}"
                else:
                    failure = rule.health_check()
                if failure:
                    break
        seconds = time.perf_counter() - start
        with torch.no_grad():
            rule.eval()
            correct = sum(
                (rule.inference_module()(test_x[i : i + 1000]).argmax(-1) == test_y[i : i + 1000])
                .sum()
                .item()
                for i in range(0, len(test_x), 1000)
            )
            rule.train()
        record = dict(
            base,
            epoch=epoch,
            test_accuracy=correct / len(test_x),
            train_loss=loss_sum.item() / max(seen, 1),
            seconds=round(seconds, 1),
            noise_budget=round(optimizer.noise_budget, 4),
            std_ratio=std_ratios(rule, initial),
            diverged=failure,
        )
        out.write(json.dumps(record) + "\n")
        out.flush()
        print(
            f"lr={lr} {schedule} epoch {epoch}: test {record['test_accuracy']:.4f} "
            f"loss {record['train_loss']:.4f} budget {record['noise_budget']:.3f} "
            f"{seconds:.0f}s {failure or ''}",
            flush=True,
        )
        if failure:
            return


def table(path: Path) -> str:
    """Markdown: one row per (source, net, batch, schedule, lr), test accuracy per epoch."""
    runs: dict[tuple, list[dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (
            r["source"],
            "-".join(map(str, r["hidden"])),
            r["activation"],
            r["batch_size"],
            r["epochs"],
            r["schedule"],
            r["lr"],
        )
        runs.setdefault(key, []).append(r)
    width = max(r[-1]["epoch"] for r in runs.values())
    header = (
        "| source | hidden | batch | schedule (epochs) | lr | "
        + " | ".join(f"ep {e}" for e in range(1, width + 1))
        + " | sum lr^2 | W std x | outcome |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for key, records in sorted(runs.items()):
        source, hidden, activation, batch, epochs, schedule, lr = key
        last = records[-1]
        accs = [f"{100 * r['test_accuracy']:.2f}" for r in records] + [""] * (width - len(records))
        growth = max(last["std_ratio"].values())
        outcome = (
            f"stopped ep {last['epoch']}: " + last["diverged"].split(":")[0]
            if last["diverged"]
            else f"ok, {sum(r['seconds'] for r in records):.0f} s"
        )
        lines.append(
            f"| {source} | {hidden} {activation} | {batch} | {schedule} ({epochs}) | {lr} | "
            + " | ".join(accs)
            + f" | {last['noise_budget']:.2f} | {growth:.2f} | {outcome} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.1])
    parser.add_argument(
        "--schedules", nargs="+", choices=["constant", "cosine"], default=["constant", "cosine"]
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[1000, 1000])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--noise-scale", type=float, default=1.0)
    parser.add_argument("--source", default="bp")
    parser.add_argument("--source-options", default="{}", help="the source's options, a JSON object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("goup_sweep.jsonl"))
    parser.add_argument("--table", type=Path, help="print the table of this results file and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    flush_denormals()  # as altlearn run does: a denormal weight would time the CPU's slow path
    torch.set_num_threads(args.threads)
    data = load_mnist()
    with args.out.open("a") as out:
        for schedule in args.schedules:
            for lr in args.lrs:
                run(args, lr, schedule, data, out)


if __name__ == "__main__":
    sys.exit(main())
