"""Validated ``{type: ...}`` blocks: :class:`Block` (a component class and its parsed options) and
:class:`BlockList` (a list option's blocks, ``repeat: N`` expanded). Plain data, so that the
validator that makes them and the options that hold them can both import it.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

#: key of the pydantic validation context under which the spec validator passes itself, so that a
#: nested block is validated by the validator that is reading the spec (its registry, its paths)
VALIDATOR_CONTEXT = "altlearn_validator"


@dataclass(frozen=True)
class Block:
    """A validated ``type:`` block: the component class and its parsed options."""

    type: str
    component: Any
    params: BaseModel
    package: str = "altlearn"
    version: str = ""

    def as_dict(self, explicit: bool = False) -> dict[str, Any]:
        """The block as a spec writes it, every default filled in (nested blocks included); with
        ``explicit``, only the options whose values differ from their defaults."""
        return {"type": self.type, **self.params.model_dump(mode="json", exclude_defaults=explicit)}


class BlockList(list):
    """Blocks of a list option with every ``repeat: N`` expanded into N copies, in order.

    ``origins[i]`` is (index in the list as written, copy number from 0, number of copies) of the
    i-th block, so an error found in the expanded list can name the line the user wrote.
    """

    def __init__(self, blocks=(), origins: list[tuple[int, int, int]] | None = None) -> None:
        super().__init__(blocks)
        self.origins = origins if origins is not None else [(i, 0, 1) for i in range(len(self))]
        self.architecture: Block | None = None  # the named architecture these layers expand, if any

    def as_dicts(self) -> list[dict[str, Any]]:
        return [block.as_dict() for block in self]
