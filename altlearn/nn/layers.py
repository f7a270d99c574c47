"""Built-in layer types. Input sizes are inferred from the data, so no layer asks for them.

The built modules are plain ``torch.nn`` modules: rules recognise ``nn.Linear`` and ``nn.Conv2d`` as
trainable layers and everything else as a parameter-free operation between them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from altlearn.components.base import Layer, Params
from altlearn.components.values import Count, Fraction, NonNegativeCount, NonNegativeReal, PositiveReal


def _channels(input_shape: tuple[int, ...], layer: str) -> int:
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer} needs image input (channels, height, width), but its input has shape "
            f"{input_shape}; put it before any flatten/linear layer"
        )
    return input_shape[0]


def _features(input_shape: tuple[int, ...], layer: str, hint: str) -> int:
    if len(input_shape) != 1:
        raise ValueError(f"{layer} needs a flat input, but its input has shape {input_shape}; {hint}")
    return input_shape[0]


class _Fixed(Layer):
    """A layer without options whose module needs nothing from the input shape."""

    module: ClassVar[type[nn.Module]]

    @classmethod
    def build(cls, params, input_shape):
        return cls.module()


class _Configured(Layer):
    """A layer whose options are exactly its torch module's keyword arguments."""

    module: ClassVar[type[nn.Module]]

    @classmethod
    def build(cls, params, input_shape):
        return cls.module(**params.model_dump())


class Flatten(_Fixed):
    module = nn.Flatten


Init = Literal["default", "xavier_uniform", "zeros"]
INIT_DESCRIPTION = (
    "the initial weights: default (PyTorch's, U(+-1/sqrt(fan_in)) for weights and biases); "
    "xavier_uniform (Glorot-uniform weights, zero bias: BioTorch's); zeros (weights and bias zero: "
    "Nøkland's FA and DFA with tanh, which learn from it; not backprop, whose units would stay "
    "identical, nor ReLU, whose derivative at 0 is 0)"
)


def _initialise(layer: nn.Linear | nn.Conv2d, init: str) -> nn.Module:
    """Apply ``init`` in place; it draws from torch's global generator, which the trainer seeds
    with the spec's seed before building the network (so it is reproducible like the default)."""
    if init == "xavier_uniform":
        nn.init.xavier_uniform_(layer.weight)
    elif init == "zeros":
        nn.init.zeros_(layer.weight)
    if init != "default" and layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class Linear(Layer):
    class Params(Params):
        out_features: Count
        bias: bool = True
        init: Init = Field("default", description=INIT_DESCRIPTION)

    @classmethod
    def build(cls, params, input_shape):
        features = _features(input_shape, "linear", "add {type: flatten} before it")
        return _initialise(nn.Linear(features, params.out_features, bias=params.bias), params.init)


class Conv2d(Layer):
    class Params(Params):
        out_channels: Count
        kernel_size: Count = 3
        stride: Count = 1
        padding: NonNegativeCount = 0
        bias: bool = True
        init: Init = Field("default", description=INIT_DESCRIPTION)

    @classmethod
    def build(cls, params, input_shape):
        conv = nn.Conv2d(
            _channels(input_shape, "conv2d"),
            params.out_channels,
            params.kernel_size,
            stride=params.stride,
            padding=params.padding,
            bias=params.bias,
        )
        return _initialise(conv, params.init)


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


class Dropout(_Configured):
    module = nn.Dropout

    class Params(Params):
        p: Fraction = 0.5


class Relu(_Fixed):
    module = nn.ReLU


class Tanh(_Fixed):
    module = nn.Tanh


class Sigmoid(_Fixed):
    module = nn.Sigmoid


class Gelu(_Configured):
    module = nn.GELU

    class Params(Params):
        approximate: Literal["none", "tanh"] = "none"


class LeakyRelu(_Configured):
    module = nn.LeakyReLU

    class Params(Params):
        negative_slope: NonNegativeReal = 0.01


class Identity(_Fixed):
    module = nn.Identity


class AdaptiveAvgpool2d(Layer):
    class Params(Params):
        output_size: Count = Field(1, description="height and width of the output (1: global pooling)")

    @classmethod
    def build(cls, params, input_shape):
        _channels(input_shape, "adaptive_avgpool2d")
        return nn.AdaptiveAvgPool2d(params.output_size)


class _NormParams(Params):
    eps: PositiveReal = Field(1e-5, description="added to the variance for numerical stability")
    affine: bool = Field(True, description="learn a per-feature scale and shift")


class _BatchNormParams(_NormParams):
    momentum: PositiveReal = Field(0.1, le=1.0, description="weight of each batch in the running statistics")


class Batchnorm1d(Layer):
    """Batch normalisation of a flat input (D,): one mean and variance per feature."""

    Params = _BatchNormParams

    @classmethod
    def build(cls, params, input_shape):
        features = _features(input_shape, "batchnorm1d", "use batchnorm2d on images")
        return nn.BatchNorm1d(features, params.eps, params.momentum, affine=params.affine)


class Batchnorm2d(Layer):
    """Batch normalisation of images (C, H, W): one mean and variance per channel."""

    Params = _BatchNormParams

    @classmethod
    def build(cls, params, input_shape):
        channels = _channels(input_shape, "batchnorm2d")
        return nn.BatchNorm2d(channels, params.eps, params.momentum, affine=params.affine)


class Layernorm(Layer):
    """Layer normalisation over the whole example (all its features, or all channels and pixels)."""

    Params = _NormParams

    @classmethod
    def build(cls, params, input_shape):
        return nn.LayerNorm(input_shape, params.eps, elementwise_affine=params.affine)


class Groupnorm(Layer):
    """Group normalisation: channels (or features of a flat input) in ``groups`` groups."""

    class Params(_NormParams):
        groups: Count = Field(description="number of groups; must divide the channels")

    @classmethod
    def build(cls, params, input_shape):
        channels = input_shape[0]
        if channels % params.groups:
            raise ValueError(
                f"groupnorm's groups={params.groups} does not divide the {channels} channels of its "
                f"input {input_shape}; choose a divisor of {channels}"
            )
        return nn.GroupNorm(params.groups, channels, params.eps, affine=params.affine)
