"""altlearn's backprop training throughput against a minimal hand-written PyTorch loop.

Same process, same MLP (784-1000-1000-10 ReLU), same real MNIST tensors on the same device, same
optimizer (Adam) and batch size. The two are timed in alternation, several rounds, and the best
round of each is compared, so a noisy neighbour on the machine affects both alike.

    python benchmarks/overhead.py                 # CPU, 3 rounds of 100 steps each
    python benchmarks/overhead.py --device cuda --steps 500

Prints both throughputs (samples/s) and altlearn's ratio to the hand loop; exits 1 if altlearn is
slower than --max-slowdown (default 10%).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from altlearn.spec.load import validate
from altlearn.training.trainer import Trainer

HIDDEN = 1000


def spec_dict(batch_size: int, device: str, subset: int) -> dict:
    return {
        "name": "overhead-benchmark",
        "seed": 0,
        "data": {"type": "mnist", "batch_size": batch_size, "train_subset": subset, "test_subset": 1000},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": HIDDEN},
                {"type": "relu"},
                {"type": "linear", "out_features": HIDDEN},
                {"type": "relu"},
                {"type": "linear", "out_features": 10},
            ]
        },
        "rule": {"type": "bp"},
        "optimizer": {"type": "adam", "lr": 0.001},
        "schedule": {"type": "cosine"},
        "train": {"epochs": 1000, "device": device},  # many epochs: the schedule barely moves
        "tracking": {"alignment_every": 0},
    }


def hand_written_epoch(model, optimizer, x, y, batch_size, generator) -> float:
    """The minimal loop a researcher would write: shuffle, forward, loss, backward, step."""
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total = torch.zeros((), device=x.device)
    for i in range(0, len(x), batch_size):
        index = order[i : i + batch_size]
        xb, yb = x.index_select(0, index), y.index_select(0, index)
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    total.item()  # one sync at the end, as altlearn does per logging interval
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-slowdown", type=float, default=0.10)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    subset = args.steps * args.batch_size
    trainer = Trainer(validate(spec_dict(args.batch_size, args.device, subset)))
    x, y = trainer.data.train_x, trainer.data.train_y

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, 10),
    ).to(trainer.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)  # as altlearn's
    generator = torch.Generator().manual_seed(0)

    # Warm up both (allocator, kernels), then alternate timed rounds.
    hand_written_epoch(model, optimizer, x, y, args.batch_size, generator)
    trainer.train_epoch(0)
    hand_times, altlearn_times = [], []
    for _ in range(args.rounds):
        hand_times.append(hand_written_epoch(model, optimizer, x, y, args.batch_size, generator))
        altlearn_times.append(trainer.train_epoch(0)["epoch_seconds"])

    hand = len(x) / min(hand_times)
    ours = len(x) / min(altlearn_times)
    ratio = ours / hand
    print(
        f"device {trainer.device}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
        f"{len(x)} samples per round, best of {args.rounds} rounds"
    )
    print(f"hand-written loop : {hand:10.0f} samples/s")
    print(f"altlearn (bp)     : {ours:10.0f} samples/s")
    print(
        f"ratio altlearn/hand: {ratio:.3f}  ({(1 - ratio) * 100:+.1f}% slower)"
        if ratio < 1
        else f"ratio altlearn/hand: {ratio:.3f}  (not slower)"
    )
    if ratio < 1 - args.max_slowdown:
        print(f"FAIL: altlearn is more than {args.max_slowdown:.0%} slower", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
