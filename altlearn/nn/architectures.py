"""Built-in named architectures (``network: {type: resnet20}``): each expands to ordinary layer
blocks for the data it is given, so rules, alignment names and MLflow params see plain layers.

- ``lenet5``: LeCun et al. 1998 as BioTorch trains it: two 5x5 convs (6, 16 channels) with
  pooling, then 120-84-classes fully connected.
- ``resnet20/32/56``: He et al. 2016's CIFAR ResNets (section 4.2): a 3x3 conv with 16 channels,
  three stages of n basic blocks (16, 32, 64 channels; the first block of stages 2 and 3 halves
  the side), global average pooling, a linear classifier; batch norm after every conv. Shortcuts
  that change the shape are projections (option B: 1x1 conv with stride + batch norm), the others
  the identity, so every trainable layer is a conv or linear layer the feedback rules can reach.
- ``vgg``: a small VGG (Simonyan and Zisserman 2015): stages of 3x3 convs (batch norm optional),
  each ending in 2x2 max pooling, global average pooling, dropout, a linear classifier.
- ``mlp``: ``depth`` hidden layers of ``width`` units with an activation (optional dropout and
  normalisation), for images (flattened first) or flat features.

The number of classes always comes from the data set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from altlearn.components.base import Architecture, DataInfo, Params
from altlearn.components.values import Count, Fraction, PositiveReal

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu"]


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _needs_images(info: DataInfo, name: str) -> None:
    if len(info.input_shape) != 3:
        raise ValueError(
            f"{name} needs image examples (channels, height, width), but the data set's examples "
            f"have shape {info.input_shape}; use mlp, or write the layers out"
        )


def _conv(channels: int, kernel: int = 3, stride: int = 1, padding: int = 1, bias: bool = True) -> dict:
    return {
        "type": "conv2d",
        "out_channels": channels,
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "bias": bias,
    }


def _classifier(classes: int, dropout: float = 0.0) -> list[dict]:
    head: list[dict[str, Any]] = [{"type": "adaptive_avgpool2d"}, {"type": "flatten"}]
    if dropout:
        head.append({"type": "dropout", "p": dropout})
    return head + [{"type": "linear", "out_features": classes}]


class LeNet5(Architecture):
    class Params(Params):
        width: PositiveReal = Field(1.0, description="multiplies every layer's channels and units")
        activation: Activation = Field("relu", description="after every conv and hidden linear layer")
        pooling: Literal["max", "avg"] = Field("max", description="the 2x2 pooling after each conv")

    @classmethod
    def layers(cls, params, data: DataInfo) -> list[dict]:
        _needs_images(data, "lenet5")
        act, pool = {"type": params.activation}, {"type": f"{params.pooling}pool2d", "kernel_size": 2}
        w = params.width
        return [
            # padding 2 keeps a 28x28 image at 28x28, as LeNet-5's 32x32 input did
            _conv(_scaled(6, w), kernel=5, padding=2),
            act,
            pool,
            _conv(_scaled(16, w), kernel=5, padding=0),
            act,
            pool,
            {"type": "flatten"},
            {"type": "linear", "out_features": _scaled(120, w)},
            act,
            {"type": "linear", "out_features": _scaled(84, w)},
            act,
            {"type": "linear", "out_features": data.num_classes},
        ]


class _CifarResNet(Architecture):
    """He et al.'s CIFAR ResNet with ``blocks_per_stage`` basic blocks per stage (6n + 2 layers)."""

    blocks_per_stage: int

    class Params(Params):
        width: PositiveReal = Field(1.0, description="multiplies the 16/32/64 channels of the stages")

    @classmethod
    def layers(cls, params, data: DataInfo) -> list[dict]:
        _needs_images(data, cls.__name__.lower())
        stem = [_conv(_scaled(16, params.width), bias=False), {"type": "batchnorm2d"}, {"type": "relu"}]
        stages = []
        for stage, channels in enumerate((16, 32, 64)):
            channels = _scaled(channels, params.width)
            stages.append(_basic_block(channels, stride=1 if stage == 0 else 2))
            if cls.blocks_per_stage > 1:
                stages.append(_basic_block(channels) | {"repeat": cls.blocks_per_stage - 1})
        return stem + stages + _classifier(data.num_classes)


def _basic_block(channels: int, stride: int = 1) -> dict:
    """conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu (He et al. 2016, figure 2)."""
    return {
        "type": "residual",
        "layers": [
            _conv(channels, stride=stride, bias=False),
            {"type": "batchnorm2d"},
            {"type": "relu"},
            _conv(channels, bias=False),
            {"type": "batchnorm2d"},
        ],
        "shortcut": "auto",
        "shortcut_norm": {"type": "batchnorm2d"},
        "activation": {"type": "relu"},
    }


class ResNet20(_CifarResNet):
    blocks_per_stage = 3


class ResNet32(_CifarResNet):
    blocks_per_stage = 5


class ResNet56(_CifarResNet):
    blocks_per_stage = 9


class VGG(Architecture):
    class Params(Params):
        stages: list[list[Count]] = Field(
            [[32, 32], [64, 64], [128, 128]],
            min_length=1,
            description="channels of the 3x3 convs of each stage; every stage ends in 2x2 max pooling",
        )
        width: PositiveReal = Field(1.0, description="multiplies every conv's channels")
        batch_norm: bool = Field(True, description="batch norm after every conv")
        dropout: Fraction = Field(0.0, description="dropout before the classifier")

    @classmethod
    def layers(cls, params, data: DataInfo) -> list[dict]:
        _needs_images(data, "vgg")
        out: list[dict] = []
        for stage in params.stages:
            for channels in stage:
                out.append(_conv(_scaled(channels, params.width), bias=not params.batch_norm))
                out += [{"type": "batchnorm2d"}] if params.batch_norm else []
                out.append({"type": "relu"})
            out.append({"type": "maxpool2d", "kernel_size": 2})
        return out + _classifier(data.num_classes, params.dropout)


class MLP(Architecture):
    class Params(Params):
        width: Count = Field(256, description="units of every hidden layer")
        depth: Count = Field(2, description="number of hidden layers")
        activation: Activation = Field("relu", description="after every hidden layer")
        dropout: Fraction = Field(0.0, description="dropout after every hidden activation")
        norm: Literal["none", "batchnorm1d", "layernorm"] = Field(
            "none", description="a normalisation between each hidden layer and its activation"
        )

    @classmethod
    def layers(cls, params, data: DataInfo) -> list[dict]:
        hidden = [{"type": "linear", "out_features": params.width}]
        hidden += [] if params.norm == "none" else [{"type": params.norm}]
        hidden.append({"type": params.activation})
        hidden += [{"type": "dropout", "p": params.dropout}] if params.dropout else []
        flatten = [{"type": "flatten"}] if len(data.input_shape) > 1 else []
        return flatten + hidden * params.depth + [{"type": "linear", "out_features": data.num_classes}]
