"""Minimal hand-written PyTorch training steps, one per learning rule: the benchmark's baseline.

Each is what a researcher would write for one experiment, without altlearn: plain modules, one
Adam optimizer (GO-UP: its own SGD-plus-noise update), the rule's backward pass written directly.
They share no code with altlearn; ``benchmarks/suite.py`` times them against altlearn's trainer on
the same data, network shape, batch and optimizer.

Every loop has ``step(x, y) -> loss`` (x: normalised images (B, 1, 28, 28), y: labels (B,)); the
returned loss is a detached scalar tensor, so stepping never forces a host synchronisation.

Networks are described by :class:`MLP` (hidden widths, ReLU, a 10-way output layer) and
:class:`CNN` (conv/ReLU/2x2 max-pool stages, then a 10-way linear layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE = (1, 28, 28)
try:  # the devices torch has fused optimizer kernels for
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    FUSED_DEVICES = set(_get_fused_kernels_supported_devices())
except ImportError:
    FUSED_DEVICES = {"cuda"}


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel (CPU and CUDA), as a researcher who times a loop writes it and
    as altlearn builds it: otherwise the comparison would time two Adam implementations."""
    parameters = list(parameters)
    fused = all(p.device.type in FUSED_DEVICES for p in parameters) or None  # CPU: torch >= 2.4
    return torch.optim.Adam(parameters, lr=lr, fused=fused)


@dataclass(frozen=True)
class MLP:
    """Flatten, then Linear+ReLU per hidden width, then Linear to the 10 classes."""

    hidden: tuple[int, ...]


@dataclass(frozen=True)
class CNN:
    """Per stage Conv2d(kernel, padding kernel//2)+ReLU+MaxPool2d(2), then Linear to 10 classes."""

    channels: tuple[int, ...] = (32, 64)
    kernel: int = 5


# --------------------------------------------------------------------------------- networks


