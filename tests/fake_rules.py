"""Rules that misbehave on purpose, registered as an in-process plugin for failure-path tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from pydantic import Field

from altlearn.api import Params, Rule, hookimpl
from altlearn.rules.backprop import Backprop


class _FailAt(Params):
    at_step: int = Field(3, ge=1, description="global step at which to misbehave")


class _Counting(Backprop):
    Params = _FailAt

    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self.steps = 0

    def train_step(self, x, y):
        self.steps += 1
        metrics = super().train_step(x, y)
        if self.steps >= self.params.at_step:
            self.misbehave(metrics)
        return metrics

    def misbehave(self, metrics) -> None:
        raise RuntimeError("subclasses choose how to misbehave")


class CrashingRule(_Counting):
    def misbehave(self, metrics) -> None:
        raise RuntimeError("boom: a bug inside the rule")


class InterruptedRule(_Counting):
    def misbehave(self, metrics) -> None:
        raise KeyboardInterrupt


class InterruptOnceRule(_Counting):
    """Ctrl-C at ``at_step``, once per process: the resumed run then trains to the end."""

    fired = False

    def misbehave(self, metrics) -> None:
        if not InterruptOnceRule.fired:
            InterruptOnceRule.fired = True
            raise KeyboardInterrupt


class NanRule(_Counting):
    def misbehave(self, metrics) -> None:
        metrics["loss"] = torch.tensor(float("nan"))


class _Pause(_FailAt):
    folder: str = Field(description="handshake folder: 'ready' is written there, then 'go' awaited")


class PausingRule(_Counting):
    """At ``at_step`` (once per process) writes ``folder/ready`` and waits for ``folder/go``: a test
    in another process injects a fault at a known point of the run meanwhile."""

    Params = _Pause

    def misbehave(self, metrics) -> None:
        if self.steps != self.params.at_step:
            return
        folder = Path(self.params.folder)
        (folder / "ready").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never wrote 'go'")
            time.sleep(0.05)


class _Fill(_FailAt):
    path: str = Field(description="a file to grow until the file system has `leave` bytes left")
    leave: int = Field(100_000, ge=0)


class DiskFillingRule(_Counting):
    """At ``at_step`` fills the file system of ``path`` (a small one the test mounted)."""

    Params = _Fill

    def misbehave(self, metrics) -> None:
        path = Path(self.params.path)
        once = path.with_name(path.name + ".filled")  # a resumed run must not fill it again
        if self.steps != self.params.at_step or once.exists():
            return
        once.touch()
        free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
        with open(path, "wb") as f:
            f.write(b"\0" * max(0, free - self.params.leave))


class OwnUpdateRule(Rule):
    """A rule with its own optimizer: the spec must not have an optimizer section."""

    def train_step(self, x, y):
        loss = self.loss(self.network(x), y)
        loss.backward()
        return {"loss": loss.detach()}

    def make_optimizer(self):
        return torch.optim.SGD(self.network.parameters(), lr=0.1)


class _Mistake(Params):
    mistake: str = Field("float", description="float | no_loss | vector | none | no_grad | grad_norm")


class BadStepRule(Backprop):
    """Breaks the train_step contract the way a new plugin author might."""

    Params = _Mistake

    def train_step(self, x, y):
        scores = self.network(x)
        mistake = self.params.mistake
        if mistake == "vector":
            losses = torch.nn.functional.cross_entropy(scores, y, reduction="none")  # (B,)
            losses.mean().backward()
            return {"loss": losses.detach()}
        loss = self.loss(scores, y)
        if mistake != "no_grad":
            loss.backward()
        return {
            "float": {"loss": loss.item()},
            "no_loss": {"losss": loss.detach()},
            "none": None,
            "no_grad": {"loss": loss.detach()},
            "grad_norm": {"loss": loss.detach(), "grad_norm": loss.detach()},  # clipping's name
        }[mistake]


class BadCheckRule(Backprop):
    """check_network returns bare messages instead of (index, message) pairs."""

    @classmethod
    def check_network(cls, network, params):
        return ["the network is too small"]


class NestedCheckRule(Backprop):
    """check_network keys a problem by a nested layer's module path, as fa does inside a residual block."""

    @classmethod
    def check_network(cls, network, params):
        return [("1.body.0", "a nested layer it cannot train"), (None, "and one about the whole network")]


@hookimpl
def altlearn_register_rules(register):
    register("crash", CrashingRule)
    register("interrupt", InterruptedRule)
    register("interrupt_once", InterruptOnceRule)
    register("nan", NanRule)
    register("bad_step", BadStepRule)
    register("bad_check", BadCheckRule)
    register("nested_check", NestedCheckRule)
    register("own_update", OwnUpdateRule)
    register("pause", PausingRule)
    register("fill_disk", DiskFillingRule)
