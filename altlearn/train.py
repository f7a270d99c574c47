"""The training loop: epochs, evaluation, divergence checks.

The loop knows nothing about MLflow or the terminal: it reports to observers (``altlearn.observers``:
every event gets the trainer, and ``on_end`` always runs). Metrics stay on the device during an
epoch and are read at most once per ``train.log_every`` steps, so a GPU step never waits for the host.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from altlearn.batches import (
    DeviceData,
    num_batches,
    ordered_batches,
    per_example,
    prepare,
    shuffled_batches,
)
from altlearn.datacheck import load_splits
from altlearn.devices import DeviceUnavailable, MetricSums, precision_context, resolve_device, synchronize
from altlearn.network import build_network
from altlearn.observers import Observer, Outcome, notify, notify_all
from altlearn.optim import build_scheduler
from altlearn.param_groups import group_lr_hint, param_groups
from altlearn.rules.base import RuleContext, brings_own_update
from altlearn.spec import Spec
from altlearn.stopping import CLIP_METRIC_NAMES, StopCondition, check_logged, stop_reason, unmet

__all__ = ["CHECKPOINT_FORMAT", "DeviceUnavailable", "Observer", "Outcome", "Trainer"]

#: Version of the layout of ``Trainer.state()``; a checkpoint of another layout is refused.
CHECKPOINT_FORMAT = 2  # 2: every rule has extra state; generators saved by "layer@device"


#: what train.clip_grad_norm adds to a step's metrics, so a rule's own must not use these names
#: (kept in altlearn.stopping, which validation imports without torch)
CLIP_METRICS = CLIP_METRIC_NAMES


class TrainingDiverged(Exception):
    """Training produced a non-finite loss or the rule reported divergence; the message says why."""


class RuleContractError(Exception):
    """The rule's train_step broke the contract in docs/plugin-hooks.md; the message says how."""


