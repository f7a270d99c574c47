"""Networks: the layer types a spec names, residual blocks, named architectures, and the builder
that turns a spec's layer blocks into a torch network, shape by shape.

- ``layers``: the built-in layer types (linear, conv2d, pooling, activations, normalisation);
- ``composite``: ``Residual``, the torch module residual blocks are built as (rules recognise it);
- ``residual``: ``ResidualLayer``, the ``residual`` layer type that builds one from ordinary
  layer blocks;
- ``architectures``: named networks (lenet5, resnet20/32/56, vgg, mlp) as lists of layer blocks;
- ``network``: building, and how rules and diagnostics name a network's trainable layers.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlearn.nn.composite import Residual
    from altlearn.nn.network import (
        LayerBlock,
        LayerKey,
        build_network,
        layer_key,
        split_blocks,
        trainable_indices,
        trainable_layers,
        yaml_path,
    )

__all__ = [
    "LayerBlock",
    "LayerKey",
    "Residual",
    "build_network",
    "layer_key",
    "split_blocks",
    "trainable_indices",
    "trainable_layers",
    "yaml_path",
]


def __getattr__(name: str) -> Any:
    """The names above, each imported on first use: they need torch, and the architectures'
    option models (``altlearn options network resnet20``) do not."""
    if name == "Residual":
        from altlearn.nn import composite

        return getattr(composite, name)
    if name in __all__:
        from altlearn.nn import network

        return getattr(network, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
