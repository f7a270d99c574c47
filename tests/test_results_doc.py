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
    stores = sorted(s for s in ROOT.glob("results/*.db") if not s.name.startswith("leaderboard-"))
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


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_a_kept_store_restores_to_a_working_folder_with_its_artifacts_there_and_keeps_again(tmp_path):
    import sqlite3

    name = sorted(ROOT.glob("results/*.db"))[0].stem
    work = tmp_path / "work"
    restored = run_script("restore", name, str(work))
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(work / "mlflow.db") as db:
        locations = {row[0] for row in db.execute("SELECT artifact_location FROM experiments")}
        uris = {row[0] for row in db.execute("SELECT artifact_uri FROM runs")}
    here = (work.resolve() / "mlartifacts").as_uri()
    assert here in locations and uris and all(u.startswith(here + "/") for u in uris)

    again = run_script("restore", name, str(work))  # never over a store that is there
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    wrong = run_script("snapshot", "not-this-sweep", f"sqlite:///{work / 'mlflow.db'}")
    assert wrong.returncode == 2 and "not sweep 'not-this-sweep'" in wrong.stderr
    missing = run_script("snapshot", name, str(tmp_path / "none.db"))
    assert missing.returncode == 2 and "there is no SQLite store" in missing.stderr
    sys.path.insert(0, str(ROOT / "results"))
    try:
        from stores import snapshot, sweep_names
    finally:
        sys.path.remove(str(ROOT / "results"))
    kept = snapshot(name, work / "mlflow.db", tmp_path)
    assert kept == tmp_path / f"{name}.db" and name in sweep_names(kept)


def test_a_report_that_differs_only_in_its_generation_time_is_kept_as_it_was(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "results"))
    import update

    page = '<p class="meta">the 2 trials; generated {} UTC by altlearn</p><td>{}</td>'
    (tmp_path / "report.html").write_text(page.format("2026-12-01 19:57", "1.58"), encoding="utf-8")

    def writer(value):
        def write(report, folder):
            (folder / "report.html").write_text(page.format("2026-12-01 20:18", value), encoding="utf-8")

        return write

    update.write_figures(None, tmp_path, writer("1.58"))
    assert "19:57" in (tmp_path / "report.html").read_text(encoding="utf-8")  # git stays clean
    update.write_figures(None, tmp_path, writer("1.49"))
    assert "20:18 UTC by altlearn</p><td>1.49" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_sweep_that_held_out_a_validation_set_shows_its_val_error(monkeypatch):
    from types import SimpleNamespace as NS

    monkeypatch.syspath_prepend(str(ROOT / "results"))
    import update

    def group(label, test, val=None):
        curves = {"test_accuracy": [(1, 0.9), (2, test)]}
        if val is not None:
            curves["val_accuracy"] = [(1, 0.9), (2, val)]
        run = NS(curves=curves, tags={"torch.cpu_capability": "AVX2"})
        error = NS(mean=1 - test, std=None)
        return NS(
            label=label, group=NS(runs=[run]), test_error=error, n=1, epochs=[2], seconds_per_epoch=60.0
        )

    report = NS(
        groups=[group("fa lr 0.003", 0.9816, 0.9790), group("fa lr 0.005", 0.9830, 0.9805)], excluded=[]
    )
    table = update.results_table(report, {"fa lr 0.003": 1.70, "fa lr 0.005": 1.70}, "tuning")
    rows = table.splitlines()
    assert rows[0].startswith("| configuration | published | ours (mean ± std) | val error | seeds |")
    assert rows[2] == "| fa lr 0.003 | 1.70 | 1.84 | 2.10 | 1 | +0.14 | 1.84 | 2 | 2 | AVX2 |"
    assert rows[3] == "| fa lr 0.005 | 1.70 | 1.70 | 1.95 | 1 | +0.00 | 1.70 | 2 | 2 | AVX2 |"
    plain = update.results_table(NS(groups=[group("bp", 0.99)], excluded=[]), {"bp": 0.91}, "plain")
    assert "val error" not in plain  # the tables of sweeps without a validation set stay as they are


def test_the_summary_gives_each_set_ups_target_and_a_dash_where_none_is_set(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "results"))
    import update

    papers = {"sweep": {"published": {"bp": 1.59, "fa": 1.68}}}
    row = {"setup": "BP", "spec": "s", "sweep": "sweep", "file": "f", "epochs": 100, "configurations": ["bp"]}
    rows = [{**row, "target": "<= 1.7"}, {**row, "setup": "FA", "configurations": ["fa"]}]
    lines = update.summary_table(rows, papers, {"sweep": None}).splitlines()
    assert lines[0] == "| set-up | spec | published | ours | target | seeds | epochs | command |"
    assert lines[2].startswith("| BP | `s` | 1.59 | not yet measured | <= 1.7 | 0 | 100 |")
    assert lines[3].startswith("| FA | `s` | 1.68 | not yet measured | — | 0 | 100 |")


def test_the_cpu_kernels_column_names_every_machine_kind_a_configurations_seeds_ran_on(monkeypatch):
    from types import SimpleNamespace as NS

    monkeypatch.syspath_prepend(str(ROOT / "results"))
    import update

    def stats(*kinds):
        runs = [NS(tags={} if kind is None else {"torch.cpu_capability": kind}) for kind in kinds]
        return NS(group=NS(runs=runs))

    assert update.cpu_kernels(stats("AVX512", "AVX2", "AVX512")) == "AVX2 + AVX512"  # seeds that part
    assert update.cpu_kernels(stats("AVX512 then AVX2", "AVX512")) == "AVX2 + AVX512"  # one resumed
    assert update.cpu_kernels(stats("AVX2", None)) == "AVX2 (1 unrecorded)"  # one from before the tag
    assert update.cpu_kernels(stats(None)) == "—"
