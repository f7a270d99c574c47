"""docs/leaderboard.md, its figures and the README's headline table are made from the leaderboard
stores in results/ by results/leaderboard.py: they must say what the stores hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "results" / "leaderboard.py"
sys.path.insert(0, str(ROOT / "results"))

from leaderboard_rows import Row, _versus_baseline, seconds_to_reach  # noqa: E402
from leaderboard_text import progress  # noqa: E402

from altlearn.compare.grouping import Group  # noqa: E402
from altlearn.compare.selection import RunData  # noqa: E402
from altlearn.compare.stats import summarize  # noqa: E402


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "docs", "--check", *args], capture_output=True, text=True, timeout=300
    )


def test_the_page_the_figures_and_the_readme_match_the_stores_and_an_edit_is_caught(tmp_path):
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    page = (ROOT / "docs" / "leaderboard.md").read_text(encoding="utf-8")
    row = next(line for line in page.splitlines() if line.startswith("| ") and "| bp |" in line)
    edited = tmp_path / "leaderboard.md"
    edited.write_text(page.replace(row, row.replace("| bp |", "| bp (edited) |")), encoding="utf-8")
    result = check("--page", str(edited))
    assert result.returncode == 1 and "out of date" in result.stdout


def run(seed: str, accuracies: list[float], cpu: list[float] | None = None) -> RunData:
    epochs = range(1, len(accuracies) + 1)
    curves = {"test_accuracy": list(zip(epochs, accuracies))}
    if cpu is not None:
        curves["epoch_cpu_seconds"] = list(zip(epochs, cpu))
    return RunData(f"r{seed}", f"r{seed}", "FINISHED", {"seed": seed}, {}, curves)


def test_cpu_seconds_to_reach_count_every_epoch_up_to_the_first_that_reached_the_mark():
    assert seconds_to_reach(run("1", [0.90, 0.971, 0.965, 0.98], [2.0, 3.0, 4.0, 5.0]), 0.97) == 5.0
    assert seconds_to_reach(run("1", [0.90, 0.95], [2.0, 3.0]), 0.97) is None  # never reached
    assert seconds_to_reach(run("1", [0.90, 0.99]), 0.97) is None  # no CPU time logged


def stats_of(label: str, accuracies: list[float]):
    runs = [run(str(seed), [accuracy]) for seed, accuracy in enumerate(accuracies, start=1)]
    return summarize(Group((("case", label),), runs, label))


def row(label: str, accuracies: list[float] | None) -> Row:
    measured = Row(label, "f", {"complete": 16}, 5, 5, 16)
    measured.stats = stats_of(label, accuracies) if accuracies else None
    return measured


def test_every_row_is_tested_against_bp_paired_by_seed_with_holms_correction():
    bp = row("bp", [0.980, 0.982, 0.979, 0.981, 0.983])
    close = row("fa", [0.979, 0.981, 0.979, 0.980, 0.982])
    far = row("ff", [0.950, 0.951, 0.949, 0.952, 0.950])
    waiting = row("ep", None)
    _versus_baseline([bp, close, far, waiting])
    assert bp.versus_bp is None and waiting.versus_bp is None
    assert far.versus_bp.pairs == 5 and far.versus_bp.test == "paired t"
    assert far.versus_bp.difference == pytest.approx(-0.0306)  # ff minus bp, per seed
    assert far.versus_bp.p_adjusted == pytest.approx(min(1.0, 2 * far.versus_bp.p_value))  # the smallest of 2
    assert close.versus_bp.p_adjusted == pytest.approx(max(close.versus_bp.p_value, far.versus_bp.p_adjusted))


def test_an_unfinished_row_says_how_far_its_search_and_finals_are():
    searching = Row("pc", "energy-based", {"complete": 4, "pruned": 3, "running": 1}, 0, 5, 16)
    assert progress(searching) == "search 7/16 (3 pruned), 1 running"
    finals = Row("pc", "energy-based", {"complete": 9, "pruned": 7}, 2, 5, 16)
    assert progress(finals) == "search 16/16 (7 pruned), finals 2/5"
    assert progress(Row("ep", "energy-based", {}, 0, 5, 16)) == "not started"


def test_a_rows_cpu_time_sums_every_epoch_of_its_search_and_finals_as_the_store_holds_them():
    import sqlite3

    from leaderboard import load_boards, read_board, store_of

    boards, families = load_boards()
    board = boards["mnist-mlp"]
    rows = {row.label: row for row in read_board(board, families)}
    with sqlite3.connect(f"file:{store_of(board.name)}?mode=ro", uri=True) as db:
        found = db.execute(
            """SELECT ph.value, m.run_uuid, m.step, m.value, m.timestamp FROM metrics m
               JOIN tags c ON c.run_uuid = m.run_uuid AND c.key = 'altlearn.case_label' AND c.value = 'bp'
               JOIN tags ph ON ph.run_uuid = m.run_uuid AND ph.key = 'altlearn.phase'
               JOIN tags parent ON parent.run_uuid = m.run_uuid AND parent.key = 'mlflow.parentRunId'
               WHERE m.key = 'epoch_cpu_seconds' AND parent.value = (
                 SELECT r.run_uuid FROM runs r JOIN tags s ON s.run_uuid = r.run_uuid
                 WHERE s.key = 'altlearn.sweep_name' AND s.value = ? ORDER BY r.start_time DESC LIMIT 1)
               AND m.run_uuid NOT IN (SELECT run_uuid FROM tags WHERE key = 'altlearn.superseded')""",
            (board.sweep,),
        ).fetchall()
    latest: dict[tuple[str, int], tuple[int, str, float]] = {}
    for phase, run_id, step, value, stamp in found:  # a step logged twice (a resume): its latest
        if (run_id, step) not in latest or stamp >= latest[run_id, step][0]:
            latest[run_id, step] = (stamp, phase, value)
    expected = {"search": 0.0, "final": 0.0}
    for _, phase, value in latest.values():
        expected[phase] += value
    assert expected["search"] > 0 and expected["final"] > 0
    assert rows["bp"].spent == pytest.approx(expected)
