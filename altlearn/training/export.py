"""The trained model as a user gets it: raw [0, 1] inputs in, class scores out, on the CPU.

Training sees normalised data (altlearn.data.batches.prepare), so the exported model carries the
training set's normalisation in front of the rule's inference module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from altlearn.data.batches import DeviceData, per_example
from altlearn.rules.base import Rule


class Normalize(nn.Module):
    """Applies the training set's normalisation, so the exported model takes raw [0, 1] images."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, example_ndim: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", per_example(mean, example_ndim).clone())
        self.register_buffer("std", per_example(std, example_ndim).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def inference_model(rule: Rule, data: DeviceData, input_shape: tuple[int, ...]) -> nn.Module:
    """Normalisation + the rule's inference module, on the CPU, in eval mode."""
    model = nn.Sequential(Normalize(data.mean, data.std, len(input_shape)), rule.inference_module())
    return model.to("cpu").eval()


def example_input(data: DeviceData, input_shape: tuple[int, ...]) -> np.ndarray:
    """Two test examples as the exported model takes them: un-normalised, back in [0, 1]."""
    ndim = len(input_shape)
    raw = data.test_x[:2].to("cpu") * per_example(data.std, ndim)
    return (raw + per_example(data.mean, ndim)).numpy()
