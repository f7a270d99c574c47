"""Values that are the right type but the wrong size: each is a spec problem at its YAML path,
found by validation before any data loads (exit 2), never a crash or a misleading run later."""

import copy
import math

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from altlearn import api
from altlearn.cli.commands import main
from altlearn.data.datasets import Digits
from altlearn.errors import SpecError
from altlearn.spec.load import apply_overrides, validate

MLP = [
    {"type": "flatten"},
    {"type": "linear", "out_features": 32},
    {"type": "relu"},
    {"type": "linear", "out_features": 10},
]


def spec(*overrides: str) -> dict:
    raw = {"name": "t", "data": {"type": "digits"}, "network": {"layers": copy.deepcopy(MLP)}}
    raw["rule"] = {"type": "bp"}
    return apply_overrides(raw, list(overrides))


def problems(*overrides: str) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate(spec(*overrides))
    return {p.path: p.message for p in info.value.problems}


YES_NO = "true is a yes/no value, not a number"
FINITE = "Input should be a finite number"
BETAS = "each beta must be in [0, 1)"

CASES = [
    ("train.epochs=true", "train.epochs", YES_NO),
    ("network.layers.1.out_features=true", "network.layers[1].out_features", YES_NO),
    ("data.batch_size=true", "data.batch_size", YES_NO),
    ("optimizer.lr=true", "optimizer.lr", YES_NO),
    ("optimizer.lr=.inf", "optimizer.lr", FINITE),
    ("optimizer.lr=.nan", "optimizer.lr", ".nan is invalid: " + FINITE),
    ("train.clip_grad_norm=.nan", "train.clip_grad_norm", ".nan is invalid: " + FINITE),
    ("train.clip_grad_norm=true", "train.clip_grad_norm", "true is invalid: " + YES_NO),
    ("optimizer.lr=null", "optimizer.lr", "null is invalid"),
    ("train.precision=.nan", "train.precision", ".nan is invalid: Input should be 'fp32', 'tf32' or 'bf16'"),
    ("optimizer.eps=.inf", "optimizer.eps", FINITE),
    ("optimizer.weight_decay=.inf", "optimizer.weight_decay", FINITE),
    ("schedule.warmup_epochs=.inf", "schedule.warmup_epochs", FINITE),
    ("tracking.checkpoint_minutes=.nan", "tracking.checkpoint_minutes", ".nan is invalid: " + FINITE),
    ("optimizer.betas=[0.9, 1.0]", "optimizer.betas", BETAS),
    ("optimizer.betas=[-0.1, 0.9]", "optimizer.betas", BETAS),
    ("optimizer.betas=[.nan, 0.9]", "optimizer.betas", BETAS),
    ("optimizer.betas=[true, 0.9]", "optimizer.betas", "not yes/no values"),
    (f"seed={2**63}", "seed", "a seed must fit in signed 64 bits"),
    (f"seed={-(2**63) - 1}", "seed", "a seed must fit in signed 64 bits"),
    (f"rule={{type: goup, seed: {2**64}}}", "rule.seed", "a seed must fit in signed 64 bits"),
    ("seed=true", "seed", YES_NO),
    ("train.threads=100000", "train.threads", "less than or equal to 1024"),
    ("data.test_fraction=0.9999", "data.test_fraction", "leaves 0 for training and 1797 for testing"),
    ("data.test_fraction=0.0001", "data.test_fraction", "leaves 1797 for training and 0 for testing"),
    ("data.test_fraction=1.0", "data.test_fraction", "less than 1"),
    (
        "data.val_size=1438",
        "data.val_size",
        "1438 leaves no training examples: the digits training split has 1438",
    ),
    ("data.train_subset=100", "data.val_size", "leaves no training examples: data.train_subset has 100"),
    ("rule={type: fa, feedback_scale: .nan}", "rule.feedback_scale", ".nan is invalid: " + FINITE),
    ("rule={type: goup, lr: .inf}", "rule.lr", FINITE),
    ("rule={type: goup, seed: true}", "rule.seed", YES_NO),
    ("rule={type: ff, threshold: true}", "rule.threshold", YES_NO),
    ("network.layers.2={type: dropout, p: 1.0}", "network.layers[2].p", "less than 1"),
    ("tracking.tags={a/b: x}", "tracking.tags", "tag key 'a/b': use letters, digits"),
    ("tracking.tags={'..\\\\x': x}", "tracking.tags", "a key must not be a path"),
    ("tracking.tags={'..': x}", "tracking.tags", "a key must not be a path"),
    ("tracking.experiment=" + "e" * 257, "tracking.experiment", "at most 256 characters"),
    ("tracking.run_name=" + "r" * 251, "tracking.run_name", "at most 250 characters"),
    ("name=" + "n" * 251, "name", "at most 250 characters"),
    ("tracking.tags={note: " + "v" * 8001 + "}", "tracking.tags", "MLflow keeps 8000 and would cut"),
]


