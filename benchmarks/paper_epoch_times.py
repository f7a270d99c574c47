"""What one trial of each specs/papers/ set-up costs: one timed epoch on a training subset, scaled up.

For every spec (or those named) and every `altlearn run` variant its header lists (the rule
choices of a set-up), this builds the trainer, trains one epoch on the first --subset training
images, evaluates once on the whole test set, and prints

    train seconds per full epoch = measured training seconds x (full training set / subset)
    trial estimate               = (train seconds per full epoch + evaluation seconds) x epochs

The scaling is linear because a step's cost does not depend on which images it sees; start-up
(data loading, the first step's allocations) is left out of the epoch and is a few seconds per
trial. Alignment measurements are switched off, as in a sweep they are a small extra.

    python benchmarks/paper_epoch_times.py                       # every spec, 6000 images, 1 thread
    python benchmarks/paper_epoch_times.py sanfiz2021_lenet_mnist --subset 3000 --device cuda

A spec that does not validate (e.g. one waiting for a grammar change) is reported and skipped.
"""

from __future__ import annotations

import argparse
import re
import shlex
import time
from pathlib import Path

PAPERS = Path(__file__).resolve().parent.parent / "specs" / "papers"


def header_commands(spec: Path) -> list[list[str]]:
    """The `altlearn run` commands in the spec's opening comment, as argument lists (after `run`).

    A trailing note in parentheses, such as `(BP)`, is not part of the command.
    """
    commands = []
    for line in spec.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = re.sub(r"\s+\([^()]*\)$", "", line.lstrip("#").strip())
        if text.startswith("altlearn run "):
            commands.append(shlex.split(text)[2:])
    return commands


def overrides_of(command: list[str]) -> list[str]:
    """The values of the `-s` options of a command (the path is its first argument)."""
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-s"]


def time_trial(spec_path: Path, overrides: list[str], subset: int, device: str, threads: int) -> dict:
    import torch

    from altlearn.spec.load import load_spec
    from altlearn.training.trainer import Trainer

    full = load_spec(spec_path, overrides)
    n_full = full.data_options.train_subset or 60000  # every set-up here trains on MNIST-sized data
    timed = [
        *overrides,
        f"data.train_subset={min(subset, n_full)}",
        f"train.device={device}",
        f"train.threads={threads}",
        "tracking.alignment_every=0",
    ]
    trainer = Trainer(load_spec(spec_path, timed))
    metrics = trainer.train_epoch(1)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.evaluate_all()
    eval_seconds = time.perf_counter() - start
    train_full = metrics["epoch_seconds"] * n_full / min(subset, n_full)
    return {
        "epochs": full.train.epochs,
        "train_s_per_epoch": train_full,
        "eval_s": eval_seconds,
        "trial_h": (train_full + eval_seconds) * full.train.epochs / 3600,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="spec names (file stems) in specs/papers; default all")
    parser.add_argument("--subset", type=int, default=6000, help="training images in the timed epoch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    specs = [PAPERS / f"{n}.yaml" for n in args.names] or sorted(PAPERS.glob("*.yaml"))
    print(f"{'spec and overrides':<95} {'epochs':>6} {'train s/ep':>10} {'eval s':>7} {'trial h':>8}")
    for spec in specs:
        for command in header_commands(spec) or [[str(spec)]]:
            label = " ".join([spec.stem, *overrides_of(command)])
            try:
                row = time_trial(spec, overrides_of(command), args.subset, args.device, args.threads)
            except Exception as exc:  # a spec waiting for a grammar change, a missing plugin...
                print(f"{label:<95} skipped: {str(exc).splitlines()[0]}")
                continue
            print(
                f"{label:<95} {row['epochs']:>6} {row['train_s_per_epoch']:>10.1f} "
                f"{row['eval_s']:>7.1f} {row['trial_h']:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
