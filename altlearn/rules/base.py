"""The rule contract: what every learning rule, built-in or third-party, implements.

The trainer builds the network from the spec, then the rule, and for every batch runs::

    rule = RuleClass(params, RuleContext(network, loss, num_classes, seed)).to(device)
    optimizer = rule.make_optimizer() if brings_own_update(RuleClass) else <the spec's optimizer>
    optimizer.zero_grad(set_to_none=True)
    metrics = rule.train_step(x, y)      # fills .grad of the parameters it trains
    optimizer.step()                     # then the spec's lr schedule steps

and evaluates with ``eval_step`` (under ``torch.no_grad``, in eval mode). The model logged as the
trained model is :meth:`Rule.inference_module`, behind the input normalisation.

Metrics stay tensors: ``train_step`` returns scalar tensors (``loss`` required, ``accuracy``
optional, anything else is logged under its own name); the trainer accumulates them on the device
and reads them once per logging interval, so a step never forces a host synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from altlearn.components.base import Params
from altlearn.components.base import Params as Options  # in class Rule, `Params` is its attribute
from altlearn.optim.losses import LossFn


class NoParams(Params):
    """A rule without options."""


@dataclass(frozen=True)
class RuleContext:
    """What the trainer hands every rule besides its own options."""

    network: nn.Sequential  # built from spec.network, on the CPU; the rule trains its parameters
    loss: LossFn  # loss(scores (B, K), labels (B,)) -> the batch's mean loss, a scalar tensor
    num_classes: int  # K
    seed: int = 0  # the spec's seed: derive the seeds of the rule's own random draws from it
    #: example_loss(scores (B, K), labels (B,)) -> (B,): each example's loss as if it were a batch
    #: of one, whatever the loss's own reduction; None: derived from ``loss`` (:func:`per_example`)
    example_loss: LossFn | None = None


def per_example(loss: LossFn) -> LossFn:
    """``loss`` per example: ``(scores (B, K), labels (B,)) -> (B,)``, each the loss of a batch of
    one, so a rule that sums over the batch (an energy) need not assume the loss averages."""

    def one(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss(scores.unsqueeze(0), labels.unsqueeze(0))

    def losses(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        try:
            return torch.func.vmap(one)(scores, labels)
        except RuntimeError:  # a plugin's loss vmap cannot batch (data-dependent): one by one
            return torch.stack([one(s, y) for s, y in zip(scores, labels)])

    return losses


class Rule(nn.Module):
    """Base class of learning rules: set ``Params``, implement ``train_step``; the rest has defaults.

    ``__init__`` stores ``self.params``, ``self.context`` and, for short, ``self.network`` (a
    submodule), ``self.loss``, ``self.example_loss``, ``self.num_classes`` and ``self.seed``; it
    refuses a network that :meth:`check_network` finds problems with. Register fixed random tensors
    (feedback matrices) as buffers: they move with ``.to(device)``, are saved in checkpoints and are
    never trained.

    A rule is an ``nn.Module``: every module or tensor assigned to ``self`` is registered, moved and
    saved. A slice of the network (``self.body = self.network[:3]``) registers its layers a second
    time, under a second checkpoint key; keep such views in a plain list, a property, or set them
    with ``object.__setattr__``.
    """

    Params: ClassVar[type[Params]] = NoParams
    #: True: the network's last layer gives the class scores (validation checks its width is K).
    network_outputs_scores: ClassVar[bool] = True
    #: Optional conditions the rule is known to train under, each checked by altlearn.testing
    #: when declared: "bf16" (train.precision: bf16 autocast), "compile" (train.compile).
    supports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: Options, context: RuleContext) -> None:
        super().__init__()
        problems = self.check_network(context.network, params)
        if problems:  # a rule never trains a network it cannot handle (no silent BP fallback)
            # The messages name no rule (validation prefixes the registered name): say the class.
            messages = "; ".join(message for _, message in problems)
            raise ValueError(f"{type(self).__name__} cannot train this network: {messages}")
        self.params, self.context = params, context
        self.network = context.network
        self.loss, self.num_classes, self.seed = context.loss, context.num_classes, context.seed
        self.example_loss: LossFn = context.example_loss or per_example(context.loss)

    @classmethod
    def check_network(cls, network: nn.Sequential, params: Options) -> list[tuple[int | str | None, str]]:
        """What makes this network untrainable by this rule: ``(layer key or None, message)``.

        The key is a top-level layer's index, or a nested layer's module path (``"3.body.1"``, as
        ``network.named_modules()`` names it). Also called at validation time, with the network on
        the meta device: inspect modules and shapes, do not compute. Each pair becomes a spec error
        at the layer's YAML path (``network.layers[3].layers[1]``, :func:`altlearn.nn.network.yaml_path`),
        prefixed with the rule's registered name (``rule 'fa': ``): a rule's only name is the one
        it is registered under, so the message must not repeat it ("cannot train ...").
        """
        return []

    @classmethod
    def parameter_parts(cls, params: Options) -> dict[str, str]:
        """The rule's own submodules with trained parameters (not the network's layers) that an
        optimizer group may name under these options (``optimizer.groups: [{params: head, ...}]``),
        each with what it is; the attribute of that name must be an ``nn.Module``."""
        return {}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Required. Fill ``.grad`` of the trained parameters for a batch; return scalar metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_step(x, y)")

    def eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics on a test or validation batch; default: loss and accuracy of the inference module."""
        scores = self.inference_module()(x)  # (B, K)
        return {"loss": self.loss(scores, y), "accuracy": accuracy(scores, y)}

    def inference_module(self) -> nn.Module:
        """The one way to classify: a module mapping (normalised) inputs to class scores (B, K).

        Used for evaluation and logged as the trained model. Default: the network itself.
        """
        return self.network

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """The rule's own update, or None (the default): the trainer uses the spec's optimizer.

        Override it only when the update *is* the rule (GO-UP): validation then refuses an
        ``optimizer`` block in the spec, and the spec's lr schedule drives the returned optimizer.
        """
        return None

    def gradient_rule(self) -> Rule | None:
        """The rule whose ``train_step`` fills ``.grad`` with this rule's update direction.

        The alignment diagnostic compares that with BP. Default: ``self``; None when there is
        nothing to compare (bp itself, local objectives); a wrapper (GO-UP) returns its source.
        """
        return self

    def health_check(self) -> str | None:
        """Once per logging interval (a host sync is fine): a message stops the run as diverged.

        The trainer already stops on a non-finite loss; override for rule-specific failure.
        """
        return None

    def get_extra_state(self) -> Any:
        """State that is neither a parameter nor a buffer but changes while training.

        A step counter, the state of a generator the steps draw from (see
        :class:`~altlearn.rules.randomness.DeviceGenerators`). It goes into every checkpoint, so
        ``altlearn resume`` continues exactly, and the alignment diagnostic restores it after its
        extra ``train_step``. Return something ``torch.save`` can write; default: nothing (``{}``).
        """
        return {}

    def set_extra_state(self, state: Any) -> None:
        """Restore what :meth:`get_extra_state` returned (on resume and after each diagnostic)."""


def brings_own_update(rule_class: type) -> bool:
    """Whether a rule class supplies its update (overrides make_optimizer): then no optimizer block."""
    return getattr(rule_class, "make_optimizer", Rule.make_optimizer) is not Rule.make_optimizer


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of the batch whose highest score is the true label, as a tensor (no sync)."""
    return (scores.argmax(dim=-1) == labels).float().mean()
