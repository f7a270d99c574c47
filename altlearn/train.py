"""The training loop: epochs, evaluation, divergence checks, device placement.

The loop knows nothing about MLflow or the terminal: it reports to observers (see ``Observer``).
Metrics stay on the device during an epoch and are read at most once per ``train.log_every`` steps,
so a GPU step never waits for the host.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from altlearn.batches import DeviceData, num_batches, ordered_batches, prepare, shuffled_batches
from altlearn.network import build_network
from altlearn.optim import build_scheduler
from altlearn.rules.base import RuleContext, brings_own_update
from altlearn.spec import Spec

#: Version of the layout of ``Trainer.state()``; a checkpoint of another layout is refused.
CHECKPOINT_FORMAT = 2  # 2: every rule has extra state; generators saved by "layer@device"


class TrainingDiverged(Exception):
    """Training produced a non-finite loss or the rule reported divergence; the message says why."""


class RuleContractError(Exception):
    """The rule's train_step broke the contract in docs/plugin-hooks.md; the message says how."""


class DeviceUnavailable(Exception):
    """The spec asks for a device this machine does not have."""


class Observer:
    """Receives the trainer's events. Every method is optional."""

    def on_start(self, trainer: Trainer) -> None: ...
    def on_progress(self, epoch: int, step: int, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def on_alignment(self, step: int, values: dict[str, float]) -> None: ...


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            "train.device is cuda but torch sees no CUDA device "
            f"(torch {torch.__version__}); use train.device=auto or cpu"
        )
    return torch.device(choice)


