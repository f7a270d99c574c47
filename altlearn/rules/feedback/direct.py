"""A fixed random signal sent straight to every feedback point: the base of dfa and of DRTP-like rules.

The network is cut into *feedback points*. At the top level a point is a *unit*: a trainable layer
or a residual block, plus the modules after it up to the next one (activation, pooling,
normalisation); modules before the first unit belong to it. With ``feedback_points: layers`` the
body of every residual block is cut the same way (recursively), and the block's own output stays a
point that feeds the last unit of its body and its shortcut. A chain (no residual block) has the
same points either way: one per trainable layer.

Every unit runs on a detached input, so autograd gives each point's parameters the gradient of
``<point output, signal>`` through the unit's own local derivatives only (its activation, batch
norm, pooling, and, inside a residual block, the block's own layers and sum), never through a
forward weight of another unit. The last top-level unit is the output layer: it receives the
true output error e = dLoss/dscores (its ordinary local gradient). Every other point p receives
``s B_p``, where s (B, K) is :meth:`DirectFeedbackRule.direct_signal` and B_p (K, n_p) is p's fixed
random matrix (n_p: one example's output size at p). With ``conv_feedback: kernel`` a point that
is the input (C, H, W) of a conv layer receives instead what BioTorch's DFA conv layers send: the
error as a map constant over that layer's output positions, taken back to its input through a
fixed random kernel (K, C, kh, kw) with the layer's stride, padding and dilation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.grad
from pydantic import Field
from torch import nn

from altlearn.nn.composite import Residual
from altlearn.nn.network import LayerKey, is_trainable, layer_key
from altlearn.rules.base import RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, OutputFeedbackRule
from altlearn.rules.feedback.checks import Problems, describe, layer_problems


class DirectFeedbackParams(FeedbackParams):
    """The feedback matrices' options plus where the signal is sent."""

    feedback_points: Literal["blocks", "layers"] = Field(
        "blocks",
        description=(
            "blocks: one feedback point per top-level unit (a trainable layer or a residual block with "
            "the modules after it); layers: inside residual blocks too, one per trainable layer of "
            "the body (the block's output stays a point). Chains: the same either way"
        ),
    )
    conv_feedback: Literal["dense", "kernel"] = Field(
        "dense",
        description=(
            "what a point feeding a conv layer receives: dense: its own random matrix (K, C*H*W), a "
            "different signal at every position (Nøkland's DFA); kernel: BioTorch's DFA for conv "
            "layers, the error as a map constant over the conv's output taken back through a fixed "
            "random kernel (K, C, kh, kw) with the conv's stride and padding"
        ),
    )


@dataclass
class Unit:
    """A feedback point's modules: ``first`` (a trainable layer or residual block) and ``post``."""

    key: LayerKey
    first: nn.Module
    post: list[nn.Module] = field(default_factory=list)
    lead: list[nn.Module] = field(default_factory=list)  # modules before the chain's first unit


def split_units(items: list[tuple[str, nn.Module]]) -> list[Unit]:
    """Cut a chain of (module path, module) into units; leading modules join the first unit."""
    units: list[Unit] = []
    lead: list[nn.Module] = []
    for path, module in items:
        if is_trainable(module) or isinstance(module, Residual):
            units.append(Unit(layer_key(path), module, lead=lead if not units else []))
        elif units:
            units[-1].post.append(module)
        else:
            lead.append(module)
    return units