def build_blocks(net: MLP | CNN, conv=nn.Conv2d, linear=nn.Linear) -> list[nn.Sequential]:
    """The network as blocks (a trainable layer and what follows it); the last is the output layer.

    ``conv`` and ``linear`` build the trainable layers, so FA can substitute its own.
    """
    blocks: list[nn.Sequential] = []
    if isinstance(net, MLP):
        width = math.prod(IMAGE)
        for i, out in enumerate(net.hidden):
            head = [nn.Flatten()] if i == 0 else []
            blocks.append(nn.Sequential(*head, linear(width, out), nn.ReLU()))
            width = out
        head = [] if net.hidden else [nn.Flatten()]
        blocks.append(nn.Sequential(*head, linear(width, NUM_CLASSES)))
        return blocks
    channels, size = IMAGE[0], IMAGE[1]
    for out in net.channels:
        blocks.append(
            nn.Sequential(
                conv(channels, out, net.kernel, padding=net.kernel // 2), nn.ReLU(), nn.MaxPool2d(2)
            )
        )
        channels, size = out, size // 2
    blocks.append(nn.Sequential(nn.Flatten(), linear(channels * size * size, NUM_CLASSES)))
    return blocks


def build_model(net: MLP | CNN) -> nn.Sequential:
    return nn.Sequential(*[m for block in build_blocks(net) for m in block])


def output_error(scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, its gradient w.r.t. the scores (B, K)) in closed form."""
    log_p = F.log_softmax(scores.detach(), dim=1)  # (B, K)
    loss = F.nll_loss(log_p, y)
    error = (log_p.exp() - F.one_hot(y, scores.shape[1]).to(log_p.dtype)) / len(y)  # (B, K)
    return loss, error


# ---------------------------------------------------------------------------------------- BP


class Backprop:
    def __init__(self, net: MLP | CNN, device, lr: float = 1e-3) -> None:
        self.model = build_model(net).to(device)
        self.optimizer = adam(self.model.parameters(), lr)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


# ---------------------------------------------------------------------------------------- FA


class _FALinearFunction(torch.autograd.Function):
    """Linear layer whose backward sends the error down through a fixed random B instead of W."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):  # grad (B, out)
        x, feedback = ctx.saved_tensors  # x (B, in), feedback (out, in)
        grad_x = grad @ feedback if ctx.needs_input_grad[0] else None
        return grad_x, grad.t() @ x, grad.sum(0), None


class _FAConvFunction(torch.autograd.Function):
    """Conv2d whose input gradient is the transposed convolution with a fixed random kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, padding):
        ctx.save_for_backward(x, weight, feedback)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad):  # grad (B, C_out, H, W)
        x, weight, feedback = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, feedback, grad, padding=ctx.padding)
        grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad, padding=ctx.padding)
        return grad_x, grad_w, grad.sum((0, 2, 3)), None, None


class FALinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        feedback = torch.empty_like(self.weight)
        nn.init.kaiming_uniform_(feedback, a=math.sqrt(5))  # drawn like W, independently of it
        self.register_buffer("feedback", feedback)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FALinearFunction.apply(x, self.weight, self.bias, self.feedback)


class FAConv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=padding)
        feedback = torch.empty_like(self.weight)
        nn.init.kaiming_uniform_(feedback, a=math.sqrt(5))
        self.register_buffer("feedback", feedback)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FAConvFunction.apply(x, self.weight, self.bias, self.feedback, self.padding)


class FeedbackAlignment(Backprop):
    """BP's loop on a network whose layers carry the error down through fixed random matrices."""

    def __init__(self, net: MLP | CNN, device, lr: float = 1e-3) -> None:
        blocks = build_blocks(net, conv=FAConv2d, linear=FALinear)
        self.model = nn.Sequential(*[m for block in blocks for m in block]).to(device)
        self.optimizer = adam(self.model.parameters(), lr)


# --------------------------------------------------------------------------------------- DFA


class DirectFeedbackAlignment:
    """Detached blocks; each hidden block output receives e @ B_l; one backward for all blocks."""

    def __init__(self, net: MLP | CNN, device, lr: float = 1e-3) -> None:
        blocks = build_blocks(net)
        self.model = nn.Sequential(*blocks).to(device)
        self.hidden, self.output = list(self.model)[:-1], self.model[-1]
        with torch.no_grad():  # the size of each hidden block's output, for its B_l (K, n_l)
            h, widths = torch.zeros(1, *IMAGE, device=device), []
            for block in self.hidden:
                h = block(h)
                widths.append(h[0].numel())
        self.feedback = [
            torch.rand(NUM_CLASSES, n, device=device).sub_(0.5).mul_(2 / math.sqrt(NUM_CLASSES))
            for n in widths
        ]
        self.optimizer = adam(self.model.parameters(), lr)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        outputs, h = [], x
        for block in self.hidden:
            h = block(h.detach())  # detached input: no error travels through forward weights
            outputs.append(h)
        scores = self.output(h.detach())  # (B, K)
        loss, error = output_error(scores, y)
        signals = [(error @ b).view_as(out) for b, out in zip(self.feedback, outputs)]
        torch.autograd.backward([scores, *outputs], [error, *signals])
        self.optimizer.step()
        return loss


# --------------------------------------------------------------------------------------- IFA


class IndirectFeedbackAlignment:
    """MLP only: e @ B_1 reaches the first hidden layer, then moves up through the forward weights."""

    def __init__(self, net: MLP | CNN, device, lr: float = 1e-3) -> None:
        if not isinstance(net, MLP) or not net.hidden:
            raise ValueError("this hand-written IFA handles MLPs with hidden layers only")
        widths = (math.prod(IMAGE), *net.hidden, NUM_CLASSES)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])).to(device)
        self.feedback = (
            torch.rand(NUM_CLASSES, net.hidden[0], device=device).sub_(0.5).mul_(2 / math.sqrt(NUM_CLASSES))
        )  # B_1 (K, n_1)
        self.optimizer = adam(self.layers.parameters(), lr)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        h, pre = x.flatten(1), []
        for layer in self.layers[:-1]:
            a = layer(h)  # (B, n_l), graph to this layer's W and b only
            pre.append(a)
            h = a.detach().relu()
        scores = self.layers[-1](h)  # (B, K)
        loss, error = output_error(scores, y)
        with torch.no_grad():
            delta = (error @ self.feedback) * (pre[0] > 0)  # delta_1 (B, n_1)
            deltas = [delta]
            for layer, a in zip(self.layers[1:-1], pre[1:]):
                delta = F.linear(delta, layer.weight) * (a > 0)  # delta_{l+1} = f'(a) * W delta_l
                deltas.append(delta)
        torch.autograd.backward([scores, *pre], [error, *deltas])
        self.optimizer.step()
        return loss


