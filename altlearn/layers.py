"""Built-in layer types. Input sizes are inferred from the data, so no layer asks for them.

The built modules are plain ``torch.nn`` modules: rules recognise ``nn.Linear`` and ``nn.Conv2d`` as
trainable layers and everything else as a parameter-free operation between them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import nn

from altlearn.components import Layer, Params
from altlearn.values import Count, Fraction, NonNegativeCount, NonNegativeReal


def _channels(input_shape: tuple[int, ...], layer: str) -> int:
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer} needs image input (channels, height, width), but its input has shape "
            f"{input_shape}; put it before any flatten/linear layer"
        )
    return input_shape[0]


class _Fixed(Layer):
    """A layer without options whose module needs nothing from the input shape."""

    module: ClassVar[type[nn.Module]]

    @classmethod
    def build(cls, params, input_shape):
        return cls.module()


class Flatten(_Fixed):
    module = nn.Flatten


class Linear(Layer):
    class Params(Params):
        out_features: Count
        bias: bool = True

    @classmethod
    def build(cls, params, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"linear needs a flat input, but its input has shape {input_shape}; "
                "add {type: flatten} before it"
            )
        return nn.Linear(input_shape[0], params.out_features, bias=params.bias)


class Conv2d(Layer):
    class Params(Params):
        out_channels: Count
        kernel_size: Count = 3
        stride: Count = 1
        padding: NonNegativeCount = 0
        bias: bool = True

    @classmethod
    def build(cls, params, input_shape):
        return nn.Conv2d(
            _channels(input_shape, "conv2d"),
            params.out_channels,
            params.kernel_size,
            stride=params.stride,
            padding=params.padding,
            bias=params.bias,
        )


class _PoolParams(Params):
    kernel_size: Count = 2
    stride: Count | None = None  # None: same as kernel_size
    padding: NonNegativeCount = 0


class _Pool(Layer):
    Params: ClassVar[type[Params]] = _PoolParams
    module: ClassVar[type[nn.Module]]
    type_name: ClassVar[str]  # for the message when the input is not an image

    @classmethod
    def build(cls, params, input_shape):
        _channels(input_shape, cls.type_name)
        return cls.module(params.kernel_size, params.stride, params.padding)


class Maxpool2d(_Pool):
    module, type_name = nn.MaxPool2d, "maxpool2d"


class Avgpool2d(_Pool):
    module, type_name = nn.AvgPool2d, "avgpool2d"


class Dropout(Layer):
    class Params(Params):
        p: Fraction = 0.5

    @classmethod
    def build(cls, params, input_shape):
        return nn.Dropout(params.p)


class Relu(_Fixed):
    module = nn.ReLU


class Tanh(_Fixed):
    module = nn.Tanh


class Sigmoid(_Fixed):
    module = nn.Sigmoid


class Gelu(Layer):
    class Params(Params):
        approximate: Literal["none", "tanh"] = "none"

    @classmethod
    def build(cls, params, input_shape):
        return nn.GELU(approximate=params.approximate)


class LeakyRelu(Layer):
    class Params(Params):
        negative_slope: NonNegativeReal = 0.01

    @classmethod
    def build(cls, params, input_shape):
        return nn.LeakyReLU(params.negative_slope)
