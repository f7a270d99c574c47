"""Forward-Forward building blocks: layer blocks, label overlay, normalisation, goodness, inference.

Kept apart from the rule (:mod:`altlearn.rules.forward_forward.rule`) because the trained model that is
logged must classify on its own: :class:`FFClassifier` holds everything inference needs and nothing
that training needs.

A *block* (:class:`altlearn.nn.network.LayerBlock`) is one ``nn.Linear`` plus the parameter-free
modules after it up to the next linear layer (its activation, dropout). Parameter-free modules
before the first linear layer (flatten, pooling) are the *prefix*: they turn an image into the flat
vector that the label is written into.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.nn.network import LayerBlock, split_blocks

InputNorm = Literal["l2", "rms"]
Goodness = Literal["sum", "mean"]
Inference = Literal["goodness", "softmax_head"]

# Parameter-free modules that do not make a block non-linear.
_NOT_ACTIVATIONS = (nn.Dropout, nn.Flatten, nn.Identity)
_NORMALISATION = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
# Keeps 0/0 out of the normalisation when a ReLU layer is silent for an example.
NORM_EPS = 1e-8


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def network_problems(network: nn.Sequential, skip_first_layer: bool) -> list[tuple[int | None, str]]:
    """Why Forward-Forward cannot train this network, as (layer index or None, message) pairs; the
    messages do not name the rule (the spec's validator prefixes its registered name)."""
    shape_problems = _unsupported_structure(network)
    if shape_problems:
        return shape_problems
    problems: list[tuple[int | None, str]] = [
        (
            index,
            f"supports linear layers only; {type(module).__name__} has "
            "trainable parameters (conv2d and other layers are not supported)",
        )
        for index, module in enumerate(network)
        if not is_linear(module) and any(True for _ in module.parameters())
    ]
    _, blocks = split_blocks(network, is_linear)
    if not blocks:
        return [*problems, (None, "needs at least one linear layer")]
    found = [(block.index, _activation_problem(block, block is blocks[-1])) for block in blocks]
    problems += [(index, message) for index, message in found if message]
    if skip_first_layer and len(blocks) < 2:
        problems.append(
            (
                None,
                "needs at least two linear layers with rule.skip_first_layer: true "
                "(inference reads the layers above the first); add one or set "
                "skip_first_layer: false",
            )
        )
    return problems


def _unsupported_structure(network: nn.Sequential) -> list[tuple[int | None, str]]:
    """Residual blocks and normalisation layers: FF defines neither (each layer is judged alone by
    its goodness; a skip connection or a norm layer has no goodness of its own)."""
    from altlearn.nn.composite import Residual

    problems: list[tuple[int | None, str]] = []
    for index, module in enumerate(network):
        kind = type(module).__name__
        if isinstance(module, Residual):
            message = (
                f"has no defined form for residual blocks ({kind}): it trains a chain of linear "
                "layers, each by its own goodness; use a chain, or rule bp, fa or dfa"
            )
        elif isinstance(module, _NORMALISATION):
            message = (
                f"does not support normalisation layers ({kind}): its own input normalisation "
                "between layers (rule.input_norm) takes that role; remove the layer"
            )
        else:
            continue
        problems.append((index, message))
    return problems


def _activation_problem(block: LayerBlock, is_last: bool) -> str | None:
    """A block without an activation is no FF layer: FF's goodness needs a non-linear unit."""
    if any(not isinstance(m, _NOT_ACTIVATIONS) for m in block.post):
        return None
    if is_last:
        return (
            "the last linear layer has no activation after it: it looks like a "
            "backprop output layer, which this rule does not use (it classifies by goodness "
            "or with its own softmax head, rule.inference); remove it, or add an "
            "activation if it is meant as a layer trained by its goodness"
        )
    return (
        "needs an activation (e.g. relu) after every linear layer: each "
        "linear layer and its activation form one locally trained block"
    )


def init_weights(linears: list[nn.Linear], seed: int) -> None:
    """Weights ~ N(0, 1/out_features), biases 0, from a generator seeded by the rule's seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for linear in linears:
            weight = torch.randn(linear.weight.shape, generator=generator) * linear.out_features**-0.5
            linear.weight.copy_(weight)
            if linear.bias is not None:
                linear.bias.zero_()


def run_block(block: nn.Sequential, h: torch.Tensor, straight_through_relu: bool) -> torch.Tensor:
    """A block's forward pass; optionally ReLUs pass the gradient unchanged, also where they output 0.

    The goodness gradient 2h is zero at silent units anyway; the straight-through ReLU lets the
    peer-normalisation loss reach them, so that it can bring dead units back.
    """
    for module in block:
        if straight_through_relu and isinstance(module, nn.ReLU):
            h = h + (torch.relu(h) - h).detach()  # value relu(h), gradient of the identity
        else:
            h = module(h)
    return h


def normalise(h: torch.Tensor, kind: InputNorm) -> torch.Tensor:
    """Divide each example (row) by its L2 norm or RMS, so only the direction is passed on."""
    squares = h.pow(2)
    norm = squares.sum(dim=1, keepdim=True) if kind == "l2" else squares.mean(dim=1, keepdim=True)
    return h / (norm.sqrt() + NORM_EPS)  # (B, D)


def goodness(h: torch.Tensor, kind: Goodness) -> torch.Tensor:
    """Sum or mean of the squared activities of each example: (B, D) -> (B,)."""
    squares = h.pow(2)
    return squares.sum(dim=1) if kind == "sum" else squares.mean(dim=1)


def goodness_logit(h: torch.Tensor, kind: Goodness, threshold: float) -> torch.Tensor:
    """log-odds that an example is positive: goodness minus the threshold, (B, D) -> (B,).

    ``threshold`` is per unit (compared with the mean squared activity); with sum goodness it is
    scaled by the layer width, so ``sum`` only makes the logit sharper by the number of units.
    """
    units = h.shape[1] if kind == "sum" else 1
    return goodness(h, kind) - threshold * units


def overlay_label(flat: torch.Tensor, labels: torch.Tensor, num_classes: int, value: float) -> torch.Tensor:
    """A copy of ``flat`` (B, D) whose first ``num_classes`` entries are ``value`` * one-hot(labels)."""
    out = flat.clone()
    out[:, :num_classes] = F.one_hot(labels, num_classes).to(flat.dtype) * value
    return out


def overlay_neutral(flat: torch.Tensor, num_classes: int, value: float) -> torch.Tensor:
    """A copy of ``flat`` (B, D) whose first ``num_classes`` entries all hold ``value`` (no label)."""
    out = flat.clone()
    out[:, :num_classes] = value
    return out


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label per example drawn uniformly from the other ``num_classes - 1`` classes, never the true one."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator, device=labels.device)
    return (labels + shift) % num_classes


def hard_wrong_labels(labels: torch.Tensor, scores: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A wrong label per example drawn from softmax(scores) with the true class removed.

    labels (B,), scores (B, K). Masking the logit (not the probability) keeps the distribution
    valid even when the true class holds almost all of the probability.
    """
    masked = scores.float().scatter(1, labels[:, None], float("-inf"))  # (B, K)
    return torch.multinomial(torch.softmax(masked, dim=1), 1, generator=generator).squeeze(1)


class FFClassifier(nn.Module):
    """A Forward-Forward network as a classifier: raw (normalised) images -> class scores (B, K).

    ``goodness`` inference runs the image once per label and scores each label by the goodness
    logits summed over the chosen layers; ``softmax_head`` runs it once with the neutral label and
    applies the linear head to the normalised activities of the chosen layers.
    """

    def __init__(
        self,
        network: nn.Sequential,
        head: nn.Linear | None,
        *,
        num_classes: int,
        inference: Inference,
        skip_first_layer: bool,
        input_norm: InputNorm,
        goodness: Goodness,
        threshold: float,
        label_value: float,
        neutral_value: float,
    ) -> None:
        super().__init__()
        prefix, blocks = split_blocks(network, is_linear)
        self.prefix = nn.Sequential(*prefix, nn.Flatten())
        self.blocks = nn.ModuleList(nn.Sequential(block.layer, *block.post) for block in blocks)
        self.head = head
        self.num_classes = num_classes
        self.inference = inference
        self.first_read = 1 if skip_first_layer else 0  # index of the first layer inference reads
        self.input_norm = input_norm
        self.goodness_kind = goodness
        self.threshold = threshold
        self.label_value = label_value
        self.neutral_value = neutral_value

    def flat_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, ...) -> the flat vectors (B, D) that labels are written into."""
        return self.prefix(x)

    def activities(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output for labelled flat inputs; each block sees a normalised input."""
        outputs = []
        h = flat
        for block in self.blocks:
            h = block(normalise(h, self.input_norm))  # (B, width)
            outputs.append(h)
        return outputs

    def head_features(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """The head's input: normalised activities of the layers it reads, side by side (B, sum widths)."""
        return torch.cat([normalise(h, self.input_norm) for h in outputs[self.first_read :]], dim=1)

    def layer_goodness_scores(self, flat: torch.Tensor) -> torch.Tensor:
        """Goodness logit of every layer for every candidate label: (num_layers, B, K)."""
        per_label = []
        for label in range(self.num_classes):
            labels = torch.full((flat.shape[0],), label, dtype=torch.long, device=flat.device)
            outputs = self.activities(overlay_label(flat, labels, self.num_classes, self.label_value))
            per_label.append(
                torch.stack([goodness_logit(h, self.goodness_kind, self.threshold) for h in outputs])
            )  # (L, B)
        return torch.stack(per_label, dim=2)

    def goodness_scores(self, per_layer: torch.Tensor) -> torch.Tensor:
        """Summed goodness logits of the layers inference reads: (L, B, K) -> (B, K)."""
        return per_layer[self.first_read :].sum(dim=0)

    def head_scores(self, flat: torch.Tensor) -> torch.Tensor:
        assert self.head is not None, "inference: softmax_head always has a head"
        outputs = self.activities(overlay_neutral(flat, self.num_classes, self.neutral_value))
        return self.head(self.head_features(outputs))  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.flat_input(x)
        if self.inference == "softmax_head":
            return self.head_scores(flat)
        return self.goodness_scores(self.layer_goodness_scores(flat))
