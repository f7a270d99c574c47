"""The public API for plugin authors: import from here, and only from here.

Everything listed in ``__all__`` is kept stable across minor versions; anything else in altlearn
may change. (Importing this module imports torch.)
"""

from altlearn.components import DataInfo, Dataset, DataSplits, DataUnavailable, Layer, Params
from altlearn.hookspecs import hookimpl
from altlearn.rules.base import LossFn, NoParams, Rule, accuracy
from altlearn.rules.feedback import FeedbackParams
from altlearn.rules.feedback_alignment import FeedbackAlignment

__all__ = [
    "hookimpl",
    "Params",
    "Rule",
    "NoParams",
    "LossFn",
    "accuracy",
    "Dataset",
    "DataInfo",
    "DataSplits",
    "DataUnavailable",
    "Layer",
    # Variants of feedback alignment subclass this and override feedback_weight(index, layer).
    "FeedbackAlignment",
    "FeedbackParams",
]
