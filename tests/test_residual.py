"""The residual layer type and lists of nested layer blocks: building (shortcut kinds, shapes),
validation at the exact nested YAML path, and repeat."""

import pytest
import torch
from torch import nn

from altlearn.nn.composite import Residual
from altlearn.spec.load import validate
from tests.test_spec import minimal, problems_of


def conv(channels, stride=1, **extra):
    return {"type": "conv2d", "out_channels": channels, "stride": stride, "padding": 1, **extra}


def basic_block(channels, stride=1):
    """He et al.'s basic block as a spec writes it."""
    return {
        "type": "residual",
        "layers": [conv(channels, stride, bias=False), "batchnorm2d", "relu", conv(channels, bias=False)],
        "shortcut_norm": "batchnorm2d",
        "activation": "relu",
    }


def image_spec(*blocks, head=10):
    """digits (1, 8, 8) through a conv, the blocks, global pooling and a linear head."""
    tail = [{"type": "adaptive_avgpool2d"}, {"type": "flatten"}, {"type": "linear", "out_features": head}]
    return minimal(network={"layers": [conv(8), *blocks, *tail]})


def build(spec):
    from altlearn.nn.network import build_network

    return build_network(validate(spec).layers, (1, 8, 8))


def test_identity_shortcut_when_the_body_keeps_the_shape():
    network, out = build(image_spec(basic_block(8)))
    block = network[1]
    assert isinstance(block, Residual) and isinstance(block.shortcut, nn.Identity)
    assert isinstance(block.post, nn.ReLU) and len(block.body) == 4
    assert out == (10,)


def test_projection_shortcut_downsamples_with_a_strided_1x1_conv_and_its_norm():
    network, _ = build(image_spec(basic_block(16, stride=2)))
    projection, norm = network[1].shortcut
    assert isinstance(projection, nn.Conv2d) and projection.kernel_size == (1, 1)
    assert projection.stride == (2, 2) and (projection.in_channels, projection.out_channels) == (8, 16)
    assert projection.bias is None  # the norm after it has its own shift
    assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == 16
    x = torch.rand(3, 1, 8, 8)
    block = network[1]
    assert block(network[0](x)).shape == (3, 16, 4, 4)


def test_residual_output_is_body_plus_shortcut_then_activation():
    network, _ = build(image_spec(basic_block(16, stride=2)))
    block = network[1].eval()
    a = torch.randn(2, 8, 8, 8)
    expected = torch.relu(block.body(a) + block.shortcut(a))
    assert torch.equal(block(a), expected)


def test_a_flat_residual_block_projects_with_a_linear_layer():
    spec = minimal(
        network={
            "layers": [
                {"type": "flatten"},
                {"type": "residual", "layers": [{"type": "linear", "out_features": 32}, "relu"]},
                {"type": "linear", "out_features": 10},
            ]
        }
    )
    network, out = build(spec)
    assert isinstance(network[1].shortcut, nn.Linear) and network[1].shortcut.in_features == 64
    assert network[1].shortcut.bias is not None and out == (10,)


def test_batch_norm_on_flat_features_validates_and_trains_in_residual_bodies():
    # The validator's memory check probes the network on the meta device; batch norm in training
    # mode refuses a one-example probe, which once made `altlearn validate` end in a traceback.
    spec = minimal(
        network={
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 32},
                {"type": "batchnorm1d"},
                {
                    "type": "residual",
                    "repeat": 2,
                    "layers": ["batchnorm1d", {"type": "linear", "out_features": 32}],
                },
                {"type": "linear", "out_features": 10},
            ]
        }
    )
    network, out = build(spec)
    assert out == (10,) and network.training  # the probe left the modes as they were
    assert isinstance(network[2], nn.BatchNorm1d) and isinstance(network[3].body[0], nn.BatchNorm1d)


def test_residual_blocks_nest():
    inner = {"type": "residual", "layers": [conv(8), "relu"]}
    outer = {"type": "residual", "layers": [inner, conv(8, bias=False)], "activation": "relu"}
    network, _ = build(image_spec(outer))
    assert isinstance(network[1].body[0], Residual)


