"""Local losses (Nøkland & Eidnes 2019): every hidden block trained by its own loss, no global error.

For a chain of linear blocks, each hidden block l runs on its detached input and gives h_l (B, n_l);
its loss uses only h_l, the labels y and the rule's own auxiliary heads for that block:

- ``pred``: cross-entropy of a linear head P_l (n_l -> K, weights zero-initialised as in the
  authors' code) on h_l: L_pred = CE(h_l P_l^T + c_l, y);
- ``sim``: the mean squared difference between two (B, B) similarity matrices,
  L_sim = mean((S(h_l Q_l^T) - S(onehot(y)))^2), Q_l (n_l, n_l) a linear map without bias and
  S(z) the cosine similarities of the rows of z after centring each row (values clamped to [-1, 1]);
- ``predsim``: (1 - beta) L_pred + beta L_sim, beta = 0.99 by default (the paper's).

With ``bpf: true`` (the authors' ``--bio``, "backprop free"): S is taken of h_l itself (no Q_l),
the labels are replaced by a fixed random projection t = onehot(y) R^T (R (target_size, K),
PyTorch's default linear init, never trained): L_sim compares S(h_l) with S(t), and the prediction
head outputs target_size logits trained by binary cross-entropy towards (t > 0); the head's error
reaches h_l through a fixed random matrix instead of its own weight (feedback alignment inside
the head), so no weight carries an error backwards anywhere.

A block that ends in dropout gives its loss the output before the dropout and the next block the
output after it, as the authors' code does. The output layer is trained by the spec's loss on its
detached input (its ordinary local gradient).
All the block losses and the output loss go into one backward pass; because every block's input is
detached, block l's parameters get the gradient of L_l alone (nothing from the blocks above).
The heads are the rule's own parameters (``heads``, an optimizer group may name them) and are
trained by the spec's optimizer; inference is the network alone.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from altlearn.components.base import Params
from altlearn.components.values import Count
from altlearn.rules.base import Rule, RuleContext, accuracy
from altlearn.rules.feedback.checks import DROPOUT, ELEMENTWISE, NORMALISATION
from altlearn.rules.local.chain import chain_problems, linear_blocks
from altlearn.rules.local.heads import LocalHead


class LocalLossParams(Params):
    """Which local loss, and its variant."""

    loss: Literal["pred", "sim", "predsim"] = Field(
        "predsim", description="each hidden block's loss: prediction, similarity matching, or both"
    )
    beta: float = Field(0.99, ge=0.0, le=1.0, description="predsim: weight of sim (1 - beta: of pred)")
    bpf: bool = Field(False, description="backprop-free variant: random label projection, no Q, FA head")
    target_size: Count = Field(128, le=100_000, description="bpf: size of the random label projection")


class LocalLoss(Rule):
    """Local losses on MLPs; ``heads`` holds one :class:`LocalHead` per hidden block."""

    Params = LocalLossParams
    supports = frozenset({"bf16", "compile"})  # checked by altlearn.testing
    params: LocalLossParams

    def __init__(self, params: LocalLossParams, context: RuleContext) -> None:
        super().__init__(params, context)
        _, blocks = linear_blocks(self.network)
        weight = blocks[0].layer.weight
        self.heads = nn.ModuleDict(
            {
                str(block.index): LocalHead(
                    block.layer.out_features, self.num_classes, params, self.seed, block.index
                )
                for block in blocks[:-1]
            }
        ).to(weight.device, weight.dtype)

    @classmethod
    def check_network(cls, network, params) -> list:
        allowed = ELEMENTWISE + DROPOUT + NORMALISATION
        return chain_problems(network, allowed, "activations, dropout and normalisation layers")

    @classmethod
    def parameter_parts(cls, params) -> dict[str, str]:
        return {"heads": "the hidden blocks' auxiliary heads (prediction heads, similarity maps)"}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        prefix, blocks = linear_blocks(self.network)
        h = x
        for module in prefix:
            h = module(h)
        local = []
        for block in blocks[:-1]:
            kept, dropouts = _before_trailing_dropout(block.post)
            h = block.layer(h.detach())  # no graph below this block
            for module in kept:
                h = module(h)  # (B, n_l)
            local.append(self.heads[str(block.index)](h, y))  # before the dropout, as the code
            for module in dropouts:
                h = module(h)  # what the next block reads
        scores = blocks[-1].layer(h.detach())  # (B, K)
        loss = self.loss(scores, y)
        total = loss + torch.stack(local).sum()
        total.backward()
        return {
            "loss": loss.detach(),
            "accuracy": accuracy(scores.detach(), y),
            "localloss/hidden": torch.stack(local).detach().mean(),
        }


def _before_trailing_dropout(post: list[nn.Module]) -> tuple[list[nn.Module], list[nn.Module]]:
    """A block's modules after its layer, split before the dropout layers that end it: the local
    loss reads the block's output before them (the authors' code), the next block after them. A
    dropout with other modules after it stays in the first part: the loss sees it."""
    end = len(post)
    while end and isinstance(post[end - 1], DROPOUT):
        end -= 1
    return post[:end], post[end:]