def _precision(choice: str, device: torch.device):
    """Set matmul precision; return a factory of the autocast context for steps and evaluation."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = choice == "tf32"
        torch.backends.cudnn.allow_tf32 = choice == "tf32"
    if choice == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


class Normalize(nn.Module):
    """Applies the training set's normalisation, so the exported model takes raw [0, 1] images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1).clone())
        self.register_buffer("std", std.view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass
class Trainer:
    spec: Spec
    observers: list[Observer] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = self.spec
        if spec.train.threads:
            torch.set_num_threads(spec.train.threads)
        self.device = resolve_device(spec.train.device)
        torch.manual_seed(spec.seed)  # network init is drawn on the CPU: identical on any device
        self.info = spec.data.component.info(spec.data.params)
        splits = spec.data.component.load(spec.data.params)
        self.data: DeviceData = prepare(splits, spec.data_options, spec.seed, self.device)
        network, _ = build_network(spec.layers, self.info.input_shape)
        self.loss_fn = spec.train.loss.component.build(spec.train.loss.params)
        context = RuleContext(network, self.loss_fn, self.info.num_classes, spec.seed)
        self.rule = spec.rule.component(spec.rule.params, context).to(self.device)
        self.owns_update = brings_own_update(spec.rule.component)
        if self.owns_update:
            self.optimizer = self.rule.make_optimizer()
            if not isinstance(self.optimizer, torch.optim.Optimizer):
                raise RuleContractError(
                    f"rule {spec.rule.type!r} (package {spec.rule.package}) overrides make_optimizer "
                    f"but it returned {type(self.optimizer).__name__}, not a torch.optim.Optimizer"
                )
        else:
            trainable = [p for p in self.rule.parameters() if p.requires_grad]
            self.optimizer = spec.optimizer.component.build(spec.optimizer.params, trainable)
        self.steps_per_epoch = num_batches(len(self.data.train_x), spec.data_options.batch_size)
        self.total_steps = self.steps_per_epoch * spec.train.epochs
        self.scheduler = build_scheduler(
            spec.schedule.component,
            spec.schedule.params,
            self.optimizer,
            self.total_steps,
            self.steps_per_epoch,
        )
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.autocast = _precision(spec.train.precision, self.device)
        self.step_fn, self.eval_fn = self.rule.train_step, self.rule.eval_step
        if spec.train.compile != "off":
            # The rule's whole step (forward, its backward, metrics) becomes one compiled region;
            # the optimizer step stays eager (fused kernels on CUDA, see altlearn.optim).
            self.step_fn = torch.compile(self.rule.train_step, mode=spec.train.compile)
            self.eval_fn = torch.compile(self.rule.eval_step, mode=spec.train.compile)
        self.global_step = 0
        self._contract_checked = False
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train the remaining epochs (all of them, unless ``restore`` was called)."""
        for obs in self.observers:
            obs.on_start(self)
        metrics: dict[str, float] = self.history[-1] if self.history else {}
        for epoch in range(self.epoch + 1, self.spec.train.epochs + 1):
            metrics = self.train_epoch(epoch)
            metrics.update(self.evaluate_all())
            self.history.append(metrics)
            self.epoch = epoch
            for obs in self.observers:
                obs.on_epoch_end(epoch, metrics)
        return metrics

    def train_epoch(self, epoch: int) -> dict[str, float]:
        spec, rule, opt = self.spec, self.rule, self.optimizer
        rule.train()
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        lr = opt.param_groups[0]["lr"]
        self._sync()
        start = time.perf_counter()
        batches = shuffled_batches(
            self.data.train_x, self.data.train_y, spec.data_options.batch_size, self.shuffle
        )
        for step, (x, y) in enumerate(batches, start=1):
            if self._alignment_due():
                self._measure_alignment(x, y)
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                step_metrics = self.step_fn(x, y)
            if not self._contract_checked:
                self._check_step_contract(step_metrics)
            opt.step()
            self.scheduler.step()
            self.global_step += 1
            batch = len(y)
            seen += batch
            for key, value in step_metrics.items():  # device-side sums: no sync, no new tensors
                if key in sums:
                    sums[key].add_(value.detach().float(), alpha=batch)
                else:
                    sums[key] = value.detach().float() * batch
            if step % spec.train.log_every == 0 or step == self.steps_per_epoch:
                running = {k: v.item() / seen for k, v in sums.items()}  # the one host sync
                self._check_health(running, epoch, step)
                for obs in self.observers:
                    obs.on_progress(epoch, step, running)
        self._sync()
        seconds = time.perf_counter() - start
        result = {self._train_name(k): v.item() / seen for k, v in sums.items()}
        result.update(epoch_seconds=seconds, samples_per_second=seen / seconds, lr=lr)
        return result

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
            base = group.get("initial_lr", group["lr"])  # the spec's value, before the schedule
            raise TrainingDiverged(
                f"the training loss became {loss} at epoch {epoch}, step {step}; the learning rate "
                f"is the usual cause: lower {path} (it is {base:.3g}; the schedule had it at "
                f"{group['lr']:.3g} at this step), e.g. -s {path}={base / 10:.3g}"
            )
        message = self.rule.health_check()
        if message:
            raise TrainingDiverged(f"epoch {epoch}, step {step}: {message}")

    # -------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.rule.eval()
        sums: dict[str, torch.Tensor] = {}
        for bx, by in ordered_batches(x, y, self.spec.data_options.eval_batch_size):
            with self.autocast():
                metrics = self.eval_fn(bx, by)
            for key, value in metrics.items():
                if key in sums:
                    sums[key].add_(value.detach().float(), alpha=len(by))
                else:
                    sums[key] = value.detach().float() * len(by)
        self.rule.train()
        return {k: v.item() / len(y) for k, v in sums.items()}

    def evaluate_all(self) -> dict[str, float]:
        out = {}
        if self.data.val_x is not None:
            out.update({f"val_{k}": v for k, v in self.evaluate(self.data.val_x, self.data.val_y).items()})
        out.update({f"test_{k}": v for k, v in self.evaluate(self.data.test_x, self.data.test_y).items()})
        return out

    # --------------------------------------------------------------------------- alignment
    def _alignment_due(self) -> bool:
        every = self.spec.tracking.alignment_every
        return bool(every) and self.global_step % every == 0 and self.rule.gradient_rule() is not None

    def _measure_alignment(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from altlearn.alignment import alignment

        values = alignment(self.rule, x, y)
        for obs in self.observers:
            obs.on_alignment(self.global_step, values)

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
        model = nn.Sequential(Normalize(self.data.mean, self.data.std), self.rule.inference_module())
        return model.to("cpu").eval()

    def example_input(self) -> Any:
        x = self.data.test_x[:2].to("cpu") * self.data.std.view(1, -1, 1, 1) + self.data.mean.view(
            1, -1, 1, 1
        )
        return x.numpy()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
