"""The public API for plugin authors: import from here, and only from here.

Everything listed in ``__all__`` is kept stable across minor versions; anything else in altlearn
may change. (Importing this module imports torch.) The contracts themselves live with their base
classes: :mod:`altlearn.rules.base` for rules (the whole rule contract, on one screen), and
:mod:`altlearn.components` for data sets and layers, :mod:`altlearn.optim` and
:mod:`altlearn.losses` for optimizers, schedules and losses; docs/plugin-hooks.md shows them all.
"""

from altlearn.component_ref import Block, ComponentRef
from altlearn.components import (
    Architecture,
    DataInfo,
    Dataset,
    DataSplits,
    DataUnavailable,
    Layer,
    Params,
)
from altlearn.hookspecs import hookimpl
from altlearn.losses import Loss
from altlearn.network import (
    TRAINABLE,
    LayerBlock,
    LayerKey,
    layer_key,
    split_blocks,
    trainable_indices,
    trainable_layers,
    yaml_path,
)
from altlearn.optim import Optimizer, Schedule, ScheduleParams
from altlearn.rules.base import LossFn, NoParams, Rule, RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, feedback_fan_in, feedback_spread, forward_fan_in
from altlearn.rules.feedback.direct import DirectFeedbackParams, DirectFeedbackRule
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
    "Architecture",
    # optimizers, learning-rate schedules and training losses
    "Optimizer",
    "Schedule",
    "ScheduleParams",
    "Loss",
    # an option that names another component: a nested {type: ...} block, validated like any
    "ComponentRef",
    "Block",
    # walking a network: trainable layers (anywhere, by key) and the blocks they start
    "TRAINABLE",
    "LayerKey",
    "layer_key",
    "trainable_layers",
    "yaml_path",
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
    # a fixed random projection of one (B, K) signal sent to every feedback point (dfa, DRTP):
    # subclass DirectFeedbackRule and override direct_signal()
    "DirectFeedbackRule",
    "DirectFeedbackParams",
]

# Option types with real ranges (Count, PositiveReal, Probability, Betas, ...) for plugins' Params.
from altlearn.values import *  # noqa: E402, F403
from altlearn.values import __all__ as _option_types  # noqa: E402

__all__ += _option_types
