"""optimizer.groups: some parameters trained with other option values (ff's head its own weight
decay, a layer its own lr), checked where the spec is validated and applied as torch param groups."""

from __future__ import annotations

import copy

import pytest
import torch

from altlearn.errors import SpecError
from altlearn.spec.load import load_spec_text, validate
from altlearn.training.trainer import Trainer

MLP = {
    "name": "groups",
    "seed": 3,
    "data": {"type": "digits", "batch_size": 32},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 12},
            {"type": "tanh"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "rule": {"type": "bp"},
    "train": {"epochs": 1, "device": "cpu", "threads": 1},
    "tracking": {"alignment_every": 0},
}


FF_LAYERS = [
    {"type": "flatten"},
    {"type": "linear", "out_features": 16},
    {"type": "relu"},
    {"type": "linear", "out_features": 16},
    {"type": "relu"},
]


def spec_with(optimizer: dict, **changes):
    raw = copy.deepcopy(MLP)
    raw["optimizer"] = optimizer
    raw.update(changes)
    return validate(raw)


def problems(optimizer: dict, **changes) -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec_with(optimizer, **changes)
    return [str(p) for p in caught.value.problems]


def test_groups_become_torch_param_groups_after_the_ungrouped_parameters():
    spec = spec_with(
        {"type": "sgd", "lr": 0.1, "momentum": 0.9, "groups": [{"params": "network.layers[3]", "lr": 0.01}]}
    )
    optimizer = Trainer(spec).optimizer
    first, grouped = optimizer.param_groups
    layer1, layer3 = Trainer(spec).rule.network[1], Trainer(spec).rule.network[3]
    assert [p.shape for p in first["params"]] == [p.shape for p in layer1.parameters()]
    assert [p.shape for p in grouped["params"]] == [p.shape for p in layer3.parameters()]
    assert (first["lr"], grouped["lr"]) == (0.1, 0.01)
    assert (
        first["momentum"] == grouped["momentum"] == 0.9
    )  # an option a group leaves out follows the optimizer


def test_one_sgd_step_uses_each_groups_lr_and_weight_decay():
    """Plain SGD, hand-computed: w' = w - lr_g * (grad + wd_g * w), per group."""
    groups = [{"params": "network.layers[3]", "lr": 0.5, "weight_decay": 0.2}]
    trainer = Trainer(spec_with({"type": "sgd", "lr": 0.05, "groups": groups}))
    network = trainer.rule.network
    before = [p.detach().clone() for p in network.parameters()]
    x, y = trainer.data.train_x[:32], trainer.data.train_y[:32]
    trainer.optimizer.zero_grad()
    trainer.rule.train_step(x, y)
    grads = [p.grad.detach().clone() for p in network.parameters()]
    trainer.optimizer.step()
    rates = {0: (0.05, 0.0), 1: (0.05, 0.0), 2: (0.5, 0.2), 3: (0.5, 0.2)}  # layer 1 w, b; layer 3 w, b
    for index, (param, w, g) in enumerate(zip(network.parameters(), before, grads, strict=True)):
        lr, wd = rates[index]
        torch.testing.assert_close(param.detach(), w - lr * (g + wd * w))


def test_the_schedule_scales_every_group_and_the_logged_lr_is_the_ungrouped_one():
    spec = spec_with(
        {"type": "sgd", "lr": 0.1, "groups": [{"params": ["network.layers[3]"], "lr": 0.4}]},
        schedule={"type": "linear", "end_factor": 0.5},
    )
    trainer = Trainer(spec)
    history = trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.05, 0.2])
    assert history["lr"] == pytest.approx(0.1)  # the epoch's lr as logged: the base group's


def test_ff_head_takes_its_own_lr_and_weight_decay():
    raw = {
        **MLP,
        "network": {"layers": FF_LAYERS},
        "rule": {"type": "ff", "inference": "softmax_head"},
        "optimizer": {
            "type": "sgd",
            "lr": 0.001,
            "weight_decay": 0.0003,
            "groups": [{"params": "head", "lr": 0.01, "weight_decay": 0.003}],
        },
    }
    trainer = Trainer(validate(raw))
    base, head = trainer.optimizer.param_groups
    assert head["params"] == [trainer.rule.head.weight]
    assert (head["lr"], head["weight_decay"]) == (0.01, 0.003)
    assert (base["lr"], base["weight_decay"]) == (0.001, 0.0003)
    assert not any(p is trainer.rule.head.weight for p in base["params"])


def test_a_part_the_rule_has_only_with_other_options_is_refused_at_validation():
    found = problems(
        {"type": "sgd", "groups": [{"params": "head", "lr": 0.01}]},
        network={"layers": FF_LAYERS},
        rule={"type": "ff", "inference": "goodness"},
    )
    assert found == [
        "optimizer.groups[0].params: 'head': rule 'ff' has no head with these options "
        "(head: the linear softmax head (inference: softmax_head))"
    ]


def test_group_options_are_checked_at_their_own_paths():
    found = problems(
        {
            "type": "sgd",
            "groups": [
                {"params": "network.layers[1]", "lrr": 0.01},
                {"params": "network.layers[3]", "lr": -1},
                {"lr": 0.1},
            ],
        }
    )
    assert found[0].startswith(
        "optimizer.groups[0].lrr: 'lrr' is not an option of optimizer.groups[0]; did you mean 'lr'?"
    )
    assert found[1].startswith("optimizer.groups[1].lr: -1 is invalid")
    assert found[2] == "optimizer.groups[2].params: required by optimizer.groups[2] but missing"
    assert len(found) == 3


