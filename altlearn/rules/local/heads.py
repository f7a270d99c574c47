"""The auxiliary heads of local losses (Nøkland & Eidnes 2019): one per hidden block.

See :mod:`altlearn.rules.local.localloss` for the losses they compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.rules.randomness import layer_seed

if TYPE_CHECKING:
    from altlearn.rules.local.localloss import LocalLossParams


def similarity(z: torch.Tensor) -> torch.Tensor:
    """(B, B) cosine similarities of the rows of ``z`` (B, n) after centring each row."""
    centred = z - z.mean(dim=1, keepdim=True)
    # vector_norm: its gradient at a zero row is 0 (sqrt of a sum of squares would give nan there)
    unit = centred / (1e-8 + torch.linalg.vector_norm(centred, dim=1, keepdim=True))
    return (unit @ unit.T).clamp(-1.0, 1.0)


class _FeedbackLinear(torch.autograd.Function):
    """h W^T + b whose error reaches h through a fixed matrix B (shaped like W) instead of W."""

    @staticmethod
    def forward(ctx, h, weight, bias, feedback):
        ctx.save_for_backward(h, feedback)
        return h @ weight.T + bias

    @staticmethod
    def backward(ctx, grad):
        h, feedback = ctx.saved_tensors
        return grad @ feedback, grad.T @ h, grad.sum(0), None


class LocalHead(nn.Module):
    """A hidden block's loss: ``forward(h (B, n), y (B,)) -> scalar``, the weighted local loss."""

    head_feedback: torch.Tensor  # buffers, with bpf
    label_projection: torch.Tensor

    def __init__(self, width: int, num_classes: int, params: LocalLossParams, seed: int, index: int) -> None:
        super().__init__()
        self.kind, self.beta, self.bpf, self.num_classes = params.loss, params.beta, params.bpf, num_classes

        def generator(what: str) -> torch.Generator:  # one stream per draw: independent of the options
            return torch.Generator().manual_seed(layer_seed(seed, index, f"localloss-{what}"))

        outputs = params.target_size if self.bpf else num_classes
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws: keep the global stream (dropout's)
            if self.kind != "sim":
                self.predict = nn.Linear(width, outputs)
            if self.kind != "pred" and not self.bpf:
                self.project = nn.Linear(width, width, bias=False)
        bound = 1.0 / width**0.5
        if self.kind != "sim":  # the prediction head, zero-initialised as in the authors' code
            nn.init.zeros_(self.predict.weight)
            nn.init.uniform_(self.predict.bias, -bound, bound, generator=generator("bias"))
            if self.bpf:  # the authors' LinearFA: zero bias, feedback U(+-1/sqrt(width))
                nn.init.zeros_(self.predict.bias)
                feedback = torch.empty(outputs, width).uniform_(-bound, bound, generator=generator("head"))
                self.register_buffer("head_feedback", feedback)
        if self.kind != "pred" and not self.bpf:  # Q: PyTorch's default init, from our own stream
            nn.init.kaiming_uniform_(self.project.weight, a=5**0.5, generator=generator("sim"))
        if self.bpf:  # R: labels -> target_size, never trained
            bound = 1.0 / num_classes**0.5
            draw = generator("labels")
            target = torch.empty(params.target_size, num_classes).uniform_(-bound, bound, generator=draw)
            self.register_buffer("label_projection", target)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.num_classes).to(h.dtype)  # (B, K)
        target = onehot @ self.label_projection.T if self.bpf else onehot  # (B, K or target_size)
        if self.kind == "pred":
            return self._pred(h, y, target)
        if self.kind == "sim":
            return self._sim(h, target)
        return (1.0 - self.beta) * self._pred(h, y, target) + self.beta * self._sim(h, target)

    def _pred(self, h: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.bpf:
            return F.cross_entropy(self.predict(h), y)
        logits = _FeedbackLinear.apply(h, self.predict.weight, self.predict.bias, self.head_feedback)
        return F.binary_cross_entropy_with_logits(logits, (target > 0).to(logits.dtype))

    def _sim(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        features = h if self.bpf else self.project(h)
        return F.mse_loss(similarity(features), similarity(target))
