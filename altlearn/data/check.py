"""What a data set must deliver, checked where it enters: its description (``info``) when a spec is
validated, its arrays when it is loaded. A plugin's mistake becomes a message naming the data set
and its package, never a traceback deep in training.

Examples are images ``(C, H, W)`` or flat feature vectors ``(D,)``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from altlearn.components.base import DataInfo
from altlearn.errors import DataUnavailable

if TYPE_CHECKING:
    from altlearn.components.base import DataSplits
    from altlearn.components.ref import Block


def describe_problem(info: Any) -> str | None:
    """Why ``info`` is not a usable DataInfo, or None."""
    if not isinstance(info, DataInfo):
        return f"describes itself as {info!r}, not a DataInfo"
    shape = info.input_shape
    if not (
        isinstance(shape, tuple)
        and len(shape) in (1, 3)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        return (
            f"declares the example shape {shape!r}; it must be (channels, height, width) for images "
            "or (features,) for flat inputs, with positive whole sizes"
        )
    if not isinstance(info.num_classes, int) or info.num_classes < 2:
        return f"declares {info.num_classes!r} classes; a classification data set needs at least 2"
    return None


def load_splits(data: Block, info: DataInfo, seed: int) -> DataSplits:
    """The data set's splits, checked against ``info``; DataUnavailable saying what is wrong.

    The spec's seed reaches a loader whose ``load`` takes a ``seed`` argument (for its own random
    split or synthetic draw); a loader without one is called as before.
    """
    load = data.component.load
    takes_seed = "seed" in inspect.signature(load).parameters
    splits = load(data.params, seed=seed) if takes_seed else load(data.params)
    check_splits(splits, info, f"data set {data.type!r} (package {data.package})")
    return splits


def check_splits(splits: Any, info: DataInfo, what: str) -> None:
    """Each split's arrays have the declared example shape, matching labels in range, finite values."""
    import torch

    for name in ("train", "test"):
        x, y = getattr(splits, f"{name}_x", None), getattr(splits, f"{name}_y", None)
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise DataUnavailable(
                f"{what}: its {name} split is not a pair of tensors (got {type(x).__name__})"
            )
        if tuple(x.shape[1:]) != info.input_shape:
            raise DataUnavailable(
                f"{what} declares examples of shape {info.input_shape}, but its {name} examples have "
                f"shape {tuple(x.shape[1:])} (array {tuple(x.shape)})"
            )
        if not x.is_floating_point():
            raise DataUnavailable(f"{what}: its {name} examples are {x.dtype}, not floating point")
        if y.shape != (len(x),) or y.dtype != torch.int64:
            raise DataUnavailable(
                f"{what}: its {name} labels must be int64 of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}"
            )
        if len(x) == 0:
            raise DataUnavailable(f"{what}: its {name} split is empty")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
            raise DataUnavailable(f"{what}: {bad} of its {name} examples contain NaN or infinite values")
        if int(y.min()) < 0 or int(y.max()) >= info.num_classes:
            raise DataUnavailable(
                f"{what}: its {name} labels run from {int(y.min())} to {int(y.max())}, outside the "
                f"{info.num_classes} classes it declares (0..{info.num_classes - 1})"
            )
