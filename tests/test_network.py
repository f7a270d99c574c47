"""Building networks from layer specs: every built-in layer, inferred sizes, meta-device builds,
and errors that carry the layer's index."""

import pytest
import torch
from torch import nn

from altlearn.components.base import Layer, Params
from altlearn.nn import layers
from altlearn.nn.network import NetworkError, build_network
from altlearn.registry.registry import PLUGIN_SELECTION_ENV, build_registry
from altlearn.spec.load import Block

LAYER_CLASSES = {
    "flatten": layers.Flatten,
    "linear": layers.Linear,
    "conv2d": layers.Conv2d,
    "maxpool2d": layers.Maxpool2d,
    "avgpool2d": layers.Avgpool2d,
    "dropout": layers.Dropout,
    "relu": layers.Relu,
    "tanh": layers.Tanh,
    "sigmoid": layers.Sigmoid,
    "gelu": layers.Gelu,
    "leaky_relu": layers.LeakyRelu,
    "identity": layers.Identity,
    "adaptive_avgpool2d": layers.AdaptiveAvgpool2d,
    "batchnorm1d": layers.Batchnorm1d,
    "batchnorm2d": layers.Batchnorm2d,
    "layernorm": layers.Layernorm,
    "groupnorm": layers.Groupnorm,
}


def spec(type_name: str, **options) -> Block:
    cls = LAYER_CLASSES[type_name]
    return Block(type_name, cls, cls.Params(**options))


# type, options, input shape, torch module type, output shape
BUILDS = [
    ("flatten", {}, (3, 4, 5), nn.Flatten, (60,)),
    ("linear", {"out_features": 7}, (12,), nn.Linear, (7,)),
    ("conv2d", {"out_channels": 6}, (3, 10, 10), nn.Conv2d, (6, 8, 8)),
    ("maxpool2d", {}, (3, 10, 10), nn.MaxPool2d, (3, 5, 5)),
    ("avgpool2d", {"kernel_size": 3, "stride": 1, "padding": 1}, (2, 9, 9), nn.AvgPool2d, (2, 9, 9)),
    ("dropout", {"p": 0.3}, (5,), nn.Dropout, (5,)),
    ("relu", {}, (2, 3, 3), nn.ReLU, (2, 3, 3)),
    ("tanh", {}, (4,), nn.Tanh, (4,)),
    ("sigmoid", {}, (4,), nn.Sigmoid, (4,)),
    ("gelu", {"approximate": "tanh"}, (4,), nn.GELU, (4,)),
    ("leaky_relu", {"negative_slope": 0.2}, (4,), nn.LeakyReLU, (4,)),
    ("identity", {}, (2, 3, 3), nn.Identity, (2, 3, 3)),
    ("adaptive_avgpool2d", {}, (5, 7, 7), nn.AdaptiveAvgPool2d, (5, 1, 1)),
    ("batchnorm1d", {"momentum": 0.2}, (6,), nn.BatchNorm1d, (6,)),
    ("batchnorm2d", {"eps": 1e-3}, (3, 4, 4), nn.BatchNorm2d, (3, 4, 4)),
    ("layernorm", {}, (3, 4, 4), nn.LayerNorm, (3, 4, 4)),
    ("groupnorm", {"groups": 2}, (4, 3, 3), nn.GroupNorm, (4, 3, 3)),
]


def test_every_registered_builtin_layer_is_covered(monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "none")
    registry = build_registry()
    # residual, a composite layer, has its own tests (test_residual.py)
    assert set(registry.names("layer")) - {"residual"} == set(LAYER_CLASSES) == {b[0] for b in BUILDS}
    for name, cls in LAYER_CLASSES.items():
        assert registry.load("layer", name) is cls


@pytest.mark.parametrize(
    "type_name, options, shape, module_type, out_shape", BUILDS, ids=[b[0] for b in BUILDS]
)
def test_builtin_layer_builds(type_name, options, shape, module_type, out_shape):
    network, out = build_network([spec(type_name, **options)], shape)
    assert isinstance(network, nn.Sequential) and len(network) == 1
    assert type(network[0]) is module_type
    assert out == out_shape
    assert network(torch.rand(3, *shape)).shape == (3, *out_shape)


