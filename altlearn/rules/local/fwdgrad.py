"""Forward gradients: directional derivatives by forward-mode AD instead of a backward pass.

For a loss L and a random tangent v ~ N(0, I), one forward-mode pass (``torch.func.jvp``) gives
the directional derivative L'(v) = grad L . v, and g = (grad L . v) v is an unbiased estimate of
grad L (E[v v^T] = I). ``num_directions`` k averages k such estimates (variance / k).

- ``perturb: weights`` (Baydin et al. 2022): v has one entry per trained parameter of the whole
  network, L is the spec's loss; every parameter's .grad is its slice of (1/k) sum_j (grad L . v_j) v_j.
  Works on any network; the estimate's variance grows with the number of parameters.
- ``perturb: activities`` (Ren, Kornblith, Liao & Hinton 2023, simplified): for every block l of
  a chain of linear blocks the direction perturbs the linear layer's output z_l (B, n_l), one per
  example; per example n, with L_n the loss ``local_losses`` picks (true: the cross-entropy of a
  linear head P_l on h_l = post(z_l), the rule's ``heads``, trained by their exact local gradient;
  false: the spec's loss at the network's output, by forward mode through the layers above) and
  the direction ``guess`` picks (random: u_n ~ N(0, I); local, Fournier et al. 2023: the local
  head loss's gradient v_n = d l_n/dz_n, and the estimate projects on it),

      random: g_n = (dL_n/dz_n . u_n) u_n       local: g_n = (dL_n/dz_n . v_n) v_n / |v_n|^2
      dW_l = (1/B) g^T h_{l-1}                  db_l = (1/B) sum_n g_n

  (the z -> W step is exact and local). Block inputs are detached: no error crosses a layer, and no
  autograd graph spans two blocks. The output layer is trained by its exact local gradient (the
  spec's loss on its detached input; ``exact_output``, as Ren et al.'s code trains its readout) or,
  with ``exact_output: false``, estimated like the hidden layers.
  :mod:`~altlearn.rules.local.fwdgrad_activities` has the step.
  Ren et al.'s local feature grouping and normalisation are not implemented.

Tangents come from the rule's own seeded generators (``DeviceGenerators``, stream "fwdgrad"), saved
in every checkpoint.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
from pydantic import Field, model_validator
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Count
from altlearn.rules.base import Rule, RuleContext, accuracy
from altlearn.rules.feedback.checks import ELEMENTWISE
from altlearn.rules.local.chain import chain_problems, linear_blocks
from altlearn.rules.local.fwdgrad_activities import activities_step
from altlearn.rules.randomness import DeviceGenerators, layer_seed


class ForwardGradientParams(Params):
    """What is perturbed, and how many tangents are averaged per step."""

    perturb: Literal["weights", "activities"] = Field(
        "activities",
        description=(
            "weights: one tangent over all parameters, the global loss (Baydin et al. 2022); "
            "activities: each linear layer's output (Ren et al. 2023), local_losses and guess say "
            "which loss and which direction"
        ),
    )
    num_directions: Count = Field(1, le=4096, description="tangents averaged per step")
    local_losses: bool = Field(
        True,
        description=(
            "activities: true, each block's directional derivative is of its own local loss (a linear "
            "head's cross-entropy, Ren et al. 2023); false, of the spec's loss at the network's output, "
            "by forward mode through the layers above. Left out, false under perturb: weights or "
            "guess: local, where it is the only choice"
        ),
    )
    guess: Literal["random", "local"] = Field(
        "random",
        description=(
            "activities: the direction; random: u ~ N(0, I) per example; local: the gradient of the "
            "block's local head loss w.r.t. its activity, the estimate being the global gradient's "
            "projection on it (Fournier et al. 2023). local needs local_losses: false, num_directions: 1"
        ),
    )

    exact_output: bool = Field(
        True,
        description=(
            "activities: the output layer trained by its exact local gradient (the spec's loss on "
            "its detached input, as Ren et al.'s code trains its readout); false: estimated along "
            "random tangents like the hidden layers. Left out, false under perturb: weights"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _global_loss_unless_told(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("perturb") == "weights" and "exact_output" not in data:
            data = {**data, "exact_output": False}  # one tangent over every weight, the output's too
        if "local_losses" in data:
            return data
        if data.get("perturb") == "weights" or data.get("guess") == "local":
            return {**data, "local_losses": False}  # the only choice there
        return data

    @model_validator(mode="after")
    def _combinations(self) -> ForwardGradientParams:
        if self.perturb == "weights" and (self.local_losses or self.guess == "local"):
            raise ValueError(
                "rule.local_losses: true and rule.guess: local need perturb: activities (perturb: "
                "weights differentiates the spec's loss along random weight tangents)"
            )
        if self.perturb == "weights" and self.exact_output:
            raise ValueError(
                "rule.exact_output: true needs perturb: activities (perturb: weights estimates every "
                "weight along one tangent)"
            )
        if self.guess == "local" and not self.exact_output:
            raise ValueError(
                "rule.exact_output: false has no meaning under guess: local, whose guess for the "
                "output layer is its exact gradient: leave exact_output out"
            )
        if self.guess == "local" and self.local_losses:
            raise ValueError(
                "rule.local_losses: true with rule.guess: local would project the local loss's "
                "gradient on itself, plain local learning (rule localloss, loss: pred); guess: local "
                "estimates the spec's loss's gradient: leave local_losses out or write false"
            )
        if self.guess == "local" and self.num_directions != 1:
            raise ValueError("rule.num_directions: guess: local has one direction, the local gradient")
        return self


class ForwardGradient(Rule):
    """Forward gradients; ``heads`` holds a linear head per hidden block where a local loss is used."""

    Params = ForwardGradientParams
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
    params: ForwardGradientParams

    def __init__(self, params: ForwardGradientParams, context: RuleContext) -> None:
        super().__init__(params, context)
        self.generators = DeviceGenerators(self.seed, per_layer="fwdgrad")
        if _uses_heads(params):
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
        if _uses_heads(params):
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
        return activities_step(self, x, y)

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


def _uses_heads(params: ForwardGradientParams) -> bool:
    """Whether a block's local loss is used: as the objective or as the guess."""
    return params.perturb == "activities" and (params.local_losses or params.guess == "local")


def _head(width: int, num_classes: int, seed: int, index: int) -> nn.Linear:
    """A hidden block's linear head, PyTorch's default init drawn from the rule's own stream."""
    with torch.random.fork_rng(devices=[]):  # keep the global stream (dropout's) where it was
        head = nn.Linear(width, num_classes)
    generator = torch.Generator().manual_seed(layer_seed(seed, index, "fwdgrad-head"))
    bound = 1.0 / width**0.5
    nn.init.uniform_(head.weight, -bound, bound, generator=generator)
    nn.init.uniform_(head.bias, -bound, bound, generator=generator)
    return head
