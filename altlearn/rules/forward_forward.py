"""Forward-Forward (Hinton 2022): every layer learns locally, with no error signal from above.

Each block (a linear layer and its activation) is a binary classifier of its own: its *goodness*
(sum or mean of squared activities) should exceed a threshold for positive data (an image with its
true label written into the first pixels) and stay below it for negative data (the same image with
a wrong label). Each block's input is normalised and detached, so a block can neither pass its
goodness up nor receive a gradient from the blocks above. See docs/rules/ff.md for the math.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from altlearn.components import Params
from altlearn.rules.base import Rule, accuracy
from altlearn.rules.ff_model import (
    FFClassifier,
    Goodness,
    Inference,
    InputNorm,
    goodness,
    goodness_logit,
    network_problems,
    normalise,
    overlay_label,
    overlay_neutral,
    wrong_labels,
)


class ForwardForwardParams(Params):
    schedule: Literal["simultaneous", "greedy"] = Field(
        "simultaneous",
        description="simultaneous: every layer learns on every batch; greedy: one layer after "
        "another, each for greedy_steps_per_layer batches (the last one until the end)",
    )
    greedy_steps_per_layer: Optional[PositiveInt] = Field(
        None, description="batches each layer trains for under schedule: greedy (e.g. epochs * "
        "batches per epoch / layers); required by greedy, not allowed otherwise",
    )
    goodness: Goodness = Field(
        "sum", description="sum or mean of a layer's squared activities; the logit is "
        "goodness - threshold (x width for sum), so sum makes it sharper by the layer width",
    )
    threshold: float = Field(
        1.0, ge=0.0, le=1e4, description="goodness threshold per unit: the mean squared activity "
        "that separates positive from negative data",
    )
    input_norm: InputNorm = Field(
        "rms", description="how each layer's input is normalised: divided by its L2 norm or by its "
        "root mean square (rms keeps activities O(1) at any width)",
    )
    label_value: float = Field(
        1.0, gt=0.0, le=100.0, description="value written into the true (or wrong) label's pixel; "
        "the other label pixels get 0. The input is already normalised (MNIST's range is about "
        "-0.42..2.8)",
    )
    neutral_label_value: Optional[float] = Field(
        None, ge=0.0, le=100.0, description="value of every label pixel for the softmax head's "
        "label-free pass; default label_value / number of classes (0.1 for 10 classes)",
    )
    inference: Inference = Field(
        "softmax_head", description="goodness: run the image with each label, pick the one with "
        "the highest summed goodness; softmax_head: one pass with the neutral label through a "
        "linear softmax head on the normalised activities",
    )
    skip_first_layer: bool = Field(
        True, description="inference (goodness sum or head input) leaves out the first layer, "
        "as in the paper",
    )
    peer_norm_weight: float = Field(
        0.03, ge=0.0, le=100.0, description="weight of the peer-normalisation loss that keeps "
        "each unit's running mean activity near the target; 0 turns it off",
    )
    peer_norm_target: Optional[float] = Field(
        None, ge=0.0, le=1e3, description="target mean activity of every unit; default: the "
        "layer's average over its units (only the spread between units is penalised)",
    )
    peer_norm_momentum: float = Field(
        0.9, ge=0.0, lt=1.0, description="momentum of the running mean activity per unit",
    )
    head_grad_scale: float = Field(
        1.0, gt=0.0, le=1e3, description="multiplies the softmax head's gradient: with SGD a head "
        "learning rate this many times the layers' (reproductions used 10x); no effect with Adam",
    )
    eval_layer_accuracy: bool = Field(
        False, description="at evaluation, also report each layer's goodness accuracy "
        "(layer<i>_accuracy) and goodness_accuracy; costs one pass per class under softmax_head",
    )

    @model_validator(mode="after")
    def _greedy_needs_steps(self):
        if self.schedule == "greedy" and self.greedy_steps_per_layer is None:
            raise ValueError("schedule: greedy needs greedy_steps_per_layer (the rule does not know "
                             "the epoch; use epochs * batches per epoch / number of layers)")
        if self.schedule != "greedy" and self.greedy_steps_per_layer is not None:
            raise ValueError("greedy_steps_per_layer only applies to schedule: greedy")
        return self


class ForwardForward(Rule):
    """Supervised Forward-Forward over linear blocks, trained simultaneously or greedily."""

    Params = ForwardForwardParams
    compare_with_bp = False  # a local objective per layer: no BP gradient to align with
    network_outputs_scores = False  # scores come from goodness or the rule's own head

    def __init__(self, network, params, *, loss, num_classes, seed=0):
        super().__init__(network, params, loss=loss, num_classes=num_classes, seed=seed)
        problems = network_problems(network, params.skip_first_layer)
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        linears = [m for m in network if isinstance(m, nn.Linear)]
        if linears[0].in_features < num_classes:
            raise ValueError(f"ff writes the label into the first {num_classes} inputs, but the first "
                             f"linear layer has only {linears[0].in_features}")
        first_read = 1 if params.skip_first_layer else 0
        head = None
        if params.inference == "softmax_head":
            head_inputs = sum(m.out_features for m in linears[first_read:])
            generator = torch.Generator().manual_seed(seed)
            head = nn.Linear(head_inputs, num_classes, bias=False)
            with torch.no_grad():  # seeded, so the head does not depend on the global RNG
                bound = head_inputs ** -0.5
                head.weight.uniform_(-bound, bound, generator=generator)
        self.head = head
        neutral = params.neutral_label_value
        classifier = FFClassifier(
            network, head, num_classes=num_classes, inference=params.inference,
            skip_first_layer=params.skip_first_layer, input_norm=params.input_norm,
            goodness=params.goodness, threshold=params.threshold, label_value=params.label_value,
            neutral_value=params.label_value / num_classes if neutral is None else neutral,
        )
        # Not registered as a submodule: it shares the network's and head's parameters, which
        # would otherwise appear twice in state_dict.
        object.__setattr__(self, "inference_model", classifier)
        for i, linear in enumerate(linears):
            self.register_buffer(f"mean_activity_{i}", torch.zeros(linear.out_features))
        self.num_layers = len(linears)
        self._steps = 0  # batches seen; picks the active layer under greedy (saved via extra state)
        self._generator: torch.Generator | None = None
        self._generator_device: torch.device | None = None

    @classmethod
    def check_network(cls, network, params):
        return network_problems(network, params.skip_first_layer)

    # --- training ---------------------------------------------------------------------------

    def active_layers(self) -> range:
        """Layers that learn on the next batch."""
        if self.params.schedule == "simultaneous":
            return range(self.num_layers)
        layer = min(self._steps // self.params.greedy_steps_per_layer, self.num_layers - 1)
        return range(layer, layer + 1)

    def _label_generator(self, device: torch.device) -> torch.Generator:
        """A seeded generator on the batch's device, for the wrong labels of negative data."""
        if self._generator is None or self._generator_device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
            self._generator_device = device
        return self._generator

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.inference_model
        p = self.params
        flat = model.flat_input(x)  # (B, D)
        batch = flat.shape[0]
        negative = wrong_labels(y, self.num_classes, self._label_generator(y.device))
        h = torch.cat([overlay_label(flat, y, self.num_classes, p.label_value),
                       overlay_label(flat, negative, self.num_classes, p.label_value)])  # (2B, D)
        active = self.active_layers()
        metrics: dict[str, torch.Tensor] = {}
        ff_total = torch.zeros((), device=flat.device)
        objective = torch.zeros((), device=flat.device)  # what is backpropagated (local terms only)
        for i, block in enumerate(model.blocks):
            with torch.set_grad_enabled(i in active):
                # detach: a block never sends gradient to the blocks below it
                h = block(normalise(h.detach(), p.input_norm))  # (2B, width)
                logits = goodness_logit(h, p.goodness, p.threshold)  # (2B,)
                # BCE with logits: positives should score > 0, negatives < 0
                layer_loss = (F.softplus(-logits[:batch]).sum() + F.softplus(logits[batch:]).sum()) / (2 * batch)
                peer_loss = self._peer_loss(i, h[:batch])
            if i in active:
                objective = objective + layer_loss + p.peer_norm_weight * peer_loss
            good = goodness(h.detach(), p.goodness)
            metrics[f"layer{i}_loss"] = layer_loss.detach()
            metrics[f"layer{i}_pos_goodness"] = good[:batch].mean()
            metrics[f"layer{i}_neg_goodness"] = good[batch:].mean()
            # fraction of examples on the right side of the threshold (positives above)
            right_side = torch.cat([logits[:batch] > 0, logits[batch:] <= 0])
            metrics[f"layer{i}_separation"] = right_side.float().mean()
            ff_total = ff_total + layer_loss.detach()
        if self.head is not None:
            head_loss, head_accuracy = self._head_loss(flat, y)
            # the head's loss reaches only the head, so scaling it scales the head's step (SGD)
            objective = objective + p.head_grad_scale * head_loss
            metrics["head_loss"] = head_loss.detach()
            metrics["accuracy"] = head_accuracy
        objective.backward()
        self._steps += 1
        metrics["loss"] = ff_total
        if p.schedule == "greedy":
            metrics["active_layer"] = torch.tensor(float(active[0]), device=flat.device)
        return metrics

    def _peer_loss(self, layer: int, positive: torch.Tensor) -> torch.Tensor:
        """Penalise units whose running mean activity strays from the target (dead or hogging units)."""
        p = self.params
        running = getattr(self, f"mean_activity_{layer}")
        current = p.peer_norm_momentum * running + (1 - p.peer_norm_momentum) * positive.mean(dim=0)
        running.copy_(current.detach())
        target = current.mean().detach() if p.peer_norm_target is None else p.peer_norm_target
        return (current - target).pow(2).mean()

    def _head_loss(self, flat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The softmax head's loss on the neutral-label pass; the blocks get no gradient from it."""
        model = self.inference_model
        with torch.no_grad():
            outputs = model.activities(overlay_neutral(flat, self.num_classes, model.neutral_value))
            features = model.head_features(outputs)  # (B, sum widths)
        scores = self.head(features)  # (B, K)
        return self.loss(scores, y), accuracy(scores.detach(), y)

    def get_extra_state(self):
        return {"steps": self._steps}

    def set_extra_state(self, state):
        self._steps = int(state["steps"])

    def health_check(self) -> str | None:
        if self._steps < 100:
            return None
        for i in range(self.num_layers):
            if getattr(self, f"mean_activity_{i}").max().item() == 0.0:
                return (f"ff layer {i} is dead (no unit active on positive data); lower the learning "
                        "rate or raise rule.peer_norm_weight")
        return None

    # --- inference --------------------------------------------------------------------------

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.inference_model(x)

    def eval_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.inference_model
        wants_layers = self.params.eval_layer_accuracy or self.params.inference == "goodness"
        metrics: dict[str, torch.Tensor] = {}
        if wants_layers:
            per_layer = model.layer_goodness_scores(model.flat_input(x))  # (L, B, K)
            for i in range(self.num_layers):
                metrics[f"layer{i}_accuracy"] = accuracy(per_layer[i], y)
            metrics["goodness_accuracy"] = accuracy(model.goodness_scores(per_layer), y)
        if self.params.inference == "goodness":
            scores = model.goodness_scores(per_layer)
        else:
            scores = self.predict(x)
        metrics["loss"] = self.loss(scores, y)
        metrics["accuracy"] = accuracy(scores, y)
        return metrics

    def inference_module(self) -> nn.Module:
        return self.inference_model