def test_layer_options_reach_the_torch_modules():
    network, _ = build_network(
        [
            spec("conv2d", out_channels=4, kernel_size=5, stride=2, padding=1, bias=False),
            spec("maxpool2d", kernel_size=3),
            spec("flatten"),
            spec("dropout", p=0.25),
            spec("linear", out_features=3, bias=False),
            spec("leaky_relu", negative_slope=0.3),
            spec("gelu", approximate="tanh"),
        ],
        (2, 21, 21),
    )
    conv, pool, _, dropout, linear, leaky, gelu = network
    assert (conv.in_channels, conv.out_channels) == (2, 4)
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert conv.bias is None and linear.bias is None
    assert pool.kernel_size == 3 and pool.stride == 3  # stride defaults to the kernel size
    assert dropout.p == 0.25
    assert leaky.negative_slope == 0.3
    assert gelu.approximate == "tanh"


def test_normalisation_options_reach_the_torch_modules():
    network, _ = build_network(
        [
            spec("batchnorm2d", eps=1e-3, momentum=0.3, affine=False),
            spec("groupnorm", groups=3, eps=1e-4),
            spec("layernorm", affine=False),
            spec("adaptive_avgpool2d", output_size=2),
            spec("flatten"),
            spec("batchnorm1d"),
        ],
        (6, 5, 5),
    )
    batch2d, group, layer, pool, _, batch1d = network
    assert (batch2d.num_features, batch2d.eps, batch2d.momentum, batch2d.affine) == (6, 1e-3, 0.3, False)
    assert (group.num_groups, group.num_channels, group.eps) == (3, 6, 1e-4)
    assert layer.normalized_shape == (6, 5, 5) and not layer.elementwise_affine
    assert pool.output_size == 2
    assert batch1d.num_features == 24 and batch1d.affine  # 6 channels x 2 x 2 after pooling


def test_input_sizes_are_inferred():
    network, out = build_network(
        [spec("flatten"), spec("linear", out_features=100), spec("relu"), spec("linear", out_features=10)],
        (1, 28, 28),
    )
    assert network[1].in_features == 784 and network[1].out_features == 100
    assert network[3].in_features == 100
    assert network[1].weight.shape == (100, 784)
    assert out == (10,)