class Normalize(nn.Module):
    """Applies the training set's normalisation, so the exported model takes raw [0, 1] images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, example_ndim: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", per_example(mean, example_ndim).clone())
        self.register_buffer("std", per_example(std, example_ndim).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass
class Trainer:
    """Builds everything a spec describes (in named steps, in this order), then ``fit()`` trains."""

    spec: Spec
    observers: list[Observer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._configure_torch()
        self._load_data()
        self._build_rule()
        self._build_optimizer()
        self._build_schedule()
        self._compile_steps()
        self._attach_diagnostics()
        self.global_step = 0  # optimizer steps taken, over all epochs
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.stopped: str | None = None  # why train.stop_when ended training, once it has
        when = self.spec.train.stop_when
        self.stop_condition = None if when is None else StopCondition.parse(when)
        self.end_errors: list[str] = []  # observers that failed in on_exception / on_end
        self._contract_checked = False

    # ------------------------------------------------------------------------------ set-up
    def _configure_torch(self) -> None:
        if self.spec.train.threads:
            torch.set_num_threads(self.spec.train.threads)
        self.device = resolve_device(self.spec.train.device)
        torch.manual_seed(self.spec.seed)  # network init is drawn on the CPU: identical on any device
        self.autocast = precision_context(self.spec.train.precision, self.device)

    def _load_data(self) -> None:
        spec = self.spec
        self.info = spec.data.component.info(spec.data.params)
        splits = load_splits(spec.data, self.info, spec.seed)
        self.data: DeviceData = prepare(splits, spec.data_options, spec.seed, self.device)
        self.steps_per_epoch = num_batches(len(self.data.train_x), spec.data_options.batch_size)
        self.shuffle = torch.Generator().manual_seed(spec.seed)

    def _build_rule(self) -> None:
        spec = self.spec
        network, _ = build_network(spec.layers, self.info.input_shape)
        self.loss_fn = spec.train.loss.component.build(spec.train.loss.params)
        context = RuleContext(network, self.loss_fn, self.info.num_classes, spec.seed)
        self.rule = spec.rule.component(spec.rule.params, context).to(self.device)
        self.owns_update = brings_own_update(spec.rule.component)

    def _build_optimizer(self) -> None:
        spec = self.spec
        if self.owns_update:
            self.optimizer = self.rule.make_optimizer()
            if not isinstance(self.optimizer, torch.optim.Optimizer):
                raise RuleContractError(
                    f"rule {spec.rule.type!r} (package {spec.rule.package}) overrides make_optimizer "
                    f"but it returned {type(self.optimizer).__name__}, not a torch.optim.Optimizer"
                )
        else:
            groups = getattr(spec.optimizer.params, "groups", None)
            trainable = (
                param_groups(self.rule, spec.layers, groups)
                if groups
                else [p for p in self.rule.parameters() if p.requires_grad]
            )
            self.optimizer = spec.optimizer.component.build(spec.optimizer.params, trainable)
        # train.clip_grad_norm bounds the total norm over every parameter the optimizer steps
        self.clipped = (
            [p for group in self.optimizer.param_groups for p in group["params"]]
            if spec.train.clip_grad_norm is not None
            else []
        )

    def _build_schedule(self) -> None:
        spec = self.spec
        self.total_steps = self.steps_per_epoch * spec.train.epochs
        self.scheduler = build_scheduler(
            spec.schedule.component,
            spec.schedule.params,
            self.optimizer,
            self.total_steps,
            self.steps_per_epoch,
        )

    def _compile_steps(self) -> None:
        self.step_fn, self.eval_fn = self.rule.train_step, self.rule.eval_step
        mode = self.spec.train.compile
        if mode != "off":
            # The rule's whole step (forward, its backward, metrics) becomes one compiled region;
            # the optimizer step stays eager (fused kernels on CUDA, see altlearn.optim).
            self.step_fn = torch.compile(self.rule.train_step, mode=mode)
            self.eval_fn = torch.compile(self.rule.eval_step, mode=mode)

    def _attach_diagnostics(self) -> None:
        """The spec's diagnostics are part of training (they share its random streams), so they
        are attached here rather than by whoever runs the trainer."""
        from altlearn.alignment import AlignmentObserver

        if self.spec.tracking.alignment_every:  # a new list: the caller's stays as it gave it
            self.observers = [AlignmentObserver(self.spec.tracking.alignment_every), *self.observers]

    # ------------------------------------------------------------------------------ loop
    def notify(self, event: str, *args: Any) -> None:
        """Send ``event`` to every observer (an observer may raise one for the others)."""
        notify(self.observers, event, self, *args)

    def fit(self) -> dict[str, float]:
        """Train the remaining epochs (all of them, unless ``restore`` was called). However it
        ends, every observer gets ``on_end`` with the outcome; an exception is raised on after."""
        error: BaseException | None = None
        try:
            self.notify("on_start")
            metrics: dict[str, float] = self.history[-1] if self.history else {}
            self.stopped = self._stop_reason()  # a resumed run may have met it at its last epoch
            for epoch in range(self.epoch + 1, self.spec.train.epochs + 1):
                if self.stopped:
                    break
                metrics = self.train_epoch(epoch)
                metrics.update(self.evaluate_all())
                self.history.append(metrics)
                self.epoch = epoch
                self.stopped = self._stop_reason()  # before on_epoch_end: observers see the last epoch
                self.notify("on_epoch_end", epoch, metrics)
                if self.stop_condition is not None:  # after on_epoch_end: the epoch is logged
                    check_logged(self.stop_condition, metrics)
            self.notify("on_train_end", metrics)
            return metrics
        except BaseException as exc:
            error = exc
            self.end_errors += notify_all(self.observers, "on_exception", self, exc)
            raise
        finally:
            self.end_errors += notify_all(self.observers, "on_end", self, Outcome.of(self, error))

    @property
    def last_epoch(self) -> bool:
        """Whether the epoch just completed is the run's last (all epochs, or train.stop_when)."""
        return self.epoch == self.spec.train.epochs or self.stopped is not None

    def _stop_reason(self) -> str | None:
        if self.stop_condition is None or self.epoch >= self.spec.train.epochs:
            return None  # met at the last epoch, or never: not a stop before train.epochs
        reason = stop_reason(self.stop_condition, self.spec.train.stop_smoothing, self.history)
        return reason and f"stopped after epoch {self.epoch} of {self.spec.train.epochs}: {reason}"

    @property
    def stop_note(self) -> str | None:
        """After training: why it stopped early, or that train.stop_when was not met (or None)."""
        if self.stopped or self.stop_condition is None or not self.history:
            return self.stopped
        return unmet(self.stop_condition, self.spec.train.stop_smoothing, self.history)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        spec, rule, opt = self.spec, self.rule, self.optimizer
        rule.train()
        sums = MetricSums()
        lr = opt.param_groups[0]["lr"]
        synchronize(self.device)
        start = time.perf_counter()
        batches = shuffled_batches(
            self.data.train_x, self.data.train_y, spec.data_options.batch_size, self.shuffle
        )
        for step, (x, y) in enumerate(batches, start=1):
            self.notify("on_batch_start", self.global_step, x, y)
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                step_metrics = self.step_fn(x, y)
            if not self._contract_checked:
                self._check_step_contract(step_metrics)
            if self.clipped:
                step_metrics = {**step_metrics, **self._clip(spec.train.clip_grad_norm)}
            opt.step()
            self.scheduler.step()
            self.global_step += 1
            sums.add(step_metrics, len(y))  # device-side sums: no sync
            if step % spec.train.log_every == 0 or step == self.steps_per_epoch:
                running = sums.means()  # the one host sync
                self._check_health(running, epoch, step)
                self.notify("on_progress", epoch, step, running)
        synchronize(self.device)
        seconds = time.perf_counter() - start
        result = {self._train_name(k): v for k, v in sums.means().items()}
        result.update(epoch_seconds=seconds, samples_per_second=sums.count / seconds, lr=lr)
        return result

    def _clip(self, limit: float) -> dict[str, torch.Tensor]:
        """Scale the update signal down to ``limit`` when its total norm is above it. No host sync:
        torch scales by a clamped tensor factor. The norm before clipping, and whether the limit
        bit (a nan norm counts: its step is no longer the rule's), are averaged over the epoch
        like the rule's metrics."""
        norm = torch.nn.utils.clip_grad_norm_(self.clipped, limit)
        return {CLIP_METRICS[0]: norm, CLIP_METRICS[1]: (~(norm <= limit)).float()}

    def _check_step_contract(self, step_metrics: Any) -> None:
        """Once, after the first step: a rule (often a new plugin) broke the contract in a way the
        loop would otherwise report as an obscure error somewhere later, or not at all."""
        self._contract_checked = True
        rule = f"rule {self.spec.rule.type!r} (package {self.spec.rule.package})"
        contract = (
            "train_step must return a dict of scalar tensors with at least 'loss', e.g. "
            "{'loss': loss.detach()}; see docs/plugin-hooks.md"
        )
        if not isinstance(step_metrics, dict):
            raise RuleContractError(f"{rule}: train_step returned {type(step_metrics).__name__}; {contract}")
        taken = [key for key in CLIP_METRICS if key in step_metrics] if self.clipped else []
        if taken:
            raise RuleContractError(
                f"{rule}: train_step returns {', '.join(map(repr, taken))}, which train.clip_grad_norm "
                "logs itself; give the rule's metric another name"
            )
        if "loss" not in step_metrics:
            raise RuleContractError(
                f"{rule}: train_step returned no 'loss' (keys: "
                f"{', '.join(map(str, step_metrics)) or 'none'}); {contract}"
            )
        for key, value in step_metrics.items():
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                what = (
                    f"a tensor of shape {tuple(value.shape)}"
                    if isinstance(value, torch.Tensor)
                    else f"a {type(value).__name__}"
                )
                raise RuleContractError(
                    f"{rule}: train_step's {key!r} is {what}, not a scalar "
                    f"tensor (average over the batch; never .item() in a step); "
                    f"{contract}"
                )
        if not self.owns_update and all(p.grad is None for p in self.rule.parameters() if p.requires_grad):
            raise RuleContractError(
                f"{rule}: train_step filled no parameter's .grad, so the "
                "optimizer would change nothing; compute the update into .grad "
                "(e.g. loss.backward() or p.grad = ...)"
            )

    @staticmethod
    def _train_name(key: str) -> str:
        return f"train_{key}" if key in ("loss", "accuracy") else key

    def _check_health(self, running: dict[str, float], epoch: int, step: int) -> None:
        loss = running.get("loss")
        if loss is not None and not math.isfinite(loss):
            group = self.optimizer.param_groups[0]
            path = "rule.lr" if self.owns_update else "optimizer.lr"
            groups = [] if self.owns_update else getattr(self.spec.optimizer.params, "groups", None) or []
            base = group.get("initial_lr", group["lr"])  # the spec's value, before the schedule
            raise TrainingDiverged(
                f"the training loss became {loss} at epoch {epoch}, step {step}; the learning rate "
                f"is the usual cause: lower {path} (it is {base:.3g}; the schedule had it at "
                f"{group['lr']:.3g} at this step), e.g. -s {path}={base / 10:.3g}{group_lr_hint(groups)}"
            )
        message = self.rule.health_check()
        if message:
            raise TrainingDiverged(f"epoch {epoch}, step {step}: {message}")

    # -------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.rule.eval()
        sums = MetricSums()
        for bx, by in ordered_batches(x, y, self.spec.data_options.eval_batch_size):
            with self.autocast():
                sums.add(self.eval_fn(bx, by), len(by))
        self.rule.train()
        return sums.means()

    def evaluate_all(self) -> dict[str, float]:
        out = {}
        if self.data.val_x is not None:
            out.update({f"val_{k}": v for k, v in self.evaluate(self.data.val_x, self.data.val_y).items()})
        out.update({f"test_{k}": v for k, v in self.evaluate(self.data.test_x, self.data.test_y).items()})
        return out

    # ------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a later process needs to continue after the last completed epoch exactly as
        this one would: weights and buffers (the rule's state_dict, with its extra state), the
        optimizer and schedule, and every random stream the loop draws from."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "device": self.device.type,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": list(self.history),
            "rule": self.rule.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout and other draws from the global stream
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore(self, state: dict[str, Any]) -> list[str]:
        """Continue from ``state`` (a ``state()`` of a trainer built from the same spec).

        Returns notes for the user: resuming on another kind of device continues the weights and
        the optimizer exactly, but CPU and CUDA random streams differ, so dropout masks and rules'
        random draws restart from fresh seeds there."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {state.get('format')!r} is not "
                f"{CHECKPOINT_FORMAT} (written by another altlearn version)"
            )
        self.rule.load_state_dict(state["rule"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state["history"])
        written_on = state.get("device", self.device.type)
        if written_on != self.device.type:
            return [
                f"the checkpoint was written on {written_on} and training goes on on "
                f"{self.device.type}: weights and optimizer continue exactly, random streams "
                "(dropout, rules' draws) do not, so the result will differ slightly from an "
                "uninterrupted run"
            ]
        return []

    # ------------------------------------------------------------------------------ export
    def inference_model(self) -> nn.Module:
        """Normalisation + the rule's inference module, on the CPU, in eval mode."""
        model = nn.Sequential(
            Normalize(self.data.mean, self.data.std, len(self.info.input_shape)), self.rule.inference_module()
        )
        return model.to("cpu").eval()

    def example_input(self) -> Any:
        ndim = len(self.info.input_shape)
        raw = self.data.test_x[:2].to("cpu") * per_example(self.data.std, ndim)
        return (raw + per_example(self.data.mean, ndim)).numpy()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
