"""The small commands: --help, options, plugins' exit code."""

from __future__ import annotations

from click.testing import CliRunner

from altlearn.cli import main


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
