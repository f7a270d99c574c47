"""A data set and a layer written against altlearn.api only, each with its own validated options."""

import torch
from pydantic import Field, PositiveInt
from torch import nn

from altlearn.api import DataInfo, Dataset, DataSplits, Layer, Params


class Blobs(Dataset):
    """Images (1, 4, 4) in [0, 1]: one random prototype per class plus noise."""

    class Params(Params):
        n_train: PositiveInt = Field(300, le=100_000, description="training examples")
        n_test: PositiveInt = Field(150, le=100_000, description="test examples")
        noise: float = Field(0.15, ge=0.0, le=1.0, description="std of the noise added to a prototype")
        classes: int = Field(3, ge=2, le=10, description="number of classes")

    @classmethod
    def info(cls, params):
        return DataInfo((1, 4, 4), params.classes)

    @classmethod
    def load(cls, params):
        generator = torch.Generator().manual_seed(0)
        prototypes = torch.rand(params.classes, 1, 4, 4, generator=generator)  # (K, 1, 4, 4)

        def draw(n):
            labels = torch.randint(0, params.classes, (n,), generator=generator)  # (n,)
            noise = params.noise * torch.randn(n, 1, 4, 4, generator=generator)
            return (prototypes[labels] + noise).clamp(0.0, 1.0), labels

        train_x, train_y = draw(params.n_train)
        test_x, test_y = draw(params.n_test)
        return DataSplits(train_x, train_y, test_x, test_y)


class ScaleModule(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Scale(Layer):
    class Params(Params):
        factor: float = Field(description="multiplies the input", gt=0.0, le=100.0)

    @classmethod
    def build(cls, params, input_shape):
        return ScaleModule(params.factor)
