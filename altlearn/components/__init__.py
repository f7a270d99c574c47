"""What every component is made of: the base classes plugins subclass, typed option values, and
nested ``{type: ...}`` blocks.

- ``base``: ``Params`` (a component's options), ``Dataset``, ``Layer``, ``Architecture`` and the
  data shapes they exchange (``DataInfo``, ``DataSplits``);
- ``values``: option types with bounds and messages (``Count``, ``PositiveReal``, ``Seed``, ...);
- ``ref``: ``ComponentRef``, an option that is itself a component block; ``validated``: ``Block``
  and ``BlockList``, validated ones;
- ``validator``: ``Validator``, which turns a ``{type: ...}`` block into its component and parsed
  options, or into problems with their YAML paths (a spec's blocks and a sweep file's sections).

It imports only errors, text and the registry below it, and no torch.
"""

from altlearn.components.base import Architecture, DataInfo, Dataset, DataSplits, Layer, Params
from altlearn.components.ref import ComponentRef, Reference, reference_of
from altlearn.components.validated import Block, BlockList

__all__ = [
    "Architecture",
    "Block",
    "BlockList",
    "ComponentRef",
    "DataInfo",
    "DataSplits",
    "Dataset",
    "Layer",
    "Params",
    "Reference",
    "reference_of",
]