@pytest.mark.parametrize(
    "kernel, stride, padding, side",
    [
        (3, 1, 0, 26),
        (3, 1, 1, 28),
        (5, 2, 0, 12),
        (5, 2, 2, 14),
        (4, 4, 0, 7),
    ],
)
def test_conv_output_shapes_follow_kernel_stride_padding(kernel, stride, padding, side):
    network, out = build_network(
        [
            spec("conv2d", out_channels=8, kernel_size=kernel, stride=stride, padding=padding),
            spec("flatten"),
            spec("linear", out_features=10),
        ],
        (1, 28, 28),
    )
    assert out == (10,)
    assert network[2].in_features == 8 * side * side
    assert network(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_conv_stack_channels_chain():
    network, out = build_network(
        [
            spec("conv2d", out_channels=5, padding=1),
            spec("relu"),
            spec("avgpool2d"),
            spec("conv2d", out_channels=7),
            spec("maxpool2d"),
            spec("flatten"),
        ],
        (3, 32, 32),
    )
    assert network[3].in_channels == 5
    assert out == (7 * 7 * 7,)  # 32 -> 32 -> 16 -> 14 -> 7


def test_meta_device_build_allocates_nothing():
    layer_specs = [
        spec("conv2d", out_channels=64, padding=1),
        spec("flatten"),
        spec("linear", out_features=4096),
        spec("linear", out_features=10),
    ]
    network, out = build_network(layer_specs, (3, 32, 32), device="meta")
    params = list(network.parameters())
    assert len(params) == 6
    assert all(p.is_meta for p in params)
    assert network[2].weight.shape == (4096, 64 * 32 * 32)  # a 1 GiB matrix, never allocated
    _, cpu_out = build_network(
        layer_specs[:1] + [spec("flatten"), spec("linear", out_features=10)], (3, 32, 32)
    )
    assert out == cpu_out == (10,)


def test_cpu_build_gives_real_parameters():
    network, _ = build_network([spec("flatten"), spec("linear", out_features=3)], (2, 2))
    weight = network[1].weight
    assert weight.device.type == "cpu" and not weight.is_meta
    assert torch.isfinite(weight).all() and weight.abs().sum() > 0


def test_layer_init_options():
    torch.manual_seed(0)
    layer_specs = [
        spec("conv2d", out_channels=20, kernel_size=3, init="xavier_uniform"),
        spec("flatten"),
        spec("linear", out_features=30, init="zeros"),
        spec("linear", out_features=40),
    ]
    network, _ = build_network(layer_specs, (10, 5, 5))
    conv, zero, default = network[0], network[2], network[3]
    bound = (6 / (10 * 9 + 20 * 9)) ** 0.5  # Glorot: fan_in + fan_out of the (20, 10, 3, 3) kernel
    assert bound * 0.95 < conv.weight.abs().max() <= bound and not conv.bias.any()
    assert not zero.weight.any() and not zero.bias.any()
    assert default.bias.any() and default.weight.abs().max() <= 1 / 30**0.5  # PyTorch's own, unchanged
    torch.manual_seed(0)
    again, _ = build_network(layer_specs, (10, 5, 5))
    assert torch.equal(again[0].weight, conv.weight)  # drawn from the seeded global generator


def test_an_unknown_init_is_refused():
    with pytest.raises(ValueError, match="xavier_uniform"):
        spec("linear", out_features=3, init="xavier")


@pytest.mark.parametrize(
    "layer_specs, shape, index, words",
    [
        ([spec("linear", out_features=10)], (1, 28, 28), 0, "add {type: flatten}"),
        ([spec("flatten"), spec("relu"), spec("conv2d", out_channels=2)], (1, 8, 8), 2, "image input"),
        ([spec("flatten"), spec("maxpool2d")], (1, 8, 8), 1, "image input"),
        ([spec("relu"), spec("conv2d", out_channels=2, kernel_size=9)], (1, 8, 8), 1, "(1, 8, 8)"),
        ([spec("maxpool2d")] * 4, (1, 8, 8), 3, "maxpool2d"),  # 8 -> 4 -> 2 -> 1 -> nothing
        ([spec("flatten"), spec("batchnorm2d")], (1, 8, 8), 1, "image input"),
        ([spec("batchnorm1d")], (1, 8, 8), 0, "use batchnorm2d on images"),
        ([spec("groupnorm", groups=4)], (6, 2, 2), 0, "does not divide the 6 channels"),
        ([spec("flatten"), spec("adaptive_avgpool2d")], (1, 8, 8), 1, "image input"),
    ],
)
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_network_error_carries_the_layer_index(layer_specs, shape, index, words, device):
    with pytest.raises(NetworkError) as info:
        build_network(layer_specs, shape, device=device)
    assert info.value.index == index
    assert words in str(info.value)


class NotAModule(Layer):
    @classmethod
    def build(cls, params, input_shape):
        return lambda x: x


class BatchNorm(Layer):
    """A plugin-style layer with running statistics."""

    @classmethod
    def build(cls, params, input_shape):
        return nn.BatchNorm1d(input_shape[0])


def test_a_layer_that_returns_no_module_is_an_error_at_its_index():
    with pytest.raises(NetworkError) as info:
        build_network([spec("flatten"), Block("odd", NotAModule, Params())], (1, 2, 2))
    assert info.value.index == 1 and "not a torch module" in str(info.value)


def test_building_does_not_change_the_modules_it_returns():
    network, _ = build_network(
        [spec("flatten"), Block("bn", BatchNorm, Params()), spec("dropout")], (1, 2, 2)
    )
    norm = network[1]
    # The shape probe must not count as a training batch.
    assert norm.num_batches_tracked.item() == 0
    assert torch.equal(norm.running_var, torch.ones(4))
    assert torch.equal(norm.running_mean, torch.zeros(4))
    assert all(m.training for m in network.modules())  # returned ready to train
