"""Backpropagation: the exact gradient of the loss, the baseline every other rule is compared with."""

from __future__ import annotations

import torch

from altlearn.rules.base import Rule, accuracy


class Backprop(Rule):
    """Fills ``.grad`` with the true gradient of the mean batch loss."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.network(x)  # (B, K)
        loss = self.loss(scores, y)
        loss.backward()
        return {"loss": loss.detach(), "accuracy": accuracy(scores.detach(), y)}

    def gradient_rule(self) -> None:
        return None  # it *is* the reference: its alignment with BP would always be 0 degrees
