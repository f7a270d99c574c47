"""Hostile spec files and overrides, generated here: each is refused at once with exit 2 and a
message naming the bound it hit, never a hang or a traceback. Subprocess timeouts below only guard
the test suite against a regression that hangs; they are not timing assertions."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.errors import SpecError
from altlearn.spec import files as spec_files
from altlearn.spec.files import parse_yaml
from altlearn.spec.load import load_spec

ALTLEARN = Path(sys.executable).parent / "altlearn"
VALID = "name: ok\ndata: {type: digits}\nnetwork: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\nrule: {type: bp}\n"


def alias_bomb(levels: int = 9, fan: int = 10) -> str:
    """'Billion laughs': each anchor lists the previous one `fan` times: fan**levels values."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def altlearn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    # A guard only: without the bounds these would run for minutes or forever.
    return subprocess.run([str(ALTLEARN), *args], capture_output=True, text=True, timeout=60, env=env)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    refused(altlearn("validate", str(fifo)), "is a FIFO (named pipe), not a regular file")


def test_an_endless_device_is_refused_without_reading_it():
    refused(altlearn("validate", "/dev/zero"), "/dev/zero is a character device, not a regular file")


def test_a_folder_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder, not a regular file" in result.output


def test_an_alias_bomb_in_a_spec_file_is_refused_naming_the_bound(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(VALID + alias_bomb())
    refused(altlearn("validate", str(path)), "refused:", "bound: alias expansion")


def test_an_alias_bomb_in_an_override_is_refused_naming_the_bound(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    # One line: [&a0 [lol, ...], &a1 [*a0, ...], ...], 10**7 values
    items = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    result = altlearn("validate", str(path), "-s", f"description=[{', '.join(items)}]")
    refused(result, "--set description=", "bound: alias expansion")


def test_a_spec_file_over_the_size_bound_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as f:
        f.write(VALID + "description: x\n")
        f.truncate(50_000_000)  # a sparse 50 MB file: nothing of it is written to disk
    refused(altlearn("validate", str(path)), "is larger than 250,000 bytes (bound: spec file size)")


def test_a_long_layers_list_just_over_the_size_bound_is_refused(tmp_path):
    path = tmp_path / "long.yaml"
    layer = "  - {type: linear, out_features: 10}\n"
    path.write_text(
        VALID.replace("network: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\n", "")
    )
    with open(path, "a") as f:
        f.write("network:\n layers:\n" + layer * (spec_files.MAX_SPEC_BYTES // len(layer) + 1))
    with pytest.raises(SpecError, match=r"bound: spec file size"):
        load_spec(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: " + "[" * 100_000 + "]" * 100_000, "nested more than 50 levels deep (bound: nesting depth)"),
        ("\n".join(["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 80)]), "aliases nest"),
        ("a: &a [*a]", "a value contains itself through an alias"),
    ],
    ids=["deep-brackets", "alias-chain", "self-alias"],
)
def test_nesting_past_the_depth_bound_is_refused(tmp_path, text, message):
    path = tmp_path / "deep.yaml"
    path.write_text(text + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in info.value.report()


def test_a_number_python_cannot_parse_is_a_spec_problem_not_a_crash(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text(VALID + "seed: " + "9" * 10_000 + "\n")
    with pytest.raises(SpecError, match="an integer of 10000 digits is not a usable number"):
        load_spec(path)


def test_the_bounds_are_edges_not_approximations(monkeypatch):
    monkeypatch.setattr(spec_files, "MAX_YAML_VALUES", 10)
    monkeypatch.setattr(spec_files, "MAX_YAML_DEPTH", 4)
    assert parse_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9]") == list(range(1, 10))  # 10 values with the list
    with pytest.raises(spec_files.YamlTooLarge, match="more than 10 values"):
        parse_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]")
    assert parse_yaml("[[[1]]]") == [[[1]]]  # 4 levels
    with pytest.raises(spec_files.YamlTooLarge, match="more than 4 levels"):
        parse_yaml("[[[[1]]]]")


def test_anchors_and_merge_keys_of_ordinary_specs_still_work(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "name: a\ndata: {type: digits}\n"
        "network: {layers: [{type: flatten}, &h {type: linear, out_features: 16}, {<<: *h, out_features: 10}]}\n"
        "rule: {type: bp}\n"
    )
    spec = load_spec(path)
    assert [b.params.out_features for b in spec.layers[1:]] == [16, 10]


def test_a_logged_spec_text_is_read_within_the_same_bounds():
    from altlearn.spec.load import load_spec_text

    with pytest.raises(SpecError, match="bound: alias expansion"):
        load_spec_text(VALID + alias_bomb(), source="the spec logged in run abc")
