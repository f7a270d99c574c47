"""The public API for plugin authors: import from here, and only from here.

Everything listed in ``__all__`` is kept stable across minor versions; anything else in altlearn
may change. (Importing this module imports torch.)
"""

from altlearn.components import DataInfo, Dataset, DataSplits, DataUnavailable, Layer, Params
from altlearn.hookspecs import hookimpl
from altlearn.rules.base import LossFn, NoParams, Rule, accuracy

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
]
