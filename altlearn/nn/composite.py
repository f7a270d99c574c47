"""Composite torch modules that networks are built from, beyond a plain chain of layers.

Rules and diagnostics recognise these by class, so their attribute names are part of the contract:
a feedback rule walks ``body`` and ``shortcut`` to find every trainable layer, and a direct-feedback
rule treats a block's output as one feedback point.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``post(body(x) + shortcut(x))``: He et al.'s residual block, for conv and linear networks.

    - ``body``: the block's layers, in order (an ``nn.Sequential``);
    - ``shortcut``: ``nn.Identity()`` when shapes agree, else a projection (a 1x1 conv or a linear
      layer, possibly followed by a normalisation) that maps x to the body's output shape;
    - ``post``: applied after the sum (usually an activation), ``nn.Identity()`` for none.
    """

    def __init__(self, body: nn.Sequential, shortcut: nn.Module | None = None, post: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.post = post if post is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.body(x) + self.shortcut(x))
