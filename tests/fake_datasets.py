"""Data sets for shape and loading tests, registered as an in-process plugin: a flat 2-D problem
whose loader takes the spec's seed, an old-style loader without one, and loaders that break
their own contract (wrong shape, NaN values)."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from altlearn.api import DataInfo, Dataset, DataSplits, Params, hookimpl

#: the seeds the spiral loader was called with, in order (tests read it)
SEEDS_SEEN: list[int] = []


def two_spirals(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals in the plane: (n, 2) points, (n,) labels; not linearly separable."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    radius = torch.rand(n, generator=generator) * 0.9 + 0.1
    angle = radius * 2.5 * math.pi + labels * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return points + 0.02 * torch.randn(n, 2, generator=generator), labels


class Spirals(Dataset):
    class Params(Params):
        n: int = Field(1200, ge=10)

    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((2,), 2)

    @classmethod
    def load(cls, params, seed: int = 0) -> DataSplits:
        SEEDS_SEEN.append(seed)
        generator = torch.Generator().manual_seed(seed)
        train_x, train_y = two_spirals(params.n, generator)
        test_x, test_y = two_spirals(params.n // 4, generator)
        return DataSplits(train_x, train_y, test_x, test_y)


class OldStyle(Spirals):
    """A loader written before loaders received the seed: still called, as load(params)."""

    @classmethod
    def load(cls, params) -> DataSplits:
        generator = torch.Generator().manual_seed(5)
        return DataSplits(*two_spirals(params.n, generator), *two_spirals(50, generator))


class WrongShape(Spirals):
    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((1, 2, 1), 2)  # declares images, delivers flat points


class NotFinite(Spirals):
    @classmethod
    def load(cls, params, seed: int = 0) -> DataSplits:
        splits = super().load(params, seed)
        splits.train_x[7, 1] = float("nan")
        return splits


class BadShapeInfo(Spirals):
    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((2, 3), 2)


@hookimpl
def altlearn_register_datasets(register):
    for name, cls in (
        ("spirals", Spirals),
        ("old_style", OldStyle),
        ("wrong_shape", WrongShape),
        ("not_finite", NotFinite),
        ("bad_shape_info", BadShapeInfo),
    ):
        register(name, cls, summary="a test data set")
