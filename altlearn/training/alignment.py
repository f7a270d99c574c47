"""How closely a rule's weight update follows the true gradient: the field's standard diagnostic.

For every trainable layer (``nn.Linear``/``nn.Conv2d``) anywhere in the network, named ``{i}`` by
:func:`altlearn.nn.network.metric_path`: its position ``i`` for a top-level layer, its YAML path without
``network.layers`` for a nested one (``3.layers.1`` for ``network.layers[3].layers[1]``, the second
layer of the body of the residual block at position 3; ``3.shortcut`` for its projection):

- ``angle_layer{i}``: the angle in degrees between the rule's weight update (the ``.grad`` its
  gradient rule's ``train_step`` fills for ``W_i``) and the BP gradient of the same loss on the same
  batch. 0 means the update points exactly along the gradient; below 90 it still descends.
- ``norm_ratio_layer{i}``: ||update|| / ||BP gradient|| for ``W_i``.

Only the weight is compared (not the bias), as in the literature. Both passes start from the same
random-number state (same dropout masks), and the call leaves the parameters' ``.grad``, the
global random state, every module's extra state (``get_extra_state``: a rule's own generators
and counters) and the network's buffers (BatchNorm's running statistics) as they were, so
measuring at any interval does not change training.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from altlearn.nn.network import metric_path, trainable_layers
from altlearn.rules.base import Rule
from altlearn.training.observers import Observer


class AlignmentObserver(Observer):
    """Measures ``alignment`` before every ``every``-th training step, on that step's batch, and
    sends the values to the other observers as ``on_alignment`` (MLflow logs them)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_batch_start(self, trainer, step: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if step % self.every or trainer.rule.gradient_rule() is None:
            return
        trainer.notify("on_alignment", step, alignment(trainer.rule, x, y))


def alignment(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Per-layer angle (degrees) and norm ratio of the rule's update against BP; {} if not comparable."""
    source = rule.gradient_rule()
    if source is None:
        return {}
    layers = trainable_layers(source.network)
    params = list(rule.parameters())
    saved_grads = [p.grad for p in params]
    saved_extra = _extra_states(rule)  # a rule's own generators and counters, advanced by a step
    # the layers' running statistics (BatchNorm's): both passes run the network in training mode
    saved_buffers = [(b, b.detach().clone()) for b in rule.network.buffers()]
    try:
        with _same_randomness(x.device):
            for p in params:
                p.grad = None
            source.train_step(x, y)
            updates = [_grad_or_zeros(m.weight) for _, m in layers]
        with _same_randomness(x.device):
            gradients = _bp_gradients(source, [m.weight for _, m in layers], x, y)
    finally:
        for p, grad in zip(params, saved_grads):
            p.grad = grad
        for module, state in saved_extra:
            module.set_extra_state(state)
        with torch.no_grad():
            for buffer, value in saved_buffers:
                buffer.copy_(value)
    result: dict[str, float] = {}
    for (index, module), update, gradient in zip(layers, updates, gradients):
        if gradient is None:
            gradient = torch.zeros_like(module.weight)
        angle, ratio = _angle_and_ratio(update, gradient)
        name = metric_path(index)
        result[f"angle_layer{name}"] = angle
        result[f"norm_ratio_layer{name}"] = ratio
    return result


def _bp_gradients(source: Rule, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """BP's gradient of the loss for each weight, also for weights the rule froze
    (``requires_grad`` False, e.g. fixed random features): enabled for this pass only."""
    frozen = [w for w in weights if not w.requires_grad]
    try:
        for weight in frozen:
            weight.requires_grad_(True)
        with torch.enable_grad():
            loss = source.loss(source.network(x), y)
            return torch.autograd.grad(loss, weights, allow_unused=True)
    finally:
        for weight in frozen:
            weight.requires_grad_(False)


def _extra_states(rule: Rule) -> list[tuple[nn.Module, object]]:
    """The extra state (``get_extra_state``) of every module of the rule that has one, copied."""
    return [
        (module, copy.deepcopy(module.get_extra_state()))
        for module in rule.modules()
        if type(module).get_extra_state is not nn.Module.get_extra_state
    ]


def _same_randomness(device: torch.device):
    """A context that restores the CPU (and the accelerator's) random state when it ends."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else getattr(torch, device.type).current_device()
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def _grad_or_zeros(weight: torch.Tensor) -> torch.Tensor:
    return weight.grad.detach().clone() if weight.grad is not None else torch.zeros_like(weight)


def _angle_and_ratio(update: torch.Tensor, gradient: torch.Tensor) -> tuple[float, float]:
    u = update.detach().flatten().double()
    g = gradient.detach().flatten().double()
    norm_u, norm_g = float(u.norm()), float(g.norm())
    if norm_u == 0.0 or norm_g == 0.0:  # no direction to compare with
        return math.nan, (math.nan if norm_g == 0.0 else 0.0)
    cosine = float(u @ g) / (norm_u * norm_g)
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return angle, norm_u / norm_g
