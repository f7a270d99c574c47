"""altlearn: train networks with learning rules other than backpropagation, from one YAML spec.

This package's top level imports neither torch nor mlflow, so ``altlearn --help`` and
``altlearn plugins`` start fast. Plugin authors import what they need from :mod:`altlearn.api`.
"""

from altlearn.registry.hookspecs import hookimpl
from altlearn.version import __version__

__all__ = ["__version__", "hookimpl"]
