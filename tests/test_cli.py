"""The small commands: --help, options, plugins' exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from altlearn.cli.commands import main


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "validate", "render", "plugins", "options"):
        assert command in result.output


def test_options_shows_types_defaults_bounds_and_descriptions():
    result = CliRunner().invoke(main, ["options", "layer", "conv2d"])
    assert result.exit_code == 0, result.output
    assert "out_channels: int > 0, required" in result.output
    assert "kernel_size: int > 0, default 3" in result.output
    result = CliRunner().invoke(main, ["options", "schedule", "linear"])
    assert "start_fraction: float >= 0.0 < 1.0, default 0.0" in result.output
    assert "cool-down" in result.output  # the description


def test_options_of_an_unknown_component_is_a_user_error():
    result = CliRunner().invoke(main, ["options", "rule", "nope"])
    assert result.exit_code == 2
    assert "no rule 'nope'; known: " in result.output and "bp" in result.output


def test_plugins_lists_builtins_and_exits_0():
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0
    assert "bp" in result.output and "mnist" in result.output and "conv2d" in result.output
    # optimizers, schedules and losses are components too, each under its own title
    lines = result.output.splitlines()
    for title, name in (("optimizers", "adam"), ("schedules", "constant"), ("losses", "bce")):
        below = lines[lines.index(title) + 1 :]
        assert below[0].split()[:2] == [name, "altlearn"]


def test_options_of_optimizers_losses_and_nested_blocks():
    adam = CliRunner().invoke(main, ["options", "optimizer", "adam"])
    assert adam.exit_code == 0, adam.output
    assert adam.output.startswith("optimizer adam (from altlearn ")
    assert "lr: float > 0, default 0.001" in adam.output
    loss = CliRunner().invoke(main, ["options", "loss", "cross_entropy"])
    assert "label_smoothing: float >= 0.0 < 1.0, default 0.0" in loss.output
    goup = CliRunner().invoke(main, ["options", "rule", "goup"])
    assert "source: a rule: its name, or {type: name, its options...}, default bp" in goup.output
    unknown = CliRunner().invoke(main, ["options", "optimizer", "adma"])
    assert (
        unknown.exit_code == 2 and "no optimizer 'adma'; known: adam, adamw, rmsprop, sgd" in unknown.output
    )


def test_options_write_defaults_as_yaml_does():
    dfa = CliRunner().invoke(main, ["options", "rule", "dfa"])
    assert "feedback_seed: int >= 0 or null, default null" in dfa.output
    assert "feedback_init: one of uniform, gaussian, like_forward, xavier, default uniform" in dfa.output
    conv = CliRunner().invoke(main, ["options", "layer", "conv2d"])
    assert "bias: bool, default true" in conv.output
    adam = CliRunner().invoke(main, ["options", "optimizer", "adam"])
    assert "betas: tuple[float, float], default [0.9, 0.999]" in adam.output
    assert "default None" not in dfa.output + conv.output + adam.output
    assert "default True" not in conv.output and "default 'uniform'" not in dfa.output


def test_yaml_text_quotes_only_strings_yaml_would_read_otherwise():
    from altlearn.spec.options_text import yaml_text

    assert [yaml_text(v) for v in (None, True, False, 0.5, "bp", {}, {"type": "bp"})] == [
        "null",
        "true",
        "false",
        "0.5",
        "bp",
        "{}",
        "{type: bp}",
    ]
    # YAML reads off as false, 1 as a number and an empty value as null: they keep their quotes
    assert [yaml_text(v) for v in ("off", "1", "", "null", "it's")] == [
        "'off'",
        "'1'",
        "''",
        "'null'",
        "it's",
    ]


def test_plugins_columns_line_up_whatever_the_longest_name():
    result = CliRunner().invoke(main, ["plugins"])
    rows = [re.match(r"  (\S+) +(\S+ \S+)  +(.*)$", line) for line in result.output.splitlines()]
    rows = [row for row in rows if row]
    assert any(row[1] == "adaptive_avgpool2d" for row in rows)  # the longest built-in name
    assert len({row.start(2) for row in rows}) == 1, result.output
    assert len({row.start(3) for row in rows}) == 1, result.output


def _imported_by(*arguments: str) -> tuple[str, set[str]]:
    """Run ``altlearn ARGUMENTS`` in a fresh interpreter: its output and every module it imported."""
    script = Path(sys.executable).with_name("altlearn")
    command = [str(script)] if script.is_file() else ["-m", "altlearn.cli.commands"]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert "altlearn.registry.registry" in imported  # the import log was read correctly
    return result.stdout, imported


def _top_level(imported: set[str], *names: str) -> list[str]:
    return sorted({m.split(".")[0] for m in imported} & set(names))


@pytest.mark.parametrize(
    ("kind", "name"), [("optimizer", "adam"), ("schedule", "cosine"), ("network", "resnet20")]
)
def test_options_of_a_component_without_torch_imports_neither_torch_nor_mlflow(kind, name):
    output, imported = _imported_by("options", kind, name)
    assert output.startswith(f"{kind} {name} (from altlearn ")
    assert _top_level(imported, "torch", "mlflow") == []


def test_options_of_a_rule_imports_the_rule_and_nothing_a_run_needs():
    """A built-in rule's module imports torch at its top (its Params sit beside its torch code), so
    torch comes with it; but no tracking, no spec loading, no training."""
    output, imported = _imported_by("options", "rule", "dfa")
    assert output.startswith("rule dfa (from altlearn ")
    assert _top_level(imported, "mlflow", "pandas", "matplotlib", "sklearn") == []
    assert not {"altlearn.spec.load", "altlearn.training", "altlearn.tracking", "altlearn.runs"} & imported


def test_the_mlflow_ui_hint_names_this_environments_mlflow_when_the_shell_would_not(tmp_path, monkeypatch):
    from altlearn.tracking.store import ui_command

    venv_bin, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    for folder in (venv_bin, elsewhere):
        folder.mkdir(parents=True)
        (folder / "mlflow").write_text("#!/bin/sh\n")
        (folder / "mlflow").chmod(0o755)
    monkeypatch.setattr("sys.executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(venv_bin))  # the venv is active: the plain name finds it
    assert ui_command("sqlite:///mlflow.db") == "mlflow ui --backend-store-uri sqlite:///mlflow.db"
    for path in ("", str(elsewhere)):  # not active: none, or another installation's, on the PATH
        monkeypatch.setenv("PATH", path)
        assert (
            ui_command("sqlite:///a b.db")
            == f"{venv_bin / 'mlflow'} ui --backend-store-uri 'sqlite:///a b.db'"
        )
