"""Forward gradients: directional derivatives by forward-mode AD instead of a backward pass.

For a loss L and a random tangent v ~ N(0, I), one forward-mode pass (``torch.func.jvp``) gives
the directional derivative L'(v) = grad L . v, and g = (grad L . v) v is an unbiased estimate of
grad L (E[v v^T] = I). ``num_directions`` k averages k such estimates (variance / k).

- ``perturb: weights`` (Baydin et al. 2022): v has one entry per trained parameter of the whole
  network, L is the spec's loss; every parameter's .grad is its slice of (1/k) sum_j (grad L . v_j) v_j.
  Works on any network; the estimate's variance grows with the number of parameters.
- ``perturb: activities`` (Ren, Kornblith, Liao & Hinton 2023, simplified): for every block l of
  a chain of linear blocks the tangent perturbs the linear layer's output z_l (B, n_l), one
  independent u_n per example; the loss is the block's own: for a hidden block the cross-entropy
  of a linear head P_l on h_l = post(z_l) (the rule's ``heads``, trained by their exact local
  gradient), for the output layer the spec's loss on the scores. Per example n,

      g_n = (d L_n / d z_n . u_n) u_n       dW_l = (1/B) g^T h_{l-1}     db_l = (1/B) sum_n g_n

  (the z -> W step is exact and local). Block inputs are detached: no error crosses a layer.
  Ren et al.'s local feature grouping and normalisation are not implemented.

Tangents come from the rule's own seeded generators (``DeviceGenerators``, stream "fwdgrad"), saved
in every checkpoint.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Count
from altlearn.rules.base import Rule, RuleContext, accuracy
from altlearn.rules.feedback.checks import ELEMENTWISE
from altlearn.rules.local.chain import chain_problems, linear_blocks
from altlearn.rules.randomness import DeviceGenerators, layer_seed


class ForwardGradientParams(Params):
    """What is perturbed, and how many tangents are averaged per step."""

    perturb: Literal["weights", "activities"] = Field(
        "activities",
        description=(
            "weights: one tangent over all parameters, the global loss (Baydin et al. 2022); "
            "activities: each linear layer's output, with a local loss per block (Ren et al. 2023)"
        ),
    )
    num_directions: Count = Field(1, le=4096, description="tangents averaged per step")


class ForwardGradient(Rule):
    """Forward gradients; with ``perturb: activities`` ``heads`` holds a linear head per hidden block."""

    Params = ForwardGradientParams
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
    params: ForwardGradientParams

    def __init__(self, params: ForwardGradientParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self.generators = DeviceGenerators(self.seed, per_layer="fwdgrad")
        if params.perturb == "activities":
            _, blocks = linear_blocks(self.network)
            weight = blocks[0].layer.weight
            heads = {
                str(b.index): _head(b.layer.out_features, self.num_classes, self.seed, b.index)
                for b in blocks[:-1]
            }
            self.heads = nn.ModuleDict(heads).to(weight.device, weight.dtype)

    @classmethod
    def check_network(cls, network, params) -> list:
        if getattr(params, "perturb", "activities") == "weights":
            return []
        hint = "; perturb: weights takes any network"
        return chain_problems(
            network, ELEMENTWISE, "elementwise activations only (perturb: activities)", hint
        )

    @classmethod
    def parameter_parts(cls, params) -> dict[str, str]:
        if params.perturb == "activities":
            return {"heads": "the hidden blocks' linear prediction heads (local losses)"}
        return {}

    def get_extra_state(self):
        return self.generators.state()

    def set_extra_state(self, state) -> None:
        self.generators.load_state(state)

    def _tangent(self, like: torch.Tensor, layer: int) -> torch.Tensor:
        """A standard normal tangent shaped like ``like``, from stream ``layer``."""
        return self.generators.randn(like.shape, device=like.device, layer=layer, dtype=like.dtype)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.params.perturb == "weights":
            return self._weights_step(x, y)
        return self._activities_step(x, y)

    def _weights_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        named = [(name, p) for name, p in self.network.named_parameters() if p.requires_grad]
        names, primals = [n for n, _ in named], tuple(p.detach() for _, p in named)
        buffers = dict(self.network.named_buffers())

        def loss_of(*values):
            # Buffers a forward pass updates (batch norm's running statistics) are cloned inside the
            # transform, which may not mutate the module's own tensors; the first direction's
            # updates are copied back below, so they advance once per step, as under BP.
            state = {name: b.clone() for name, b in buffers.items()}
            scores = torch.func.functional_call(self.network, {**dict(zip(names, values)), **state}, (x,))
            return self.loss(scores, y), (scores, state)

        estimates = [torch.zeros_like(p) for p in primals]
        k = self.params.num_directions
        with torch.no_grad():
            for j in range(k):
                tangents = tuple(self._tangent(p, n) for n, p in enumerate(primals))
                out = torch.func.jvp(loss_of, primals, tangents, has_aux=True)
                loss, slope, (scores, state) = cast("tuple[Any, Any, Any]", out)  # has_aux: three values
                if j == 0:
                    updated, metrics = state, {"loss": loss, "accuracy": accuracy(scores, y)}
                for estimate, v in zip(estimates, tangents):
                    estimate.add_(slope * v, alpha=1.0 / k)
            for name, b in buffers.items():
                b.copy_(updated[name])
        for (_, p), estimate in zip(named, estimates):
            p.grad = estimate
        return metrics

    def _activities_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        prefix, blocks = linear_blocks(self.network)
        h = x
        for module in prefix:
            h = module(h)
        local: list[torch.Tensor] = []
        for n, block in enumerate(blocks):
            z = block.layer(h.detach())  # (B, n_l), a graph to this layer's parameters only
            if n == len(blocks) - 1:
                losses = self._perturb(z, self.example_loss, y, block.index)
                return {"loss": losses.mean(), "accuracy": accuracy(z.detach(), y), **_hidden(local)}
            head = self.heads[str(block.index)]
            frozen = {k: v.detach() for k, v in head.named_parameters()}

            def local_losses(a, labels, block=block, head=head, frozen=frozen):
                scores = torch.func.functional_call(head, frozen, (block.run_post(a),))
                return F.cross_entropy(scores, labels, reduction="none")

            self._perturb(z, local_losses, y, block.index)
            with torch.no_grad():
                h = block.run_post(z.detach())
            head_loss = F.cross_entropy(head(h), y)  # the head: its exact local gradient
            head_loss.backward()
            local.append(head_loss.detach())
        raise AssertionError("unreachable: check_network requires an output layer")

    def _perturb(self, z: torch.Tensor, example_losses, y: torch.Tensor, layer: int) -> torch.Tensor:
        """Fill the layer's grads with the forward-gradient estimate of d(mean loss)/dz; return (B,) losses.

        The k directions run as one batch of k*B copies of z (one jvp), each with its own tangent.
        """
        primal, k, batch = z.detach(), self.params.num_directions, z.shape[0]
        copies = primal.repeat(k, *([1] * (z.dim() - 1)))  # (k*B, n)
        u = self._tangent(copies, layer)  # an independent direction per example and per copy
        with torch.no_grad():
            result = torch.func.jvp(lambda a: example_losses(a, y.repeat(k)), (copies,), (u,))
            losses, slopes = cast("tuple[torch.Tensor, torch.Tensor]", result)  # no aux: two values
            estimate = (slopes.view(-1, *([1] * (z.dim() - 1))) * u).view(k, *z.shape).sum(0)
        z.backward(estimate / (k * batch))
        return losses[:batch]


def _hidden(local: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"fwdgrad/hidden": torch.stack(local).mean()} if local else {}


def _head(width: int, num_classes: int, seed: int, index: int) -> nn.Linear:
    """A hidden block's linear head, PyTorch's default init drawn from the rule's own stream."""
    with torch.random.fork_rng(devices=[]):  # keep the global stream (dropout's) where it was
        head = nn.Linear(width, num_classes)
    generator = torch.Generator().manual_seed(layer_seed(seed, index, "fwdgrad-head"))
    bound = 1.0 / width**0.5
    nn.init.uniform_(head.weight, -bound, bound, generator=generator)
    nn.init.uniform_(head.bias, -bound, bound, generator=generator)
    return head
