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
    assert "source: a rule: its name, or {type: name, its options...}, default 'bp'" in goup.output
    unknown = CliRunner().invoke(main, ["options", "optimizer", "adma"])
    assert (
        unknown.exit_code == 2 and "no optimizer 'adma'; known: adam, adamw, rmsprop, sgd" in unknown.output
    )


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
