"""Checks of one training step: what it fills, what it returns, what it draws, where it runs.

Each check takes a :class:`~altlearn.testing.harness.Case`, returns a note (or None) when the rule
passes, and raises :class:`~altlearn.testing.harness.CheckFailed` saying what to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from altlearn.rules.base import Rule, brings_own_update
from altlearn.testing.harness import (
    BATCH,
    Case,
    CheckFailed,
    call_step,
    global_stream,
    make_optimizer,
    random_state,
    same,
    state_of,
    train_step,
)

#: Tensor methods that copy a value to the host, so a GPU step waits for every queued kernel.
HOST_SYNCS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def fills_grads(case: Case) -> str | None:
    """``train_step`` fills ``.grad`` of every trained parameter, and nothing else."""
    rule = case.build()
    rule.train()
    parameters = dict(rule.named_parameters())
    own_update = brings_own_update(type(rule))
    filled: set[str] = set()
    for index in range(3):  # a rule may train some parameters only on some steps (ff: greedy)
        before = {name: p.detach().clone() for name, p in parameters.items()}
        for p in parameters.values():
            p.grad = None
        call_step(rule, *case.batch(index))
        filled |= {name for name, p in parameters.items() if p.grad is not None}
        _one_step_grads(parameters, before, own_update)
    missing = [n for n, p in parameters.items() if p.requires_grad and n not in filled]
    if missing and not own_update:
        raise CheckFailed(
            f"three train_steps left .grad None for {_names(missing)}: fill the update of every "
            "parameter the rule trains (zeros where a batch gives none), and call "
            "requires_grad_(False) in __init__ on parameters it never trains (the optimizer then "
            "leaves them out)"
        )
    return None


def _one_step_grads(parameters: dict[str, nn.Parameter], before: dict[str, torch.Tensor], own: bool) -> None:
    frozen = [n for n, p in parameters.items() if not p.requires_grad and p.grad is not None]
    if frozen:
        raise CheckFailed(f"train_step filled .grad of {_names(frozen)}, which have requires_grad False")
    wrong = [
        n
        for n, p in parameters.items()
        if p.grad is not None
        and (p.grad.shape != p.shape or p.grad.dtype != p.dtype or p.grad.device != p.device)
    ]
    if wrong:
        raise CheckFailed(f".grad of {_names(wrong)} is not shaped, typed and placed like its parameter")
    if not all(torch.isfinite(p.grad).all() for p in parameters.values() if p.grad is not None):
        raise CheckFailed("train_step filled .grad with nan or inf on an ordinary batch")
    moved = [n for n, p in parameters.items() if not torch.equal(p.detach(), before[n])]
    if moved and not own:
        raise CheckFailed(
            f"train_step changed {_names(moved)} itself: leave the update in .grad, the optimizer "
            "applies it (with the spec's lr schedule and clipping)"
        )


@contextmanager
def host_syncs() -> Iterator[list[str]]:
    """Record every call of :data:`HOST_SYNCS` made from Python while the context is open."""
    calls: list[str] = []
    patched = {name: torch.Tensor.__dict__.get(name) for name in HOST_SYNCS}

    def recording(name: str, original: Any) -> Any:
        def call(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(self, *args, **kwargs)

        return call

    for name in HOST_SYNCS:
        setattr(torch.Tensor, name, recording(name, getattr(torch.Tensor, name)))
    try:
        yield calls
    finally:
        for name, original in patched.items():
            if original is None:
                delattr(torch.Tensor, name)  # inherited from torch's C base: uncover it
            else:
                setattr(torch.Tensor, name, original)


def _check_metrics(metrics: Any, where: str, device: torch.device) -> None:
    if not isinstance(metrics, dict) or "loss" not in metrics:
        got = sorted(metrics) if isinstance(metrics, dict) else type(metrics).__name__
        raise CheckFailed(f"{where} returned {got}: return a dict of scalar tensors with 'loss'")
    for key, value in metrics.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            what = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckFailed(
                f"{where}'s {key!r} is {what}: return a scalar tensor (a mean over the batch, "
                "never .item() or float(), which waits for the device)"
            )
        if value.device != device:
            raise CheckFailed(f"{where}'s {key!r} is on {value.device}, the batch on {device}: keep it there")
    if not torch.isfinite(metrics["loss"]).all():
        raise CheckFailed(f"{where}'s loss is not finite on an ordinary batch")


def scalar_metrics(case: Case) -> str | None:
    """``train_step`` and ``eval_step`` return scalar tensors with a loss, and sync nothing."""
    rule = case.build()
    rule.train()
    optimizer = make_optimizer(rule)
    for index, size in ((0, BATCH), (1, 5)):  # the last batch of an epoch may be smaller
        x, y = case.batch(index, size)
        with host_syncs() as calls:
            step = train_step(rule, optimizer, x, y)
        _check_metrics(step.metrics, f"train_step (batch of {size})", case.device)
        if calls:
            raise CheckFailed(
                f"train_step called Tensor.{calls[0]} (a host sync: the GPU waits every step): keep "
                "metrics as tensors; a check that needs a value belongs in health_check"
            )
    rule.eval()
    with torch.no_grad(), host_syncs() as calls:
        metrics = rule.eval_step(x, y)
        scores = rule.inference_module()(x)
    _check_metrics(metrics, "eval_step", case.device)
    if calls:
        raise CheckFailed(f"eval_step called Tensor.{calls[0]} (a host sync): keep metrics as tensors")
    if tuple(scores.shape) != (len(y), case.num_classes):
        raise CheckFailed(
            f"inference_module() maps a batch of {len(y)} to shape {tuple(scores.shape)}, not "
            f"({len(y)}, {case.num_classes}) class scores"
        )
    return None


def _run(case: Case, steps: int = 3) -> tuple[list[Any], dict[str, Any]]:
    with random_state(case.device):
        rule = case.build()
        rule.train()
        optimizer = make_optimizer(rule)
        grads = [train_step(rule, optimizer, *case.batch(i)).grads for i in range(steps)]
        return grads, state_of(rule)


def same_seed_same_update(case: Case) -> str | None:
    """Two rules built alike (same network, options and seed) make the same updates, bit for bit."""
    (grads_a, state_a), (grads_b, state_b) = _run(case), _run(case)
    for index, (a, b) in enumerate(zip(grads_a, grads_b)):
        for name in a:
            if not same(a[name], b[name]):
                raise CheckFailed(
                    f"step {index + 1}'s update of {name} differs between two rules built alike: "
                    "derive every random draw from the seed (altlearn.api.DeviceGenerators, "
                    "layer_seed) and avoid state shared between instances (class attributes)"
                )
    if not same(state_a, state_b):
        raise CheckFailed("two rules built alike end with different state after the same steps")
    return None


def _network_draws(case: Case) -> bool:
    """Whether the network's own forward pass draws from the global stream (dropout)."""
    with random_state(case.device), torch.no_grad():
        network = case.build().network.train()
        before = global_stream(case.device)
        network(case.batch()[0])
        return not same(before, global_stream(case.device))