@pytest.mark.parametrize("override, path, message", CASES, ids=[c[0][:40] for c in CASES])
def test_a_value_that_validates_but_would_crash_or_mislead_is_a_problem_at_its_path(override, path, message):
    extra = ["data.val_size=100"] if override.startswith("data.train_subset") else []
    found = problems(override, *extra)
    assert path in found, found
    assert message in found[path]


@pytest.mark.parametrize(
    "override",
    [
        "seed=-1",
        f"seed={2**63 - 1}",
        "optimizer.betas=[0.0, 0.999]",
        "train.threads=1024",
        "tracking.experiment=" + "e" * 256,
        "tracking.tags={'run.kind: a-b_c': ok}",
        "data.test_fraction=0.0006",
        "data.val_size=1437",
        "optimizer.lr=3",  # an int where a float is wanted is still a number
    ],
)
def test_the_edges_of_each_range_are_accepted(override):
    validate(spec(override))


def test_a_layer_too_wide_to_allocate_is_refused_at_its_path_with_the_count():
    found = problems("network.layers.1.out_features=1000000000000")
    message = found["network.layers[1]"]
    assert "65,000,000,000,000 parameters" in message and "260 TB as float32" in message  # 64 in, bias
    assert "refuses networks over 1,000,000,000 parameters" in message


def test_a_layer_whose_batch_output_cannot_be_held_is_refused_naming_the_batch_size():
    conv = "network.layers.0={type: conv2d, out_channels: 40000, kernel_size: 1}"
    found = problems(conv, "network.layers.2={type: flatten}", "network.layers.1={type: relu}")
    message = found["network.layers[0]"]
    assert "outputs 2,560,000 values per example" in message
    assert "a batch of 1000 (data.eval_batch_size)" in message


def test_a_plugin_author_gets_the_same_types_from_the_api():
    class Options(api.Params):
        width: api.Count = 8
        rate: api.PositiveReal = 0.1
        keep: api.Fraction = 0.5
        betas: api.Betas = (0.9, 0.99)

    for bad in ({"width": True}, {"width": 0}, {"rate": math.inf}, {"keep": 1.0}, {"betas": (0.9, 1.0)}):
        with pytest.raises(ValidationError):
            Options(**bad)
    assert Options(width=3, rate=2, keep=0, betas=[0, 0.5]).betas == (0.0, 0.5)


def test_validate_and_run_report_them_with_exit_2_before_any_data_loads(tmp_path, monkeypatch):
    def no_loading(cls, params):
        raise AssertionError("validation must not load data")

    monkeypatch.setattr(Digits, "load", classmethod(no_loading))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "data: {type: digits}\nnetwork: {layers: [{type: flatten}, {type: linear, out_features: true}]}\n"
        "rule: {type: bp}\noptimizer: {lr: .inf, betas: [0.9, .nan]}\ntrain: {epochs: true}\n"
    )
    for command in ("validate", "run"):
        result = CliRunner().invoke(main, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
        for where in ("network.layers[1].out_features", "optimizer.lr", "optimizer.betas", "train.epochs"):
            assert where in result.output
    assert not (tmp_path / "mlflow.db").exists()  # run stopped before opening the store


def test_more_layers_than_the_bound_are_refused_before_any_is_built(monkeypatch):
    from altlearn.components import values

    monkeypatch.setattr(values, "MAX_LAYERS", 5)
    validate(spec("network.layers={}".format([{"type": "flatten"}, *[{"type": "relu"}] * 3, MLP[-1]])))
    found = problems("network.layers={}".format([{"type": "flatten"}, *[{"type": "relu"}] * 4, MLP[-1]]))
    assert found == {"network.layers": "6 layers; altlearn takes at most 5"}


@pytest.mark.parametrize(
    "override, spelled",
    [
        ("optimizer.betas=[true, 0.9]", "[true, 0.9] is invalid"),
        ("tracking.tags={a: [null, .nan]}", "[null, .nan] is invalid"),
        ("network.layers.1={type: linear, out_features: {n: false}}", "{'n': false} is invalid"),
    ],
)
def test_a_value_inside_a_list_or_mapping_is_spelled_as_yaml_in_the_problem(override, spelled):
    assert any(spelled in message for message in problems(override).values()), problems(override)