def test_a_group_obeys_the_optimizers_checks_across_options():
    found = problems({"type": "sgd", "groups": [{"params": "network.layers[1]", "nesterov": True}]})
    assert found == [
        "optimizer.groups[0]: with this group's options: nesterov needs momentum > 0 and dampening 0"
    ]
    # momentum from the optimizer, nesterov from the group: allowed
    spec_with({"type": "sgd", "momentum": 0.9, "groups": [{"params": "network.layers[1]", "nesterov": True}]})


def test_what_a_group_names_is_checked_against_the_network_and_the_rule():
    found = problems(
        {
            "type": "adam",
            "groups": [
                {"params": "network.layers[1]", "lr": 0.01},
                {"params": ["network.layers[2]", "network.layers[7]"], "lr": 0.01},
                {"params": "network.layers[01]", "eps": 0.001},  # the same layer, written otherwise
                {"params": "head", "lr": 0.01},
                {"params": ["network.layers[3]", "network.layers[3]"]},
                {"params": "network.layers[3].weight"},
            ],
        }
    )
    with_parameters = "the layers with parameters: network.layers[1], network.layers[3]"
    assert found == [
        f"optimizer.groups[1].params: 'network.layers[2]': its layer (Tanh) has no parameters; {with_parameters}",
        f"optimizer.groups[1].params: 'network.layers[7]': the network has 4 layers; {with_parameters}",
        "optimizer.groups[2].params: 'network.layers[01]' names parameters that groups[0] already has: "
        "a parameter has one group",
        "optimizer.groups[3].params: 'head' is neither a layer with parameters (network.layers[1], "
        "network.layers[3]) nor a part of rule 'bp' (it has no parts)",
        "optimizer.groups[4].params: 'network.layers[3]' names parameters this group already names",
        "optimizer.groups[5].params: 'network.layers[3].weight': a group takes whole layers of "
        "network.layers; name network.layers[3]",
    ]


def test_a_layer_written_as_a_dotted_path_or_without_network_is_told_how_to_write_it():
    found = problems({"type": "sgd", "groups": [{"params": ["network.layers.1", "layers[3]"], "lr": 0.01}]})
    assert found == [
        "optimizer.groups[0].params: 'network.layers.1': write a layer as network.layers[1]",
        "optimizer.groups[0].params: 'layers[3]': write a layer as network.layers[3]",
    ]


def test_a_repeated_layers_path_takes_every_copy_as_the_spec_is_written():
    """network.layers[N] counts layers as written, like -s and validation's paths: [1] is the
    repeated layer (all three copies), [2] the output layer after them."""
    layers = [
        {"type": "flatten"},
        {"type": "linear", "out_features": 12, "repeat": 3},
        {"type": "linear", "out_features": 10},
    ]
    spec = spec_with(
        {
            "type": "sgd",
            "lr": 0.1,
            "groups": [{"params": "network.layers[2]", "lr": 0.3}, {"params": "network.layers[1]"}],
        },
        network={"layers": layers},
    )
    trainer = Trainer(spec)
    base, output, repeated = trainer.optimizer.param_groups
    network = trainer.rule.network  # flatten, 3 x linear 12, linear 10
    assert base["params"] == []  # every parameter is in a group; the first group stays the base one
    assert output["params"] == list(network[4].parameters()) and output["lr"] == 0.3
    assert repeated["params"] == [p for i in (1, 2, 3) for p in network[i].parameters()]
    assert trainer.fit()["lr"] == pytest.approx(0.1)  # the logged lr: optimizer.lr, not a group's
    assert problems(
        {"type": "sgd", "groups": [{"params": "network.layers[3]"}]}, network={"layers": layers}
    ) == [
        "optimizer.groups[0].params: 'network.layers[3]': the network has 3 layers; the layers with "
        "parameters: network.layers[1], network.layers[2]"
    ]


def test_a_diverging_grouped_run_names_the_groups_lr_too():
    from altlearn.errors import TrainingDiverged

    groups = [{"params": "network.layers[1]", "lr": 0.02}, {"params": "network.layers[3]", "lr": 1.0e37}]
    with pytest.raises(TrainingDiverged) as caught:
        Trainer(spec_with({"type": "sgd", "lr": 0.01, "groups": groups})).fit()
    assert "lower optimizer.lr (it is 0.01" in str(caught.value)
    assert str(caught.value).endswith("; optimizer.groups[1] sets its own lr, 1e+37: lower it as well")


def test_options_lists_the_parts_a_group_may_name():
    from click.testing import CliRunner

    from altlearn.cli.commands import main

    ff = CliRunner().invoke(main, ["options", "rule", "ff"])
    assert "parts an optimizer group may name" in ff.output
    assert "  head: the linear softmax head (inference: softmax_head)" in ff.output
    assert "parts an optimizer group" not in CliRunner().invoke(main, ["options", "rule", "bp"]).output


def test_groups_render_back_and_leave_other_sweep_keys_alone():
    text = (
        "name: x\ndata: {type: digits}\nnetwork: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\n"
        "rule: {type: bp}\noptimizer: {type: sgd, lr: 0.1, groups: [{params: 'network.layers[1]', lr: 0.2}]}\n"
    )
    spec = load_spec_text(text, source="grouped")
    assert spec.to_dict()["optimizer"]["groups"] == [{"params": ["network.layers[1]"], "lr": 0.2}]
    assert load_spec_text(spec.to_yaml(), source="again").to_dict() == spec.to_dict()
    plain = load_spec_text(
        text.replace(", groups: [{params: 'network.layers[1]', lr: 0.2}]", ""), source="plain"
    )
    assert plain.to_dict(explicit=True)["optimizer"] == {"type": "sgd", "lr": 0.1}