@pytest.mark.parametrize(
    "block, path, words",
    [
        # a bad option two levels down is reported where it is written
        (
            {"type": "residual", "layers": ["relu", {"type": "conv2d", "out_channels": 0}]},
            "network.layers[1].layers[1].out_channels",
            ["0", "greater than 0"],
        ),
        (
            {"type": "residual", "layers": [{"type": "residual", "layers": [{"type": "conv2d"}]}]},
            "network.layers[1].layers[0].layers[0].out_channels",
            ["required by layer 'conv2d'"],
        ),
        ({"type": "residual", "layers": ["relux"]}, "network.layers[1].layers[0]", ["did you mean 'relu'"]),
        ({"type": "residual", "layers": []}, "network.layers[1].layers", ["non-empty list"]),
        ({"type": "residual"}, "network.layers[1].layers", ["required by layer 'residual'"]),
        (
            {"type": "residual", "layers": ["relu"], "shortcut": "pad"},
            "network.layers[1].shortcut",
            ["'pad'"],
        ),
        (
            {"type": "residual", "layers": ["relu"], "activation": {"type": "leaky_relu", "slope": 1}},
            "network.layers[1].activation.slope",
            ["its options are: negative_slope"],
        ),
        (
            {"type": "residual", "layers": [{"type": "relu", "repeat": 0}]},
            "network.layers[1].layers[0].repeat",
            ["greater than 0"],
        ),
    ],
)
def test_option_errors_inside_residual_blocks_name_the_nested_path(block, path, words):
    problems = problems_of(image_spec(block))
    assert list(problems) == [path], problems
    for word in words:
        assert word in problems[path]


@pytest.mark.parametrize(
    "block, path, words",
    [
        # shapes are checked on the meta device: the conv inside the body, then the shortcut
        (
            {
                "type": "residual",
                "layers": [conv(8), {"type": "conv2d", "out_channels": 4, "kernel_size": 11}],
            },
            "network.layers[1].layers[1]",
            ["conv2d cannot take input of shape (8, 8, 8)"],
        ),
        (
            {"type": "residual", "layers": [conv(16, stride=2)], "shortcut": "identity"},
            "network.layers[1].shortcut",
            ["turns (8, 8, 8) into (16, 4, 4)", "projection"],
        ),
        (
            {"type": "residual", "layers": [conv(8)], "shortcut": "identity", "shortcut_norm": "batchnorm2d"},
            "network.layers[1].shortcut_norm",
            ["the shortcut is the identity"],
        ),
        (
            {"type": "residual", "layers": [conv(8), "flatten"]},
            "network.layers[1].shortcut",
            ["no projection maps"],
        ),
        (
            {"type": "residual", "layers": [conv(16, stride=2)], "shortcut_norm": "batchnorm1d"},
            "network.layers[1].shortcut_norm",
            ["batchnorm1d cannot take", "use batchnorm2d"],
        ),
        (
            {"type": "residual", "layers": [{"type": "residual", "layers": [conv(8), "flatten"]}]},
            "network.layers[1].layers[0].shortcut",
            ["no projection maps"],
        ),
    ],
)
def test_shape_errors_inside_residual_blocks_name_the_nested_path(block, path, words):
    problems = problems_of(image_spec(block))
    assert list(problems) == [path], problems
    for word in words:
        assert word in problems[path]


def test_a_residual_block_built_in_python_resolves_its_layers_with_the_installed_plugins():
    from altlearn.nn.residual import ResidualLayer

    params = ResidualLayer.Params(layers=["relu", {"type": "linear", "out_features": 3, "repeat": 2}])
    assert [b.type for b in params.layers] == ["relu", "linear", "linear"]
    assert params.shortcut_norm is None and params.activation is None
    with pytest.raises(ValueError, match="did you mean 'relu'"):
        ResidualLayer.Params(layers=["rellu"])


def test_nested_layers_become_mlflow_params_by_their_expanded_position():
    from altlearn.spec.model import flatten

    params = flatten(validate(image_spec(basic_block(8) | {"repeat": 2})).to_dict())
    assert params["network.layers.2.type"] == "residual"
    assert params["network.layers.2.layers.0.out_channels"] == 8
    assert params["network.layers.2.shortcut_norm.type"] == "batchnorm2d"
