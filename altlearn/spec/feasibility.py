"""Checks that a valid spec can also run, made by ``altlearn validate`` before any data loads.

Each option can be in range while the whole still cannot work: a width of 10**12 is a positive
integer, but no machine holds that layer; ``data.val_size`` can be a fine count and still leave no
training example. Found here, each is a spec problem at its YAML path instead of an out-of-memory
crash or an empty split minutes later.
"""

from __future__ import annotations

from typing import Any

from altlearn.errors import Problem

#: Parameters a network may have: 4 GB as float32, about 16 GB with gradients and Adam's two
#: moments, already more than the rules here are ever trained with on one device.
MAX_PARAMETERS = 1_000_000_000
#: Values one layer may output for one batch: 8 GiB as float32, and the element count past which
#: many CUDA kernels' 32-bit indexing fails.
MAX_BATCH_ACTIVATIONS = 2**31


def network_problems(network: Any, input_shape: tuple[int, ...], data_options: Any) -> list[Problem]:
    """The first layer that takes the network past a memory bound (``network`` is on the meta
    device: measuring it allocates nothing)."""
    import torch

    batch = max(data_options.batch_size, data_options.eval_batch_size)
    batch_option = "batch_size" if batch == data_options.batch_size else "eval_batch_size"
    # Two examples and eval mode: batch norm refuses a batch of one in training mode (a meta
    # tensor costs nothing, so the probe's size does not matter).
    x = torch.zeros((2, *input_shape), device="meta")
    training = [(m, m.training) for m in network.modules()]
    network.eval()
    try:
        return _first_problem(network, x, batch, batch_option)
    finally:
        for m, mode in training:
            m.training = mode


def _first_problem(network: Any, x: Any, batch: int, batch_option: str) -> list[Problem]:
    import torch

    total = 0
    with torch.no_grad():
        for index, module in enumerate(network):
            count = sum(p.numel() for p in module.parameters())
            total += count
            path = f"network.layers[{index}]"
            if total > MAX_PARAMETERS:
                return [Problem(path, _too_many_parameters(count, total))]
            x = module(x)
            values = x[0].numel() * batch
            if values > MAX_BATCH_ACTIVATIONS:
                return [
                    Problem(
                        path,
                        f"outputs {x[0].numel():,} values per example, {values:,} for a batch of "
                        f"{batch} (data.{batch_option}): {_size(values)}; altlearn refuses more "
                        f"than {MAX_BATCH_ACTIVATIONS:,} per layer and batch (make the layer smaller "
                        "or the batch)",
                    )
                ]
    return []


def _too_many_parameters(count: int, total: int) -> str:
    return (
        f"has {count:,} parameters, which brings the network to {total:,} ({_size(total)} for the "
        f"weights alone); altlearn refuses networks over {MAX_PARAMETERS:,} parameters: no device "
        "it trains on holds them with their gradients (is a width mistyped?)"
    )


def _size(values: int) -> str:
    """float32 bytes of ``values`` numbers, in readable units."""
    size = values * 4.0
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.3g} {unit} as float32"
        size /= 1000
    raise AssertionError("unreachable")  # the loop returns at PB


def data_problems(data: Any, data_options: Any) -> list[Problem]:
    """``data.val_size`` against the training examples there will be, where that is known."""
    try:
        known = data.component.info(data.params).train_size
    except Exception:  # noqa: BLE001 - a plugin's info(); _check_network reports its failure
        known = None
    sizes = [n for n in (known, data_options.train_subset) if n is not None]
    if not sizes or not data_options.val_size:
        return []
    available = min(sizes)
    if data_options.val_size < available:
        return []
    source = (
        "data.train_subset" if available == data_options.train_subset else f"the {data.type} training split"
    )
    return [
        Problem(
            "data.val_size",
            f"{data_options.val_size} leaves no training examples: {source} has {available}; "
            f"hold out fewer than {available}",
        )
    ]
