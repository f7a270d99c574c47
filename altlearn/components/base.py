"""Base classes for the components a spec names by ``type``: data sets and layers.

(Learning rules have their own base class in :mod:`altlearn.rules.base`.)

Every component declares ``Params``, a pydantic model of its own options. The spec validator uses
it for the component's ``type:`` block, so a third-party component gets the same errors (path, bad
value, allowed values, did-you-mean) as a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # keep torch off the import path of `altlearn plugins`
    import torch


class Params(BaseModel):
    """Base of every component's options: unknown keys are errors, and options are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: ``Params`` by another name, for the annotations of the component classes below (and of other
#: modules' component bases): inside their bodies ``Params`` is the class attribute that holds the
#: component's options model, which a type checker cannot take as the type of a value.
ComponentParams = Params


@dataclass(frozen=True)
class DataInfo:
    """What the network builder needs to know about a data set before loading it."""

    input_shape: tuple[int, ...]  # one example without the batch dimension: (C, H, W) or (D,)
    num_classes: int
    # Training examples, where known without loading: lets validation refuse a data.val_size
    # that would leave none, before any data loads. None: unknown (e.g. a user's folder).
    train_size: int | None = None


@dataclass
class DataSplits:
    """A data set in memory: float examples shaped (N, C, H, W) (images, values in [0, 1]) or
    (N, D) (flat features), and int64 labels (N,) in 0..num_classes-1."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


class Dataset:
    """A labelled classification data set of images (C, H, W) or flat feature vectors (D,).

    Subclasses set ``Params`` and implement :meth:`info` (cheap: no loading) and :meth:`load`.
    ``load`` may take a keyword ``seed`` (the spec's seed, for a loader's own random split or
    synthetic draw); one without it is called as ``load(params)``. What ``load`` returns is checked
    against ``info`` (shapes, finite values, labels in range) before training.
    Normalisation, the validation split, subsets, shuffling and the move to the training device are
    the trainer's work, the same for every data set.
    """

    Params: ClassVar[type[Params]] = Params

    @classmethod
    def info(cls, params: ComponentParams) -> DataInfo:
        raise NotImplementedError  # abstract

    @classmethod
    def load(cls, params: ComponentParams) -> DataSplits:
        # A loader may add a keyword ``seed: int = 0`` (see the class's docstring).
        raise NotImplementedError  # abstract


class Architecture:
    """A named network (``network: {type: resnet20}``) that expands to ordinary layer blocks.

    ``layers`` returns the blocks as a spec would write them (mappings with ``type``; ``repeat``
    allowed), for the data set's ``info`` (its input shape and number of classes). Everything
    after validation (rules, alignment names, MLflow params) sees only those plain layers.
    """

    Params: ClassVar[type[Params]] = Params

    @classmethod
    def layers(cls, params: ComponentParams, data: DataInfo) -> list[dict[str, Any]]:
        raise NotImplementedError  # abstract


class Layer:
    """A network layer type. ``build`` returns a torch module for a known input shape.

    ``input_shape`` excludes the batch dimension; the builder infers the output shape by running the
    module, so a layer need not compute it.
    """

    Params: ClassVar[type[Params]] = Params

    @classmethod
    def build(cls, params: ComponentParams, input_shape: tuple[int, ...]) -> torch.nn.Module:
        raise NotImplementedError  # abstract
