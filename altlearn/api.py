"""The public API for plugin authors: import from here, and only from here.

Everything listed in ``__all__`` is kept stable across minor versions; anything else in altlearn
may change. (Importing this module imports torch.) The contracts themselves live with their base
classes: :mod:`altlearn.rules.base` for rules (the whole rule contract, on one screen), and
:mod:`altlearn.components.base` for data sets and layers, :mod:`altlearn.optim.optimizers` and
:mod:`altlearn.optim.losses` for optimizers, schedules and losses; docs/plugin-hooks.md shows them all
(its table of this module's names is generated from ``__all__``). :mod:`altlearn.testing` checks a
rule against its contract; :func:`validate_spec` and :func:`train` run a spec in this process.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from altlearn.components.base import Architecture, DataInfo, Dataset, DataSplits, Layer, Params
from altlearn.components.ref import ComponentRef
from altlearn.components.validated import Block
from altlearn.errors import DataUnavailable, SpecError
from altlearn.nn.network import (
    TRAINABLE,
    LayerBlock,
    LayerKey,
    layer_key,
    split_blocks,
    trainable_indices,
    trainable_layers,
    yaml_path,
)
from altlearn.optim.losses import Loss, LossFn
from altlearn.optim.optimizers import Optimizer, Schedule, ScheduleParams
from altlearn.registry.hookspecs import hookimpl
from altlearn.rules.base import NoParams, Rule, RuleContext, accuracy
from altlearn.rules.feedback.base import FeedbackParams, feedback_fan_in, feedback_spread, forward_fan_in
from altlearn.rules.feedback.direct import DirectFeedbackParams, DirectFeedbackRule
from altlearn.rules.feedback.fa import FeedbackAlignment
from altlearn.rules.randomness import DeviceGenerators, layer_seed
from altlearn.spec.model import Spec

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
    # a spec, validated and trained in this process (a plugin's own tests)
    "Spec",
    "SpecError",
    "validate_spec",
    "train",
]


def validate_spec(spec: Mapping[str, Any] | str | os.PathLike[str], overrides: Sequence[str] = ()) -> Spec:
    """A spec validated with the installed plugins, as ``altlearn validate`` does it.

    ``spec``: a mapping (what a YAML file holds) or a YAML file's path; ``overrides``: ``path=value``
    strings as ``-s`` takes them (``["rule.feedback_scale=2"]``). Raises :class:`SpecError`, whose
    ``problems`` list each mistake with its YAML path (``str(error)`` is what the command prints).
    """
    from altlearn.spec.files import apply_overrides
    from altlearn.spec.load import load_spec, validate

    if not isinstance(spec, Mapping):
        return load_spec(Path(spec), list(overrides))
    raw = copy.deepcopy(dict(spec))  # the overrides must not change the caller's mapping
    apply_overrides(raw, list(overrides))
    return validate(raw)


def train(
    spec: Spec | Mapping[str, Any] | str | os.PathLike[str], overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Train ``spec`` in this process and return its last epoch's metrics, named as a run logs
    them (``train_loss``, ``test_accuracy``, the rule's own, ...).

    Nothing is recorded (no MLflow run, no checkpoint, no terminal output) and a failure is raised
    as it happens. Like ``altlearn run`` it sets torch's global seed (``spec.seed``), its thread
    count (``train.threads``) and TF32 on CUDA: process-wide settings.
    """
    from altlearn.training.trainer import Trainer

    if not isinstance(spec, Spec):
        spec = validate_spec(spec, overrides)
    elif overrides:
        raise ValueError("overrides apply to a spec before validation: pass the mapping or path")
    return Trainer(spec).fit()


# Option types with real ranges (Count, PositiveReal, Probability, Betas, ...) for plugins' Params.
from altlearn.components.values import *  # noqa: E402, F403
from altlearn.components.values import __all__ as _option_types  # noqa: E402

__all__ += _option_types
