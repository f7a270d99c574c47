"""``extends:``: a sweep file that adds its cases to another's (a leaderboard board's) protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.compare.search_file import parse_plan
from altlearn.errors import SweepError
from altlearn.sweep.sweep_file import read_sweep

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "specs" / "leaderboard" / "mnist_mlp_board.yaml"
SPACE = {"optimizer.lr": {"log_uniform": [1.0e-4, 1.0e-2]}}


def write(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.fixture
def board(tmp_path):
    """A board in its own folder: a relative base, a set, a search and finals."""
    write(
        tmp_path / "boards" / "base.yaml", {"name": "b", "data": {"type": "digits"}, "rule": {"type": "bp"}}
    )
    return write(
        tmp_path / "boards" / "board.yaml",
        {
            "name": "board",
            "base": "base.yaml",
            "set": {"train.epochs": 2, "train.threads": 1},
            "cases": [{"label": "bp", "rule.type": "bp", "search": {"space": SPACE}}],
            "search": {"trials": 3, "objective": "val_accuracy", "seed": 0},
            "final": {"seeds": 2},
        },
    )


def test_a_file_that_extends_a_board_adds_its_cases_under_the_boards_protocol(tmp_path, board):
    mine = write(
        tmp_path / "mine" / "my_board.yaml",
        {
            "extends": "../boards/board.yaml",
            "name": "my-board",
            "set": {"train.epochs": 3},
            "cases": [{"label": "fa", "rule.type": "fa", "search": {"space": SPACE}}],
        },
    )
    sweep, problems = read_sweep(mine)
    assert problems == []
    assert sweep.name == "my-board"
    assert [case.label for case in sweep.cases] == ["bp", "fa"]  # the board's first
    assert sweep.base.path == (tmp_path / "boards" / "base.yaml").resolve()  # relative to the board
    assert sweep.set == {"train.epochs": 3, "train.threads": 1}  # merged, mine winning
    assert sweep.search.trials == 3 and sweep.final.seeds == 2  # the board's protocol
    # the recorded text is the merged file: compare reads the search from it
    plan = parse_plan(sweep.text)
    assert plan.trials == 3 and [c.label for c in plan.cases] == ["bp", "fa"]


def test_a_missing_or_circular_extends_is_a_mistake_at_its_key(tmp_path, board):
    missing = write(tmp_path / "missing.yaml", {"extends": "nowhere.yaml", "name": "m"})
    with pytest.raises(SweepError) as error:
        read_sweep(missing)
    assert "extends" in str(error.value) and "nowhere.yaml" in str(error.value)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write(a, {"extends": "b.yaml", "name": "a"})
    write(b, {"extends": "a.yaml", "name": "b"})
    with pytest.raises(SweepError) as error:
        read_sweep(a)
    assert "extends itself" in str(error.value)
    wrong = write(tmp_path / "wrong.yaml", {"extends": 3, "name": "w"})
    with pytest.raises(SweepError) as error:
        read_sweep(wrong)
    assert "the path of a sweep file to extend" in str(error.value)


def test_the_shipped_board_extended_by_a_plugin_rule_lists_its_trials(tmp_path):
    mine = write(
        tmp_path / "my_board.yaml",
        {
            "extends": str(BOARD),
            "name": "my-mnist-board",
            "cases": [{"label": "myrule", "rule.type": "fa", "search": {"space": SPACE}}],
        },
    )
    result = CliRunner().invoke(main, ["sweep", str(mine), "--dry-run", "--case", "myrule"])
    assert result.exit_code == 0, result.output
    assert "myrule" in result.output and "fwdgrad" not in result.output
