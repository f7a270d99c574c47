"""What every check builds: the rule under test on a small network, batches, and the loop's step.

A :class:`Case` is one rule class with its options on one network; a check makes fresh rules from
it (each on its own deep copy of the network) and drives them as the trainer does: the optimizer
zeroes ``.grad`` (to None), ``train_step`` fills it, the optimizer steps. Nothing here reads a
spec, a data set or MLflow, so a check takes milliseconds.
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from altlearn.components.base import Params
from altlearn.optim.losses import cross_entropy
from altlearn.rules.base import Rule, RuleContext, brings_own_update

#: digits-shaped data (scikit-learn's 8x8 digits, a spec's ``data: {type: digits}``)
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10
BATCH = 16
SEED = 3  # the spec seed every rule under test gets (not 0: a rule must not rely on it being 0)


class CheckFailed(AssertionError):
    """A rule broke the contract; the message says what it must change."""


class CheckSkipped(Exception):
    """A check that does not apply here (an undeclared capability, no CUDA); the message says why."""


def default_layers(rule_class: type[Rule], num_classes: int) -> list[dict[str, Any]]:
    """The default network as a spec writes it: three trainable layers (two hidden, so an error
    travels through a hidden layer) and K scores; for a rule whose network gives no scores
    (Forward-Forward) two ReLU blocks instead."""
    if rule_class.network_outputs_scores:
        hidden, last = "tanh", [{"type": "linear", "out_features": num_classes}]
    else:
        hidden, last = "relu", []
    return [
        {"type": "flatten"},
        {"type": "linear", "out_features": 32},
        {"type": hidden},
        {"type": "linear", "out_features": 24},
        {"type": hidden},
        *last,
    ]


def build_layers(layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> nn.Sequential:
    """:func:`default_layers` as torch modules, drawn from the checks' seed."""
    modules: list[nn.Module] = []
    width = 1
    for size in input_shape:
        width *= size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        for layer in layers:
            if layer["type"] == "linear":
                modules.append(nn.Linear(width, layer["out_features"]))
                width = layer["out_features"]
            else:
                modules.append({"flatten": nn.Flatten, "tanh": nn.Tanh, "relu": nn.ReLU}[layer["type"]]())
    return nn.Sequential(*modules)


@dataclass
class Case:
    """One rule (class and options) on one network, with the name messages call it by."""

    rule_class: type[Rule]
    params: Params
    label: str  # "rule 'signsym'" or "rule class SignSymmetry"
    network: nn.Sequential  # a template: every rule gets its own deep copy
    registered_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # as a spec writes them
    spec_layers: list[Any] | None = None  # the network as a spec writes it, when it is the default
    input_shape: tuple[int, ...] = INPUT_SHAPE
    num_classes: int = NUM_CLASSES
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def on(self, device: str | torch.device) -> Case:
        """The same case, its rules and batches on ``device``."""
        return dataclasses.replace(self, device=torch.device(device))

    def build(self, network: nn.Sequential | None = None) -> Rule:
        """A fresh rule, as the trainer makes it: the network on the CPU, then ``.to(device)``."""
        template = self.network if network is None else network
        context = RuleContext(copy.deepcopy(template), cross_entropy, self.num_classes, SEED)
        return self.rule_class(self.params, context).to(self.device)

    def batch(self, index: int = 0, size: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index``: normal inputs (as normalised data is) and labels covering every class."""
        generator = torch.Generator().manual_seed(1000 + index)
        x = torch.randn(size, *self.input_shape, generator=generator)
        y = (torch.arange(size) + index) % self.num_classes
        return x.to(self.device), y.to(self.device)


def make_optimizer(rule: Rule) -> torch.optim.Optimizer:
    """The rule's own optimizer if it brings one, else SGD with momentum (state to checkpoint)."""
    if brings_own_update(type(rule)):
        optimizer = rule.make_optimizer()
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise CheckFailed(
                f"make_optimizer is overridden but returned {type(optimizer).__name__}: "
                "return a torch.optim.Optimizer (or do not override it)"
            )
        return optimizer
    trained = [p for p in rule.parameters() if p.requires_grad]
    return torch.optim.SGD(trained, lr=0.05, momentum=0.9)


#: a parameter's name -> the update a step left in its .grad (None: none)
Grads = dict[str, torch.Tensor | None]
#: a rule's train_step, or a compiled one
StepFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class Step:
    """What one training step gave: its metrics and the update it left in ``.grad``."""

    metrics: Any
    grads: Grads


_WATCH_SYNCS: list[bool] = [False]  # True while the CUDA check runs: steps must not synchronise


@contextmanager
def cuda_steps_refuse_syncs() -> Iterator[None]:
    """Within the context, every :func:`call_step` on CUDA runs in torch's sync debug mode
    "error": a step that waits for the host raises (the harness's own comparisons may sync)."""
    _WATCH_SYNCS[0] = True
    try:
        yield
    finally:
        _WATCH_SYNCS[0] = False


def call_step(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> Any:
    """``rule.train_step(x, y)``, watched for host syncs on CUDA when the CUDA check asks."""
    if not (_WATCH_SYNCS[0] and x.device.type == "cuda"):
        return rule.train_step(x, y)
    mode = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return rule.train_step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode(mode)


def train_step(
    rule: Rule, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, fn: StepFn | None = None
) -> Step:
    """One step of the training loop: zero (to None), the rule's step (or ``fn``, its compiled
    version), then the optimizer's."""
    optimizer.zero_grad(set_to_none=True)
    metrics = call_step(rule, x, y) if fn is None else fn(x, y)
    grads = {name: None if p.grad is None else p.grad.detach().clone() for name, p in rule.named_parameters()}
    optimizer.step()
    return Step(metrics, grads)


@contextmanager
def random_state(device: torch.device) -> Iterator[None]:
    """Leave the caller's global random streams as they were; inside, start from the seed."""
    if device.type == "cuda":
        forked = torch.random.fork_rng(devices=[device.index or 0], device_type="cuda")
    else:
        forked = torch.random.fork_rng(devices=[])
    with forked:
        torch.manual_seed(SEED)
        yield


def global_stream(device: torch.device) -> list[torch.Tensor]:
    """The global random state a step could advance: the CPU's, and the device's."""
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def through_checkpoint(state: Any, what: str) -> Any:
    """``state`` written and read back as ``altlearn resume`` does (``weights_only=True``)."""
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the rule's state, whatever it holds
        raise CheckFailed(
            f"{what} cannot go through a checkpoint ({type(exc).__name__}: {exc}): checkpoints "
            "hold tensors, numbers, strings and lists/dicts of them (resume loads with "
            "weights_only=True)"
        ) from exc


def same(a: Any, b: Any) -> bool:
    """Bit-identical, through dicts, lists and tuples of tensors and plain values (nan == nan)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        try:
            torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return False
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b))
    return bool(a == b)


def first_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The first key whose values differ (or that only one side has), else None."""
    for key in list(a) + [k for k in b if k not in a]:
        if key not in a or key not in b or not same(a[key], b[key]):
            return str(key)
    return None


def state_of(rule: Rule) -> dict[str, Any]:
    """The rule's state_dict, copied (it holds live tensors), extra state included."""
    return {key: value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
            for key, value in rule.state_dict().items()}  # fmt: skip