def _children(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [(f"{prefix}{name}", child) for name, child in module.named_children()]


class DirectFeedbackRule(OutputFeedbackRule):
    """Base of rules that send one fixed random projection of a (B, K) signal to every point.

    Subclasses choose the signal by overriding :meth:`direct_signal`; everything else (the points,
    the matrices ``feedback_<key>`` (K, n_p), detached units, one backward pass) is done here.
    """

    Params = DirectFeedbackParams
    params: DirectFeedbackParams

    def __init__(self, params: DirectFeedbackParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self._units = split_units(_children(self.network, ""))
        self._draw_known_feedback([(u.key, u.first, u.post) for u in self._units[:-1]])
        self._next_conv = {}  # point key -> the conv layer it feeds (conv_feedback: kernel)
        if params.conv_feedback == "kernel":
            for unit, following in zip(self._units, self._units[1:]):
                if isinstance(following.first, nn.Conv2d):
                    self._next_conv[unit.key] = following.first

    @classmethod
    def check_network(cls, network, params) -> Problems:
        problems = layer_problems(network, min_trainable=2)
        units = split_units(_children(network, ""))
        if units and not is_trainable(units[-1].first):  # the output layer gets the true error
            last = units[-1]
            message = (
                "needs the output layer to be a linear or conv2d layer outside "
                f"residual blocks, not {describe(last.key, last.first)}"
            )
            problems.append((last.key, message))
        if getattr(params, "conv_feedback", "dense") == "kernel":  # ifa shares this check
            blocks = [path for path, module in network.named_modules() if isinstance(module, Residual)]
            if blocks:
                message = (
                    "conv_feedback: kernel is BioTorch's DFA for conv chains (LeNet); it is not "
                    f"defined for residual blocks ({blocks[0]}): use conv_feedback: dense"
                )
                problems.append((layer_key(blocks[0]), message))
        return problems

    def direct_signal(self, error: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (B, K) signal every feedback point receives through its matrix: override this.

        ``error`` is e = dLoss/dscores (B, K) (what the output layer receives), ``y`` the labels (B,).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement direct_signal(error, y)")

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        points: list[tuple[LayerKey, torch.Tensor]] = []
        scores = self._run_chain(self._units, x, points)  # (B, K)
        loss, error = self._output_error(scores, y)  # error (B, K)
        signal = self.direct_signal(error, y).to(error.dtype)
        targets = [self._point_signal(signal, key, out) for key, out in points]
        # One backward pass over all units: each gets its projection, the output layer gets e.
        torch.autograd.backward([scores, *(out for _, out in points)], [error, *targets])
        return {"loss": loss, "accuracy": accuracy(scores.detach(), y)}

    def _point_signal(self, signal: torch.Tensor, key: LayerKey, out: torch.Tensor) -> torch.Tensor:
        """What point ``key`` receives, shaped like its output ``out``: ``signal @ B_p``, or for
        a point feeding a conv with ``conv_feedback: kernel`` the kernel's transposed conv of the
        constant map ``signal``."""
        conv = self._next_conv.get(key)
        if conv is None:
            return (signal @ self._output_feedback(key, out)).view_as(out)
        kernel = self._kernel_feedback(key, conv, out)
        height, width = _conv_output_size(conv, out.shape[2:])
        constant_map = signal.to(kernel.dtype)[:, :, None, None].expand(-1, -1, height, width)
        # groups=1 whatever the conv's: every input channel hears every class's error
        back = torch.nn.grad.conv2d_input(
            out.shape, kernel, constant_map, conv.stride, conv.padding, conv.dilation
        )
        return back.to(out.dtype)

    def _kernel_feedback(self, key: LayerKey, conv: nn.Conv2d, out: torch.Tensor) -> torch.Tensor:
        if self.has_feedback(key):
            return self.fixed_feedback(key)
        shape = (self.num_classes, out.shape[1], *conv.kernel_size)
        fan_in = self.num_classes * conv.kernel_size[0] * conv.kernel_size[1]
        return self._add_feedback(key, shape, fan_in, out.device, out.dtype)

    def _run_chain(self, units: list[Unit], h: torch.Tensor, points: list) -> torch.Tensor:
        """Run units in order, each on a detached input; record every output but the last."""
        for n, unit in enumerate(units):
            h = self._run_unit(unit, h.detach(), points)
            if n < len(units) - 1:
                points.append((unit.key, h))
        return h

    def _run_unit(self, unit: Unit, h: torch.Tensor, points: list) -> torch.Tensor:
        for module in unit.lead:
            h = module(h)
        first = unit.first
        if isinstance(first, Residual) and self.params.feedback_points == "layers":
            body = split_units(_children(first.body, f"{unit.key}.body."))
            inner = self._run_chain(body, h, points) if body else first.body(h)
            h = first.post(inner + first.shortcut(h))
        else:
            h = first(h)
        for module in unit.post:
            h = module(h)
        return h


def _conv_output_size(conv: nn.Conv2d, size) -> tuple[int, int]:
    """The (height, width) a conv layer makes of an input of spatial ``size``."""
    return tuple(
        (size[i] + 2 * conv.padding[i] - conv.dilation[i] * (conv.kernel_size[i] - 1) - 1) // conv.stride[i]
        + 1
        for i in range(2)
    )
