"""Every spec in specs/papers/ validates, and so does every command its header tells a user to run.

These files reproduce published set-ups (docs/reproductions.md); the long runs themselves are not
tests. What can break silently is the file: an option renamed in a rule, a layer whose shapes no
longer fit, or a documented `-s` override (the rule variants of a set-up) that stopped validating.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from altlearn.cli.commands import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from paper_epoch_times import PAPERS, header_commands  # noqa: E402

SPECS = sorted(PAPERS.glob("*.yaml"))


def test_the_suite_covers_every_published_set_up():
    names = {spec.stem for spec in SPECS}
    assert {
        "nokland2016_mnist_1x800",
        "nokland2016_mnist_2x800",
        "nokland2016_mnist_3x800",
        "nokland2016_mnist_2x800_dropout_dfa",
        "hinton2022_ff_mnist_4x2000",
        "loewex_ff_mnist_3x1000",
        "sanfiz2021_lenet_mnist",
        "sanfiz2021_lenet_fashion_mnist",
        "goup_mnist_mlp",
        "goup_lenet_mnist",
    } <= names


@pytest.mark.parametrize("spec", SPECS, ids=[spec.stem for spec in SPECS])
def test_spec_opens_with_the_command_that_runs_it(spec):
    commands = header_commands(spec)
    assert commands, f"{spec.name} does not open with an `altlearn run` comment"
    assert commands[0] == [f"specs/papers/{spec.name}"]


@pytest.mark.parametrize("spec", SPECS, ids=[spec.stem for spec in SPECS])
def test_spec_and_its_documented_variants_validate(spec, monkeypatch):
    monkeypatch.chdir(PAPERS.parent.parent)  # the header's paths are relative to the repository
    for command in header_commands(spec):
        result = CliRunner().invoke(main, ["validate", *command])
        assert result.exit_code == 0, f"altlearn validate {shlex.join(command)}:\n{result.output}"
        assert "ok:" in result.output


def test_header_commands_drop_notes_and_keep_quoted_overrides(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "# altlearn run specs/papers/s.yaml            (BP)\n"
        '# altlearn run specs/papers/s.yaml -s "rule={type: fa}" -s optimizer.lr=0.01\n'
        "#   (a note, not a command)\n"
        "name: s\n"
        "# altlearn run after the header is not read\n"
    )
    assert header_commands(spec) == [
        ["specs/papers/s.yaml"],
        ["specs/papers/s.yaml", "-s", "rule={type: fa}", "-s", "optimizer.lr=0.01"],
    ]
