"""The public API for plugin authors: import from here, and only from here.

Everything listed in ``__all__`` is kept stable across minor versions; anything else in altlearn
may change. (Importing this module imports torch.) The contracts themselves live with their base
classes: :mod:`altlearn.rules.base` for rules (the whole rule contract, on one screen), and
:mod:`altlearn.components` for data sets and layers; docs/plugin-hooks.md shows both.
"""

from altlearn.components import DataInfo, Dataset, DataSplits, DataUnavailable, Layer, Params
from altlearn.hookspecs import hookimpl
from altlearn.network import TRAINABLE, LayerBlock, split_blocks, trainable_indices
from altlearn.rules.base import LossFn, NoParams, Rule, RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, feedback_fan_in, feedback_spread, forward_fan_in
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.randomness import DeviceGenerators, layer_seed

__all__ = [
    "hookimpl",
    "Params",
    # learning rules
    "Rule",
    "RuleContext",
    "NoParams",
    "LossFn",
    "accuracy",
    # data sets and layers
    "Dataset",
    "DataInfo",
    "DataSplits",
    "DataUnavailable",
    "Layer",
    # walking a network: trainable layers and the blocks they start
    "TRAINABLE",
    "trainable_indices",
    "LayerBlock",
    "split_blocks",
    # a rule's own random streams (never torch's global one during a step)
    "layer_seed",
    "DeviceGenerators",
    # variants of feedback alignment subclass FeedbackAlignment and override feedback_weight()
    "FeedbackAlignment",
    "FeedbackParams",
    "feedback_fan_in",
    "forward_fan_in",
    "feedback_spread",
]
