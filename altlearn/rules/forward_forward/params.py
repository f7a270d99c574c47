"""The options of the Forward-Forward rule (``rule:`` block of a spec with ``type: ff``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from altlearn.components.base import Params
from altlearn.components.values import Count, Real
from altlearn.rules.forward_forward.model import Goodness, Inference, InputNorm


class ForwardForwardParams(Params):
    schedule: Literal["simultaneous", "greedy"] = Field(
        "simultaneous",
        description="simultaneous: every layer learns on every batch; greedy: one layer after "
        "another, each for greedy_steps_per_layer batches (the last one until the end)",
    )
    greedy_steps_per_layer: Count | None = Field(
        None,
        description="batches each layer trains for under schedule: greedy (e.g. epochs * "
        "batches per epoch / layers); required by greedy, not allowed otherwise",
    )
    weight_init: Literal["ff", "keep"] = Field(
        "ff",
        description="ff: redraw each linear layer's weights from N(0, 1/out_features) and "
        "zero its bias (seeded; larger than torch's default, so goodness starts near the "
        "threshold); keep: train the network as built",
    )
    goodness: Goodness = Field(
        "sum",
        description="sum or mean of a layer's squared activities; the logit is "
        "goodness - threshold (x width for sum), so sum makes it sharper by the layer width",
    )
    threshold: Real = Field(
        1.0,
        ge=0.0,
        le=1e4,
        description="goodness threshold per unit: the mean squared activity "
        "that separates positive from negative data",
    )
    ff_loss: Literal["threshold", "symba"] = Field(
        "threshold",
        description="threshold: BCE of goodness - threshold, positives above and "
        "negatives below (Hinton); symba: softplus(-alpha (logit_pos - logit_neg)) per image and "
        "its wrong-label copy (Lee & Song 2023), the threshold then has no effect",
    )
    symba_alpha: Real = Field(
        4.0,
        gt=0.0,
        le=1e3,
        description="sharpness of the symba loss (on the goodness-logit gap)",
    )
    input_norm: InputNorm = Field(
        "rms",
        description="how each layer's input is normalised: divided by its L2 norm or by its "
        "root mean square (rms keeps activities O(1) at any width)",
    )
    label_value: Real = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="value written into the true (or wrong) label's pixel; "
        "the other label pixels get 0. The input is already normalised (MNIST's range is about "
        "-0.42..2.8)",
    )
    neutral_label_value: Real | None = Field(
        None,
        ge=0.0,
        le=100.0,
        description="value of every label pixel for the softmax head's "
        "label-free pass; default label_value / number of classes (0.1 for 10 classes)",
    )
    negative_labels: Literal["uniform", "hard"] = Field(
        "uniform",
        description="wrong label of negative data: uniform over the other classes, or "
        "hard: drawn from the softmax head's predicted probabilities with the true class left out "
        "(the labels the network confuses; needs inference: softmax_head)",
    )
    inference: Inference = Field(
        "softmax_head",
        description="goodness: run the image with each label, pick the one with "
        "the highest summed goodness; softmax_head: one pass with the neutral label through a "
        "linear softmax head on the normalised activities",
    )
    skip_first_layer: bool = Field(
        True,
        description="inference (goodness sum or head input) leaves out the first layer, as in the paper",
    )
    peer_norm_weight: Real = Field(
        0.03,
        ge=0.0,
        le=100.0,
        description="weight of the peer-normalisation loss that keeps "
        "each unit's running mean activity near the target; 0 turns it off",
    )
    peer_norm_target: Real | None = Field(
        None,
        ge=0.0,
        le=1e3,
        description="target mean activity of every unit; default: the "
        "layer's average over its units (only the spread between units is penalised)",
    )
    peer_norm_momentum: Real = Field(
        0.9,
        ge=0.0,
        lt=1.0,
        description="momentum of the running mean activity per unit",
    )
    straight_through_relu: bool = Field(
        True,
        description="during training a ReLU passes the gradient for negative inputs too, so "
        "peer normalisation can revive silent units (the goodness gradient is 0 there anyway)",
    )
    head_grad_scale: Real = Field(
        1.0,
        gt=0.0,
        le=1e3,
        description="multiplies the softmax head's gradient: with SGD a head "
        "learning rate this many times the layers' (reproductions used 10x); no effect with Adam",
    )
    eval_layer_accuracy: bool = Field(
        False,
        description="at evaluation, also report each layer's goodness accuracy "
        "(layer<i>_accuracy) and goodness_accuracy; costs one pass per class under softmax_head",
    )

    @model_validator(mode="after")
    def _greedy_needs_steps(self):
        if self.schedule == "greedy" and self.greedy_steps_per_layer is None:
            raise ValueError(
                "schedule: greedy needs greedy_steps_per_layer (the rule does not know "
                "the epoch; use epochs * batches per epoch / number of layers)"
            )
        if self.negative_labels == "hard" and self.inference != "softmax_head":
            raise ValueError(
                "negative_labels: hard draws from the softmax head's predictions; "
                "it needs inference: softmax_head"
            )
        if self.schedule != "greedy" and self.greedy_steps_per_layer is not None:
            raise ValueError("greedy_steps_per_layer only applies to schedule: greedy")
        return self
