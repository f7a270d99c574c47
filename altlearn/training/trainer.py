"""The training loop: epochs, evaluation, divergence checks, checkpoints of its state.

A ``Trainer`` runs what ``altlearn.training.build`` made of a spec; the set-up lives there, so this
module reads as the loop. The loop knows nothing about MLflow or the terminal: it reports to
observers (``altlearn.training.observers``: every event gets the trainer, and ``on_end`` always
runs). Metrics stay on the device during an epoch and are read at most once per
``train.log_every`` steps, so a GPU step never waits for the host.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from altlearn.data.batches import ordered_batches, shuffled_batches
from altlearn.errors import TrainingDiverged
from altlearn.optim.fused import unfuse_for_strided_grads
from altlearn.optim.param_groups import group_lr_hint
from altlearn.spec.model import Spec
from altlearn.spec.stopping import CLIP_METRIC_NAMES, StopCondition, check_logged, stop_reason, unmet
from altlearn.training.build import build
from altlearn.training.contract import check_step_contract, train_metric_name
from altlearn.training.devices import MetricSums, synchronize
from altlearn.training.export import example_input, inference_model
from altlearn.training.observers import Observer, Outcome, notify, notify_all

# Observer and Outcome stay importable from here: they are what a caller of Trainer needs with it
__all__ = ["CHECKPOINT_FORMAT", "Observer", "Outcome", "Trainer"]

#: Version of the layout of ``Trainer.state()``; a checkpoint of another layout is refused.
CHECKPOINT_FORMAT = 2  # 2: every rule has extra state; generators saved by "layer@device"


@dataclass
class Trainer:
    """Builds what a spec describes (``altlearn.training.build``), then ``fit()`` trains."""

    spec: Spec
    observers: list[Observer] = field(default_factory=list)

    def __post_init__(self) -> None:
        setup = build(self.spec, self.observers)
        # The parts as the trainer's own attributes: the loop, observers and callers read them here.
        self.device, self.autocast = setup.device, setup.autocast
        self.info, self.data, self.shuffle = setup.info, setup.data, setup.shuffle
        self.augment = setup.augment  # data.augment's random changes to training batches, or None
        self.steps_per_epoch, self.total_steps = setup.steps_per_epoch, setup.total_steps
        self.rule, self.loss_fn, self.owns_update = setup.rule, setup.loss_fn, setup.owns_update
        self.optimizer, self.scheduler, self.clipped = setup.optimizer, setup.scheduler, setup.clipped
        self.step_fn, self.eval_fn = setup.step_fn, setup.eval_fn
        self.observers = setup.observers  # with the spec's diagnostics in front
        self.global_step = 0  # optimizer steps taken, over all epochs
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.stopped: str | None = None  # why train.stop_when ended training, once it has
        when = self.spec.train.stop_when
        self.stop_condition = None if when is None else StopCondition.parse(when)
        self.end_errors: list[str] = []  # observers that failed in on_exception / on_end
        self._contract_checked = False

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
        start, cpu_start = time.perf_counter(), time.process_time()
        batches = shuffled_batches(
            self.data.train_x, self.data.train_y, spec.data_options.batch_size, self.shuffle
        )
        for step, (x, y) in enumerate(batches, start=1):
            if self.augment is not None:  # training batches only; evaluation reads the data as is
                x = self.augment(x)
            self.notify("on_batch_start", self.global_step, x, y)
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                step_metrics = self.step_fn(x, y)
            if not self._contract_checked:  # once: a broken rule is named here, not steps later
                self._contract_checked = True
                check_step_contract(
                    spec, rule, step_metrics, clipped=bool(self.clipped), owns_update=self.owns_update
                )
                unfuse_for_strided_grads(opt)
            if self.clipped and (limit := spec.train.clip_grad_norm) is not None:  # a limit: clipped
                step_metrics = {**step_metrics, **self._clip(limit)}
            opt.step()
            self.scheduler.step()
            self.global_step += 1
            sums.add(step_metrics, len(y))  # device-side sums: no sync
            if step % spec.train.log_every == 0 or step == self.steps_per_epoch:
                running = sums.means()  # the one host sync
                self._check_health(running, epoch, step)
                self.notify("on_progress", epoch, step, running)
        synchronize(self.device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        result = {train_metric_name(k): v for k, v in sums.means().items()}
        # process CPU time (every thread of this process): the cost a 2-core and a 64-core machine
        # report alike, where wall time depends on what else the machine runs
        result.update(epoch_seconds=seconds, epoch_cpu_seconds=cpu_seconds, lr=lr)
        result.update(samples_per_second=sums.count / seconds)
        return result

    def _clip(self, limit: float) -> dict[str, torch.Tensor]:
        """Scale the update signal down to ``limit`` when its total norm is above it. No host sync:
        torch scales by a clamped tensor factor. The norm before clipping, and whether the limit
        bit (a nan norm counts: its step is no longer the rule's), are averaged over the epoch
        like the rule's metrics."""
        norm = torch.nn.utils.clip_grad_norm_(self.clipped, limit)
        return {CLIP_METRIC_NAMES[0]: norm, CLIP_METRIC_NAMES[1]: (~(norm <= limit)).float()}

    def _check_health(self, running: dict[str, float], epoch: int, step: int) -> None:
        loss = running.get("loss")
        if loss is not None and not math.isfinite(loss):
            group = self.optimizer.param_groups[0]
            path = "rule.lr" if self.owns_update else "optimizer.lr"
            block = None if self.owns_update else self.spec.optimizer
            groups = [] if block is None else getattr(block.params, "groups", None) or []
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
        if self.data.val_x is not None and self.data.val_y is not None:  # held out together
            out.update({f"val_{k}": v for k, v in self.evaluate(self.data.val_x, self.data.val_y).items()})
        if self.spec.train.evaluate_test:
            test = self.evaluate(self.data.test_x, self.data.test_y)
            out.update({f"test_{k}": v for k, v in test.items()})
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
            # interned keys: pickle writes a key once per distinct object, so a history restored
            # from a checkpoint and one built in this process make the same bytes
            "history": [{sys.intern(key): value for key, value in epoch.items()} for epoch in self.history],
            "rule": self.rule.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout and other draws from the global stream
        }
        if self.augment is not None:
            state["augment"] = self.augment.generator.get_state()
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
        if self.augment is not None:
            self.augment.generator.set_state(state["augment"])
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
        return inference_model(self.rule, self.data, self.info.input_shape)

    def example_input(self) -> Any:
        """Two raw test examples, as the exported model takes them (its signature's example)."""
        return example_input(self.data, self.info.input_shape)