# ---------------------------------------------------------------------------------------- FF


class ForwardForward:
    """MLP without the output layer: every Linear+ReLU is trained on its own goodness.

    Positive data carries the true label in its first 10 pixels, negative data a random wrong one;
    each layer sees its input divided by its root mean square. goodness = sum of squared activities;
    the loss is softplus(-(goodness - threshold * width)) on positives, softplus(+...) on negatives.
    """

    def __init__(self, net: MLP | CNN, device, lr: float = 1e-3, threshold: float = 1.0) -> None:
        if not isinstance(net, MLP) or not net.hidden:
            raise ValueError("this hand-written FF handles MLPs with hidden layers only")
        widths = (math.prod(IMAGE), *net.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])).to(device)
        self.threshold = threshold
        self.optimizer = adam(self.layers.parameters(), lr)

    @staticmethod
    def with_label(flat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = flat.clone()
        out[:, :NUM_CLASSES] = F.one_hot(labels, NUM_CLASSES).to(flat.dtype)
        return out

    def layer_loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        limit = self.threshold * pos.shape[1]
        logits = torch.cat([limit - pos.pow(2).sum(1), neg.pow(2).sum(1) - limit])  # (2B,)
        return F.softplus(logits).mean()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        flat = x.flatten(1)
        wrong = (y + torch.randint_like(y, 1, NUM_CLASSES)) % NUM_CLASSES
        pos, neg = self.with_label(flat, y), self.with_label(flat, wrong)
        total = torch.zeros((), device=x.device)
        for layer in self.layers:
            pos = layer(_rms_normalise(pos.detach())).relu()  # first forward pass: positive data
            neg = layer(_rms_normalise(neg.detach())).relu()  # second: negative data
            loss = self.layer_loss(pos, neg)
            loss.backward()  # reaches this layer only (its input is detached)
            total += loss.detach()
        self.optimizer.step()
        return total


def _rms_normalise(h: torch.Tensor) -> torch.Tensor:
    return h / (h.pow(2).mean(1, keepdim=True).sqrt() + 1e-8)


# ------------------------------------------------------------------------------------- GO-UP


class GoUp:
    """BP gradient g, then per tensor: theta <- theta - lr*g + lr*std(theta - g)*eps, eps ~ N(0, I)."""

    def __init__(self, net: MLP | CNN, device, lr: float = 0.01) -> None:
        self.model = build_model(net).to(device)
        self.lr = lr

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in self.model.parameters():
                spread = (p - p.grad).std(correction=0)
                p.sub_(p.grad, alpha=self.lr)
                p.add_(torch.randn_like(p) * spread, alpha=self.lr)
        return loss.detach()


HAND_LOOPS = {
    "bp": Backprop,
    "fa": FeedbackAlignment,
    "dfa": DirectFeedbackAlignment,
    "ifa": IndirectFeedbackAlignment,
    "ff": ForwardForward,
    "goup": GoUp,
}


def train_round(
    loop, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """One pass over (x, y) in a fresh seeded order; returns the summed batch losses (on device)."""
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        total += loop.step(x.index_select(0, index), y.index_select(0, index))
    return total
