"""docs/reproductions.md's measured tables are made from the MLflow stores kept in results/ by
results/update.py: the doc must say what the stores hold, figure for figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "results" / "update.py"
DOC = ROOT / "docs" / "reproductions.md"


def check(doc: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "docs", "--check", "--doc", str(doc)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_kept_store_is_a_sweep_with_published_figures_and_a_block_in_the_doc():
    published = yaml.safe_load((ROOT / "results" / "published.yaml").read_text(encoding="utf-8"))
    stores = sorted(ROOT.glob("results/*.db"))
    assert stores, "results/ keeps no store: docs/reproductions.md would have nothing measured"
    text = DOC.read_text(encoding="utf-8")
    for store in stores:
        assert store.stem in published, f"{store.name}: no published figures in results/published.yaml"
        assert f"<!-- results: {store.stem} -->" in text


def test_the_docs_tables_match_the_stores_and_an_edited_figure_is_caught(tmp_path):
    result = check(DOC)
    assert result.returncode == 0, result.stdout + result.stderr
    edited = tmp_path / "reproductions.md"
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- results: ", 1)[1].split("<!-- /results -->", 1)[0]
    first_row = block.splitlines()[3]  # the name, the header, the rule, then the rows
    edited.write_text(text.replace(first_row, first_row.replace(" | ", " | 9", 2), 1), encoding="utf-8")
    result = check(edited)
    assert result.returncode == 1 and "out of date" in result.stdout