def own_random_streams(case: Case) -> str | None:
    """``train_step`` draws nothing from torch's global random stream (it feeds dropout)."""
    if _network_draws(case):
        return "not checked: the network itself draws from the global stream (dropout)"
    with random_state(case.device):
        rule = case.build()
        rule.train()
        optimizer = make_optimizer(rule)
        for index in range(2):
            before = global_stream(case.device)
            train_step(rule, optimizer, *case.batch(index))
            if not same(before, global_stream(case.device)):
                raise CheckFailed(
                    "train_step drew from torch's global random stream, which shifts the dropout "
                    "masks and the data a run would otherwise see: draw from generators of the "
                    "rule's own (altlearn.api.DeviceGenerators, saved in get_extra_state)"
                )
    return None


def _left_behind(rule: Rule, device: torch.device) -> list[str]:
    """Tensors a rule holds outside its registered parameters and buffers, not on ``device``."""
    internal = set(vars(nn.Module()))
    found = []
    for path, module in rule.named_modules():
        for name, value in vars(module).items():
            if name in internal:
                continue
            where = f"{path}.{name}" if path else name
            if isinstance(value, nn.Module):  # unregistered (object.__setattr__): not moved
                tensors = [*value.parameters(), *value.buffers()]
            elif isinstance(value, dict):
                tensors = [v for v in value.values() if isinstance(v, torch.Tensor)]
            elif isinstance(value, (list, tuple)):
                tensors = [v for v in value if isinstance(v, torch.Tensor)]
            else:
                tensors = [value] if isinstance(value, torch.Tensor) else []
            if any(t.device != device for t in tensors):
                found.append(where)
    return found


def moves_to_device(case: Case) -> str | None:
    """``rule.to(device)`` moves every tensor the rule keeps (checked on the meta device)."""
    rule = case.build()
    meta = torch.device("meta")
    rule.to(meta)
    left = _left_behind(rule, meta)
    if left:
        raise CheckFailed(
            f"after rule.to(device), {_names(left)} stayed where it was: register tensors with "
            "self.register_buffer(name, tensor) (persistent=False if a checkpoint need not hold "
            "it) and submodules as attributes, so .to(device) moves them"
        )
    return None
