"""Where training runs: the device a spec asks for, and the numeric precision used on it."""

from __future__ import annotations

import contextlib

import torch

from altlearn.errors import DeviceUnavailable


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            "train.device is cuda but torch sees no CUDA device "
            f"(torch {torch.__version__}); use train.device=auto or cpu"
        )
    return torch.device(choice)


def precision_context(choice: str, device: torch.device):
    """Set matmul precision; return a factory of the autocast context for steps and evaluation."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = choice == "tf32"
        torch.backends.cudnn.allow_tf32 = choice == "tf32"
    if choice == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (timing an epoch); nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class MetricSums:
    """Batch-size-weighted sums of per-batch metrics, kept on the device: adding costs no host
    sync and no new tensors; ``means()`` reads each sum once."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, torch.Tensor], batch: int) -> None:
        self.count += batch
        for key, value in metrics.items():
            if key in self.sums:
                self.sums[key].add_(value.detach().float(), alpha=batch)
            else:
                self.sums[key] = value.detach().float() * batch

    def means(self) -> dict[str, float]:
        return {key: value.item() / self.count for key, value in self.sums.items()}
