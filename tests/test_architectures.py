"""Named architectures (network: {type: ...}) and repeat: what they expand to, their parameter
counts against the published figures, render, and errors at the path as written."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from pydantic import Field

from altlearn.api import Architecture, Params, hookimpl
from altlearn.cli.commands import main
from altlearn.nn.composite import Residual
from altlearn.nn.network import build_network
from altlearn.registry import registry as plugins
from altlearn.spec.load import load_spec_text, validate
from altlearn.spec.network import module_location, written_path
from tests.test_run import write_spec
from tests.test_spec import minimal, problems_of


def network_of(arch: dict, data: str = "cifar10"):
    spec = validate(minimal(data={"type": data}, network=arch))
    info = spec.data.component.info(spec.data.params)
    return spec, build_network(spec.layers, info.input_shape, device="meta")[0]


def parameters(network) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize(
    "arch, data, count",
    [
        # He et al. 2016, table 6: 0.27M, 0.46M, 0.85M (option B projections add 2,560 + norms)
        ({"type": "resnet20"}, "cifar10", 272_474),
        ({"type": "resnet32"}, "cifar10", 466_906),
        ({"type": "resnet56"}, "cifar10", 855_770),
        # LeNet-5 on 28x28: 156 + 2,416 + 48,120 + 10,164 + 850
        ({"type": "lenet5"}, "fashion_mnist", 61_706),
        ({"type": "mlp", "width": 100, "depth": 1}, "digits", 64 * 100 + 100 + 100 * 10 + 10),
    ],
)
def test_parameter_counts_match_the_published_figures(arch, data, count):
    assert parameters(network_of(arch, data)[1]) == count


def test_resnet56_is_three_stages_of_nine_blocks_and_is_not_56_written_layers():
    spec, network = network_of({"type": "resnet56"})
    blocks = [m for m in network if isinstance(m, Residual)]
    assert len(blocks) == 27
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 27 * 2  # + the linear classifier: 56 weighted layers
    projections = [b for b in blocks if not isinstance(b.shortcut, torch.nn.Identity)]
    assert len(projections) == 2 and all(b.shortcut[0].stride == (2, 2) for b in projections)
    assert [b.body[0].out_channels for b in blocks[::9]] == [16, 32, 64]


def test_width_multiplier_scales_channels_and_classes_come_from_the_data():
    _, network = network_of({"type": "resnet20", "width": 2})
    assert network[0].out_channels == 32 and network[-1].out_features == 10
    _, lenet = network_of({"type": "lenet5", "width": 0.5}, "fashion_mnist")
    assert lenet[0].out_channels == 3


def test_render_shows_the_layers_an_architecture_expands_to_and_they_validate_again(tmp_path):
    path = write_spec(tmp_path, minimal(data={"type": "cifar10"}, network={"type": "resnet20"}))
    result = CliRunner().invoke(main, ["render", str(path)])
    assert result.exit_code == 0, result.output
    assert "# network: {type: resnet20, width: 1.0}, expanded:" in result.output
    assert result.output.count("type: residual") == 9
    again = load_spec_text(result.output, "rendered")
    assert [b.as_dict() for b in again.layers] == [
        b.as_dict() for b in validate(minimal(data={"type": "cifar10"}, network={"type": "resnet20"})).layers
    ]


@pytest.mark.parametrize(
    "network, data, path, words",
    [
        ({"type": "resnt20"}, "cifar10", "network.type", ["did you mean 'resnet20'"]),
        ({"type": "resnet20", "width": 0}, "cifar10", "network.width", ["greater than 0"]),
        (
            {"type": "lenet5", "depth": 3},
            "cifar10",
            "network.depth",
            ["not an option of network architecture"],
        ),
        ({"type": "lenet5"}, "digits", "network", ["conv2d cannot take input", "lenet5's layer layers[3]"]),
        ({"type": "mlp", "layers": []}, "digits", "network.layers", ["not both"]),
    ],
)
def test_architecture_errors(network, data, path, words):
    problems = problems_of(minimal(data={"type": data}, network=network))
    assert list(problems) == [path], problems
    for word in words:
        assert word in problems[path]


def test_an_image_architecture_refuses_flat_data():
    problems = problems_of(minimal(data={"type": "digits", "flat": True}, network={"type": "resnet20"}))
    assert "needs image examples" in problems["network"]


def test_repeat_expands_in_place_and_in_nested_lists():
    conv = {"type": "conv2d", "out_channels": 4, "padding": 1}
    block = {"type": "residual", "layers": [conv | {"repeat": 3}, "relu"], "repeat": 2}
    spec = validate(
        minimal(network={"layers": [conv, block, "flatten", {"type": "linear", "out_features": 10}]})
    )
    assert [b.type for b in spec.layers] == ["conv2d", "residual", "residual", "flatten", "linear"]
    assert [b.type for b in spec.layers[1].params.layers] == ["conv2d"] * 3 + ["relu"]
    network, _ = build_network(spec.layers, (1, 8, 8))
    assert network[1] is not network[2] and network[1].body[0] is not network[1].body[1]
    assert not torch.equal(network[1].body[0].weight, network[1].body[1].weight)  # own weights
    assert "repeat" not in spec.to_yaml()  # the resolved spec counts expanded layers


def test_a_shape_error_in_a_repeated_block_names_the_copy():
    layers = [{"type": "maxpool2d", "repeat": 4}, "flatten", {"type": "linear", "out_features": 10}]
    problems = problems_of(minimal(network={"layers": layers}))  # 8 -> 4 -> 2 -> 1 -> nothing
    assert "copy 4 of 4 of network.layers[0]'s repeat" in problems["network.layers[0]"]
    nested = {"type": "residual", "layers": ["relu", {"type": "maxpool2d", "repeat": 4}]}
    problems = problems_of(
        minimal(network={"layers": [nested, "flatten", {"type": "linear", "out_features": 10}]})
    )
    assert "copy 4 of 4" in problems["network.layers[0].layers[1]"]


def test_module_paths_map_to_the_paths_as_written():
    conv = {"type": "conv2d", "out_channels": 1, "padding": 1}
    block = {"type": "residual", "layers": ["relu", conv | {"repeat": 2}], "repeat": 3}
    spec = validate(
        minimal(network={"layers": [conv, block, "flatten", {"type": "linear", "out_features": 10}]})
    )
    assert module_location("2.body.2") == (2, ("layers", 2))
    assert module_location("3.shortcut.1") == (3, ("shortcut_norm",))
    assert module_location("3.post") == (3, ("activation",))
    path, note = written_path(spec.layers, *module_location("2.body.2"))
    assert path == "network.layers[1].layers[1]"
    assert "copy 2 of 3 of network.layers[1]" in note and "copy 2 of 2 of network.layers[1].layers[1]" in note
    assert written_path(spec.layers, 4) == ("network.layers[2]", "")  # the flatten after 3 copies


class Tiny(Architecture):
    class Params(Params):
        hidden: int = Field(8, ge=1)

    @classmethod
    def layers(cls, params, data):
        return [
            "flatten",
            {"type": "linear", "out_features": params.hidden},
            "relu",
            {"type": "linear", "out_features": data.num_classes},
        ]


class TinyPlugin:
    @hookimpl
    def altlearn_register_networks(register):
        register("tiny", Tiny, summary="a plugin's architecture")


def test_a_plugin_registers_an_architecture():
    registry = plugins.build_registry(extra_plugins=[(TinyPlugin, "altlearn-tiny", "0.3")])
    spec = validate(minimal(network={"type": "tiny", "hidden": 5}), registry)
    assert [b.type for b in spec.layers] == ["flatten", "linear", "relu", "linear"]
    assert spec.packages == {"altlearn-tiny": "0.3"}


def test_repeats_are_bounded_before_they_are_expanded():
    huge = {"type": "residual", "layers": [{"type": "relu", "repeat": 10**6}], "repeat": 10**6}
    problems = problems_of(minimal(network={"layers": ["flatten", huge]}))
    assert "more than 1000 layers" in problems["network.layers[1].layers[0]"]
    nested = {"type": "residual", "layers": [{"type": "relu", "repeat": 600}], "repeat": 2}
    problems = problems_of(minimal(network={"layers": ["flatten", nested]}))
    assert "more than 1000 layers" in problems["network.layers[1]"]
