"""``fwdgrad``'s activity perturbation: for every block, what is differentiated and along what.

For block l of a chain of linear blocks, with z_l (B, n_l) its linear layer's output:

- the objective L (``local_losses``): true, each example's cross-entropy of the block's linear head
  on post(z_l) (Ren et al. 2023); false, each example's spec loss at the network's output, the
  layers above run on z_l with their weights fixed. Its directional derivative comes from one
  forward-mode pass (``torch.func.jvp``) from z_l: never a backward pass through the network.
- the direction (``guess``): random, u_n ~ N(0, I) per example, k of them, and
  g_n = (1/k) sum_j (dL_n/dz_n . u_nj) u_nj; local (Fournier et al. 2023), v_n = d(head loss_n)/dz_n,
  exact by autograd through the head alone, and g_n = (dL_n/dz_n . v_n) v_n / |v_n|^2, the
  projection of the global gradient on the local one.

The layer's gradients then come from ``z_l.backward(g / B)``: autograd on that one layer, its input
detached. The output layer's own loss is the spec's; with ``exact_output`` (the default) or under
``guess: local`` (whose guess there is the exact gradient) it gets that gradient directly, else it
is estimated along random tangents too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F

from altlearn.rules.base import accuracy
from altlearn.rules.local.chain import LinearBlock, linear_blocks

if TYPE_CHECKING:
    from altlearn.rules.local.fwdgrad import ForwardGradient

#: (activities (N, n), labels (N,)) -> (N,): each example's loss as a function of a block's z
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def activities_step(rule: ForwardGradient, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Fill every block's (and head's) grads; return the step's metrics."""
    prefix, blocks = linear_blocks(rule.network)
    h = x
    for module in prefix:
        h = module(h)
    head_losses: list[torch.Tensor] = []
    slopes: list[torch.Tensor] = []
    for n, block in enumerate(blocks):
        z = block.layer(h.detach())  # (B, n_l), a graph to this layer's parameters only
        if n == len(blocks) - 1:
            losses = _output_block(rule, z, y, block.index)
            metrics = {"loss": losses.mean(), "accuracy": accuracy(z.detach(), y)}
            return {**metrics, **_diagnostics(head_losses, slopes)}
        slopes.append(_hidden_block(rule, blocks[n:], z, y))
        with torch.no_grad():
            h = block.run_post(z.detach())
        if str(block.index) in getattr(rule, "heads", {}):
            head_loss = F.cross_entropy(rule.heads[str(block.index)](h), y)  # its exact local gradient
            head_loss.backward()
            head_losses.append(head_loss.detach())
    raise AssertionError("unreachable: check_network requires an output layer")


def _hidden_block(rule: ForwardGradient, chain: Sequence[LinearBlock], z: torch.Tensor, y: torch.Tensor):
    """Fill ``chain[0]``'s layer grads; return the mean |directional derivative| (a scalar)."""
    block = chain[0]
    objective = local_objective(rule, block) if rule.params.local_losses else global_objective(rule, chain)
    if rule.params.guess == "local":
        return project(z, objective, y, local_guess(local_objective(rule, block), z, y))
    return perturb(rule, z, objective, y, block.index)[1]


def _output_block(rule: ForwardGradient, z: torch.Tensor, y: torch.Tensor, layer: int) -> torch.Tensor:
    """Fill the output layer's grads; return the (B,) losses."""
    if rule.params.exact_output or rule.params.guess == "local":  # local: the guess is the exact one
        losses = rule.example_loss(z, y)
        (losses.sum() / z.shape[0]).backward()
        return losses.detach()
    return perturb(rule, z, rule.example_loss, y, layer)[0]


def local_objective(rule: ForwardGradient, block: LinearBlock) -> Objective:
    """Each example's cross-entropy of the block's head (its parameters held fixed) on post(a)."""
    head = rule.heads[str(block.index)]
    frozen = {k: v.detach() for k, v in head.named_parameters()}

    def losses(a: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scores = torch.func.functional_call(head, frozen, (block.run_post(a),))
        return F.cross_entropy(scores, labels, reduction="none")

    return losses


def global_objective(rule: ForwardGradient, chain: Sequence[LinearBlock]) -> Objective:
    """Each example's spec loss at the output, the network above ``chain[0]``'s layer run on a."""

    def losses(a: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = chain[0].run_post(a)
        for block in chain[1:]:
            bias = None if block.layer.bias is None else block.layer.bias.detach()
            h = block.run_post(F.linear(h, block.layer.weight.detach(), bias))
        return rule.example_loss(h, labels)

    return losses


def local_guess(objective: Objective, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """v_n = d objective_n / d z_n (B, n): autograd from a detached copy of z through ``objective``."""
    a = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (v,) = torch.autograd.grad(objective(a, y).sum(), a)  # examples are independent: row n is v_n
    return v


def perturb(rule: ForwardGradient, z: torch.Tensor, objective: Objective, y: torch.Tensor, layer: int):
    """Backward the random-tangent estimate of d(mean objective)/dz into z's layer.

    The k directions run as one batch of k*B copies of z (one jvp), each with its own tangent.
    Returns ((B,) losses, mean |directional derivative|).
    """
    primal, k, batch = z.detach(), rule.params.num_directions, z.shape[0]
    ones = [1] * (z.dim() - 1)
    copies = primal.repeat(k, *ones)  # (k*B, n)
    u = rule._tangent(copies, layer)  # an independent direction per example and per copy
    with torch.no_grad():
        result = torch.func.jvp(lambda a: objective(a, y.repeat(k)), (copies,), (u,))
        losses, slopes = cast("tuple[torch.Tensor, torch.Tensor]", result)  # no aux: two values
        estimate = (slopes.view(-1, *ones) * u).view(k, *z.shape).sum(0)
    z.backward(estimate / (k * batch))
    return losses[:batch], slopes.abs().mean()


def project(z: torch.Tensor, objective: Objective, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Backward g_n = (d objective_n/dz_n . v_n) v_n / |v_n|^2, over B, into z's layer (0 where v_n = 0).

    Returns the mean |d objective_n/dz_n . v_n| / |v_n|: the slope along the unit guess.
    """
    ones = [1] * (z.dim() - 1)
    with torch.no_grad():
        result = torch.func.jvp(lambda a: objective(a, y), (z.detach(),), (v,))
        slopes = cast("tuple[torch.Tensor, torch.Tensor]", result)[1]
        squared = v.reshape(v.shape[0], -1).square().sum(1)
        tiny = torch.finfo(squared.dtype).tiny
        scale = torch.where(squared > 0, slopes / squared.clamp_min(tiny), torch.zeros_like(slopes))
    z.backward(scale.view(-1, *ones) * v / z.shape[0])
    return (slopes.abs() / squared.sqrt().clamp_min(tiny)).mean()


def _diagnostics(head_losses: list[torch.Tensor], slopes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    metrics = {"fwdgrad/hidden": torch.stack(head_losses).mean()} if head_losses else {}
    if slopes:
        metrics["fwdgrad/slope"] = torch.stack(slopes).mean()
    return metrics
