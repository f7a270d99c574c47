"""Forward-Forward (Hinton 2022): every layer learns locally, with no error signal from above.

Each block (a linear layer and its activation) is a binary classifier of its own: its *goodness*
(sum or mean of squared activities) should exceed a threshold for positive data (an image with its
true label written into the first pixels) and stay below it for negative data (the same image with
a wrong label). Each block's input is normalised and detached, so a block can neither pass its
goodness up nor receive a gradient from the blocks above. See docs/rules/ff.md for the math.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.rules.base import Rule, RuleContext, accuracy
from altlearn.rules.forward_forward.model import (
    FFClassifier,
    goodness,
    goodness_logit,
    hard_wrong_labels,
    init_weights,
    network_problems,
    normalise,
    overlay_label,
    overlay_neutral,
    run_block,
    wrong_labels,
)
from altlearn.rules.forward_forward.params import ForwardForwardParams
from altlearn.rules.randomness import DeviceGenerators


class ForwardForward(Rule):
    """Supervised Forward-Forward over linear blocks, trained simultaneously or greedily."""

    Params = ForwardForwardParams
    network_outputs_scores = False  # scores come from goodness or the rule's own head
    params: ForwardForwardParams
    head: nn.Linear | None
    inference_model: FFClassifier

    def __init__(self, params: ForwardForwardParams, context: RuleContext) -> None:
        super().__init__(params, context)
        network, num_classes = self.network, self.num_classes
        linears = [m for m in network if isinstance(m, nn.Linear)]
        if linears[0].in_features < num_classes:
            raise ValueError(
                f"ff writes the label into the first {num_classes} inputs, but the first "
                f"linear layer has only {linears[0].in_features}"
            )
        if params.weight_init == "ff":
            init_weights(linears, self.seed)
        first_read = 1 if params.skip_first_layer else 0
        head = None
        if params.inference == "softmax_head":
            head_inputs = sum(m.out_features for m in linears[first_read:])
            head = nn.Linear(head_inputs, num_classes, bias=False)
            nn.init.zeros_(head.weight)  # uniform scores at first; deterministic without any RNG
        self.head = head
        neutral = params.neutral_label_value
        classifier = FFClassifier(
            network,
            head,
            num_classes=num_classes,
            inference=params.inference,
            skip_first_layer=params.skip_first_layer,
            input_norm=params.input_norm,
            goodness=params.goodness,
            threshold=params.threshold,
            label_value=params.label_value,
            neutral_value=params.label_value / num_classes if neutral is None else neutral,
        )
        # Not registered as a submodule: it shares the network's and head's parameters, which
        # would otherwise appear twice in state_dict.
        object.__setattr__(self, "inference_model", classifier)
        for i, linear in enumerate(linears):
            self.register_buffer(f"mean_activity_{i}", torch.zeros(linear.out_features))
        self.num_layers = len(linears)
        self._steps = 0  # batches seen; picks the active layer under greedy (saved via extra state)
        # Wrong labels of negative data. exact: the stream the recorded ff runs drew from (it
        # starts like the weight init's; another stream would change those results).
        self._label_generators = DeviceGenerators.exact(self.seed)

    @classmethod
    def parameter_parts(cls, params):
        if params.inference == "softmax_head":
            return {"head": "the linear softmax head (inference: softmax_head)"}
        return {}

    @classmethod
    def check_network(cls, network, params):
        return network_problems(network, params.skip_first_layer)

    def gradient_rule(self) -> None:
        return None  # a local objective per layer: no BP gradient to align with

    # --- training ---------------------------------------------------------------------------

    def active_layers(self) -> range:
        """Layers that learn on the next batch."""
        if self.params.schedule == "simultaneous":
            return range(self.num_layers)
        steps_per_layer = self.params.greedy_steps_per_layer
        assert steps_per_layer is not None  # schedule: greedy is validated to need it
        layer = min(self._steps // steps_per_layer, self.num_layers - 1)
        return range(layer, layer + 1)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.params
        flat = self.inference_model.flat_input(x)  # (B, D)
        metrics: dict[str, torch.Tensor] = {}
        objective = torch.zeros((), device=flat.device)  # what is backpropagated (local terms only)
        head_scores = None
        if self.head is not None:
            head_scores = self._head_scores(self.head, flat)  # (B, K)
            head_loss = self.loss(head_scores, y)
            # the head's loss reaches only the head, so scaling it scales the head's step (SGD)
            objective = objective + p.head_grad_scale * head_loss
            metrics["head_loss"] = head_loss.detach()
            metrics["accuracy"] = accuracy(head_scores.detach(), y)
        active = self.active_layers()
        negative = self._negative_labels(y, head_scores)
        ff_total, layer_objective = self._ff_losses(flat, y, negative, active, metrics)
        (objective + layer_objective).backward()
        self._steps += 1
        metrics["loss"] = ff_total
        if p.schedule == "greedy":
            metrics["active_layer"] = torch.tensor(float(active[0]), device=flat.device)
        return metrics

    def _negative_labels(self, y: torch.Tensor, head_scores: torch.Tensor | None) -> torch.Tensor:
        generator = self._label_generators.get(y.device)
        if self.params.negative_labels == "uniform":
            return wrong_labels(y, self.num_classes, generator)
        assert head_scores is not None  # negative_labels: hard is validated to need softmax_head
        return hard_wrong_labels(y, head_scores.detach(), generator)

    def _ff_losses(self, flat, y, negative, active, metrics) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's FF loss on positive and negative data: (summed loss, what to backpropagate)."""
        p = self.params
        batch = flat.shape[0]
        h = torch.cat(
            [
                overlay_label(flat, y, self.num_classes, p.label_value),
                overlay_label(flat, negative, self.num_classes, p.label_value),
            ]
        )  # (2B, D)
        ff_total = torch.zeros((), device=flat.device)
        objective = torch.zeros((), device=flat.device)
        for i, module in enumerate(self.inference_model.blocks):
            block = cast(nn.Sequential, module)  # FFClassifier's blocks are each a Sequential
            with torch.set_grad_enabled(i in active):
                # detach: a block never sends gradient to the blocks below it
                h = run_block(
                    block, normalise(h.detach(), p.input_norm), p.straight_through_relu
                )  # (2B, width)
                logits = goodness_logit(h, p.goodness, p.threshold)  # (2B,)
                layer_loss = self._layer_loss(logits[:batch], logits[batch:])
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
        return ff_total, objective

    def _layer_loss(self, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """FF loss of one layer from the goodness logits of positive and negative data, (B,) each."""
        if self.params.ff_loss == "symba":
            # each image against its own wrong-label copy: only the gap counts, not the threshold
            return F.softplus(-self.params.symba_alpha * (positive - negative)).mean()
        # BCE with logits: positives should score > 0, negatives < 0
        return (F.softplus(-positive).mean() + F.softplus(negative).mean()) / 2

    def _peer_loss(self, layer: int, positive: torch.Tensor) -> torch.Tensor:
        """Penalise units whose running mean activity strays from the target (dead or hogging units)."""
        p = self.params
        running = getattr(self, f"mean_activity_{layer}")
        current = p.peer_norm_momentum * running + (1 - p.peer_norm_momentum) * positive.mean(dim=0)
        running.copy_(current.detach())
        target = current.mean().detach() if p.peer_norm_target is None else p.peer_norm_target
        return (current - target).pow(2).mean()

    def _head_scores(self, head: nn.Linear, flat: torch.Tensor) -> torch.Tensor:
        """The softmax head's scores on the neutral-label pass; the blocks get no gradient from it."""
        model = self.inference_model
        with torch.no_grad():
            outputs = model.activities(overlay_neutral(flat, self.num_classes, model.neutral_value))
            features = model.head_features(outputs)  # (B, sum widths)
        return head(features)  # (B, K)

    def get_extra_state(self):
        # The label generators' states make a resumed run draw the same negative labels.
        return {"steps": self._steps, "label_generators": self._label_generators.state()}

    def set_extra_state(self, state):
        self._steps = int(state["steps"])
        self._label_generators.load_state(state["label_generators"])

    def health_check(self) -> str | None:
        if self._steps < 100:
            return None
        for i in range(self.num_layers):
            if getattr(self, f"mean_activity_{i}").max().item() == 0.0:
                return (
                    f"ff layer {i} is dead (no unit active on positive data); lower the learning "
                    "rate or raise rule.peer_norm_weight"
                )
        return None

    # --- inference --------------------------------------------------------------------------

    def inference_module(self) -> nn.Module:
        return self.inference_model

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
            scores = model(x)
        metrics["loss"] = self.loss(scores, y)
        metrics["accuracy"] = accuracy(scores, y)
        return metrics
