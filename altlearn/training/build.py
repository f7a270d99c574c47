"""Everything a validated spec describes, built for the training loop in named steps.

``build(spec)`` reads top to bottom as the set-up of a run: configure torch, load the data, build
the rule (with its network and loss), its optimizer and schedule, compile the steps, attach the
spec's diagnostics. The loop itself (``altlearn.training.trainer``) only uses what it returns.

The order of the steps is the order of the random draws (the global seed is set first; the
network's initial weights are drawn after the data is split), so it is part of the results: a
different order gives other weights for the same seed, and a resumed run would not continue
exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from altlearn.components.base import DataInfo
from altlearn.data.augment import Augmentation, make_augmentation
from altlearn.data.batches import DeviceData, num_batches, prepare
from altlearn.data.check import load_splits
from altlearn.nn.network import build_network
from altlearn.optim.losses import LossFn
from altlearn.optim.optimizers import build_scheduler
from altlearn.optim.param_groups import param_groups
from altlearn.rules.base import Rule, RuleContext, brings_own_update
from altlearn.spec.model import Spec
from altlearn.training.alignment import AlignmentObserver
from altlearn.training.contract import check_own_optimizer
from altlearn.training.devices import precision_context, resolve_device
from altlearn.training.observers import Observer

#: a rule's train_step or eval_step, or its compiled version: (x, y) -> metrics as scalar tensors
StepFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class Setup:
    """What ``build`` makes of a spec: the parts the training loop works with."""

    device: torch.device
    autocast: Callable[[], AbstractContextManager]  # a fresh context per step: bf16 autocast or none
    info: DataInfo
    data: DeviceData  # normalised, on the device
    steps_per_epoch: int
    shuffle: torch.Generator  # the order of training batches: its own stream, saved in checkpoints
    augment: Augmentation | None  # data.augment on training batches (its own stream), or None
    loss_fn: LossFn
    rule: Rule
    owns_update: bool  # the rule makes its own optimizer (there is no optimizer block)
    optimizer: torch.optim.Optimizer
    clipped: list[torch.Tensor]  # what train.clip_grad_norm bounds; empty without it
    total_steps: int
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step_fn: StepFn
    eval_fn: StepFn
    observers: list[Observer]


def build(spec: Spec, observers: list[Observer]) -> Setup:
    """Build every part of a run of ``spec``, in the order of its random draws (see above)."""
    device, autocast = configure_torch(spec)
    info, data, shuffle = load_data(spec, device)
    augment = make_augmentation(spec.data_options.augment, data, spec.seed)
    steps_per_epoch = num_batches(len(data.train_x), spec.data_options.batch_size)
    rule, loss_fn = build_rule(spec, info, device)
    owns_update = brings_own_update(spec.rule.component)
    optimizer = build_optimizer(spec, rule, owns_update)
    total_steps = steps_per_epoch * spec.train.epochs
    scheduler = build_scheduler(
        spec.schedule.component, spec.schedule.params, optimizer, total_steps, steps_per_epoch
    )
    step_fn, eval_fn = compile_steps(rule, spec.train.compile)
    return Setup(
        device=device,
        autocast=autocast,
        info=info,
        data=data,
        steps_per_epoch=steps_per_epoch,
        shuffle=shuffle,
        augment=augment,
        loss_fn=loss_fn,
        rule=rule,
        owns_update=owns_update,
        optimizer=optimizer,
        clipped=clipped_parameters(spec, optimizer),
        total_steps=total_steps,
        scheduler=scheduler,
        step_fn=step_fn,
        eval_fn=eval_fn,
        observers=attach_diagnostics(spec, observers),
    )


def flush_denormals() -> None:
    """Compute with denormal floats as zero on this thread and the threads it starts from now on.

    Weights and Adam moments that weight decay drives towards zero end up as denormal floats, and
    an x86 CPU multiplies those about 100x slower: an ep trial's epoch grew from 6 to 120
    CPU-seconds. Flushing changes nothing above 1e-38 (and nothing on GPUs). The flag is per
    thread: torch's worker threads keep the one they started with, so the commands call this
    before any torch work, and the trainer again for the threads it has.
    """
    torch.set_flush_denormal(True)


def configure_torch(spec: Spec) -> tuple[torch.device, Callable[[], AbstractContextManager]]:
    """Process-wide torch settings (threads, denormals, the global seed), the device and the
    autocast."""
    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    flush_denormals()
    device = resolve_device(spec.train.device)
    torch.manual_seed(spec.seed)  # network init is drawn on the CPU: identical on any device
    return device, precision_context(spec.train.precision, device)


def load_data(spec: Spec, device: torch.device) -> tuple[DataInfo, DeviceData, torch.Generator]:
    """The data set's splits, normalised on the device, and the generator of the batch order."""
    info = spec.data.component.info(spec.data.params)
    splits = load_splits(spec.data, info, spec.seed)
    data = prepare(splits, spec.data_options, spec.seed, device)
    return info, data, torch.Generator().manual_seed(spec.seed)


def build_rule(spec: Spec, info: DataInfo, device: torch.device) -> tuple[Rule, LossFn]:
    """The network (built on the CPU, so its initial weights do not depend on the device), the
    loss, and the rule that trains the network with them, moved to the device."""
    network, _ = build_network(spec.layers, info.input_shape)
    loss_fn = spec.train.loss.component.build(spec.train.loss.params)
    context = RuleContext(network, loss_fn, info.num_classes, spec.seed)
    rule = spec.rule.component(spec.rule.params, context).to(device)
    return rule, loss_fn


def build_optimizer(spec: Spec, rule: Rule, owns_update: bool) -> torch.optim.Optimizer:
    """The rule's own optimizer, if it brings one; else the spec's, over the trainable parameters
    (in the spec's parameter groups, if it has any)."""
    if owns_update:
        return check_own_optimizer(spec, rule.make_optimizer())
    block = spec.optimizer
    assert block is not None  # validation gives every rule without its own update an optimizer
    groups = getattr(block.params, "groups", None)
    trainable = (
        param_groups(rule, spec.layers, groups)
        if groups
        else [p for p in rule.parameters() if p.requires_grad]
    )
    return block.component.build(block.params, trainable)


def clipped_parameters(spec: Spec, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """train.clip_grad_norm bounds the total norm over every parameter the optimizer steps."""
    if spec.train.clip_grad_norm is None:
        return []
    return [p for group in optimizer.param_groups for p in group["params"]]


def compile_steps(rule: Rule, mode: str) -> tuple[StepFn, StepFn]:
    """The rule's train and eval steps, compiled unless train.compile is off. The rule's whole
    step (forward, its backward, metrics) becomes one compiled region; the optimizer step stays
    eager (fused kernels where torch has them, see altlearn.optim.fused)."""
    if mode == "off":
        return rule.train_step, rule.eval_step
    return torch.compile(rule.train_step, mode=mode), torch.compile(rule.eval_step, mode=mode)


def attach_diagnostics(spec: Spec, observers: list[Observer]) -> list[Observer]:
    """The spec's diagnostics watch training from the first step and share its random streams, so
    they belong to the run, not to whoever runs the trainer. Returns a new list when it adds one:
    the caller's stays as it gave it."""
    if spec.tracking.alignment_every:
        return [AlignmentObserver(spec.tracking.alignment_every), *observers]
    return observers
