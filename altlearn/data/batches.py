"""Data on the training device: normalised once, split, and served as shuffled minibatches.

Small data sets (MNIST, CIFAR-10) fit on any device, so they are moved there once: a step does no
host-to-device copy, and a shuffle is one index permutation per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from altlearn.components.base import DataSplits


@dataclass
class DeviceData:
    train_x: torch.Tensor  # (N, C, H, W) or (N, D), normalised
    train_y: torch.Tensor  # (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    mean: torch.Tensor  # (C,) per channel, or (D,) per feature, of the training split (exported model)
    std: torch.Tensor


def prepare(splits: DataSplits, options, seed: int, device: torch.device) -> DeviceData:
    """Subset, hold out validation examples, normalise with training statistics, move to device."""
    train_x, train_y = splits.train_x, splits.train_y
    test_x, test_y = splits.test_x, splits.test_y
    if options.train_subset:
        train_x, train_y = train_x[: options.train_subset], train_y[: options.train_subset]
    if options.test_subset:
        test_x, test_y = test_x[: options.test_subset], test_y[: options.test_subset]
    train_x, train_y, val_x, val_y = _hold_out(train_x, train_y, options.val_size, seed)

    # Images: one statistic per channel (over examples and pixels); flat inputs: per feature.
    over = tuple(d for d in range(train_x.ndim) if d != 1)
    if options.normalize:
        mean = train_x.mean(dim=over)  # (C,) or (D,)
        std = train_x.std(dim=over).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(train_x.shape[1]), torch.ones(train_x.shape[1])
    example_ndim = train_x.ndim - 1

    def ready(x: torch.Tensor) -> torch.Tensor:
        return ((x - per_example(mean, example_ndim)) / per_example(std, example_ndim)).to(device)

    return DeviceData(
        train_x=ready(train_x),
        train_y=train_y.to(device),
        test_x=ready(test_x),
        test_y=test_y.to(device),
        val_x=None if val_x is None else ready(val_x),
        val_y=None if val_y is None else val_y.to(device),
        mean=mean,
        std=std,
    )


def _hold_out(x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int):
    """(train_x, train_y, val_x, val_y): ``val_size`` seeded examples held out of the training split."""
    if not val_size:
        return x, y, None, None
    if val_size >= len(x):
        from altlearn.errors import Problem, SpecError

        message = f"{val_size} leaves no training examples (the training split has {len(x)})"
        raise SpecError([Problem("data.val_size", message)])
    # A seeded permutation, so the held-out examples do not depend on the file's class order.
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def per_example(stat: torch.Tensor, example_ndim: int) -> torch.Tensor:
    """A (C,) or (D,) statistic shaped to broadcast over a batch: (1, C, 1, 1) or (1, D)."""
    return stat.view(1, -1, *([1] * (example_ndim - 1)))


def shuffled_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Minibatches in a fresh seeded order; the last batch may be smaller."""
    order = torch.randperm(len(x), generator=generator).to(x.device)
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        yield x.index_select(0, index), y.index_select(0, index)


def ordered_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
