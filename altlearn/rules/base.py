"""The rule contract: what every learning rule, built-in or third-party, implements.

A rule owns the training step. The trainer calls, for each batch::

    optimizer.zero_grad(set_to_none=True)
    metrics = rule.train_step(x, y)      # fills .grad of the parameters it trains
    optimizer.step()

A rule whose update *is* the rule (``owns_update = True``, e.g. GO-UP) returns it from
:meth:`Rule.make_optimizer` as a ``torch.optim.Optimizer``; the trainer then uses that instead of
the spec's ``optimizer`` block (which must be left out), and the lr schedule still applies to it.

Metrics stay tensors: ``train_step`` returns scalar tensors (``loss`` required, ``accuracy``
optional, anything else is logged under ``<rule name>/<key>``); the trainer accumulates them on the
device and reads them once per logging interval, so a step never forces a host synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from altlearn.components import Params

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NoParams(Params):
    """A rule without options."""


class Rule(nn.Module):
    """Base class of learning rules.

    Subclasses set ``Params`` (their spec options; unknown keys are rejected) and implement
    :meth:`train_step`. Fixed random tensors (feedback matrices) should be registered as buffers so
    they are saved with the model, moved with it to the GPU and never trained.
    """

    Params: ClassVar[type[Params]] = NoParams
    #: True: make_optimizer() provides the update; the spec's optimizer block must be left out.
    owns_update: ClassVar[bool] = False
    #: True: the network's last layer gives the class scores (its width must equal the classes).
    network_outputs_scores: ClassVar[bool] = True
    #: False for rules whose update has no BP counterpart to compare with (Forward-Forward).
    compare_with_bp: ClassVar[bool] = True

    def __init__(
        self,
        network: nn.Sequential,
        params: Params,
        *,
        loss: LossFn,
        num_classes: int,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.network = network
        self.params = params
        self.loss = loss
        self.num_classes = num_classes
        self.seed = seed

    @classmethod
    def check_network(cls, network: nn.Sequential, params: Params) -> list[tuple[int | None, str]]:
        """Problems that make this network untrainable by this rule, found at validation time.

        Returns ``(layer index or None, message)`` pairs; the validator turns them into errors at
        ``network.layers[i]``. ``network`` is built on the meta device: inspect modules and shapes,
        do not compute with it.
        """
        return []

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step on a batch: fill ``.grad`` (or update) and return scalar metrics."""
        raise NotImplementedError  # abstract

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The rule's own update (only called when ``owns_update`` is True)."""
        raise NotImplementedError  # abstract: only rules with owns_update implement it

    def health_check(self) -> str | None:
        """Called once per logging interval (host sync allowed): a message if training diverged.

        The trainer already stops on a non-finite loss; override to catch rule-specific failure
        (exploding parameters) with a message naming the likely cause.
        """
        return None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, num_classes) for evaluation and the exported model."""
        return self.network(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)

    def eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss and accuracy of :meth:`predict` on a batch (called under ``torch.no_grad``)."""
        scores = self.predict(x)
        return {"loss": self.loss(scores, y), "accuracy": accuracy(scores, y)}

    def gradient_rule(self) -> Rule | None:
        """The rule whose ``train_step`` fills ``.grad`` with this rule's update direction.

        Used by the alignment diagnostics. A rule whose gradient comes from another rule (GO-UP's
        gradient source) returns that rule; None means there is nothing to compare with BP.
        """
        return self if self.compare_with_bp else None

    def inference_module(self) -> nn.Module:
        """The module logged as the trained model: maps inputs to class scores."""
        return self.network


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of the batch whose highest score is the true label, as a tensor (no sync)."""
    return (scores.argmax(dim=-1) == labels).float().mean()
