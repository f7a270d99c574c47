"""The measured half of docs/reproductions.md, made from the MLflow stores kept in this folder.

    python results/update.py snapshot nokland2016 ~/runs/nokland/mlflow.db   # copy a live store here
    python results/update.py docs            # rewrite docs/results/<sweep>/ and the tables in the doc
    python results/update.py docs --check    # exit 1 if the doc's tables differ from the stores

Each reproduction sweep keeps its store here as ``<sweep name>.db`` (a consistent copy made with
SQLite's backup, safe while trials still write to the live one). ``published.yaml`` holds what each
paper reports. ``docs`` runs altlearn's comparison on every sweep (the table, the figures and the
HTML report go to docs/results/<sweep>/) and rewrites the text between ``<!-- results: NAME -->``
and ``<!-- /results -->`` in docs/reproductions.md: per configuration the published test error,
ours as mean +- std over the finished seeds, the difference, epochs and training minutes per trial;
and the summary table (``<!-- results: summary -->``, its rows listed in published.yaml).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "reproductions.md"
FIGURES = HERE.parent / "docs" / "results"
START, END = "<!-- results: {} -->", "<!-- /results -->"


def snapshot(name: str, live: Path) -> Path:
    """A consistent copy of a live SQLite store (trials may be writing to it)."""
    target = HERE / f"{name}.db"
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()
    return target


def sweep_report(store: Path, name: str):
    """altlearn's comparison of the newest sweep called ``name`` in ``store`` (read from a temporary
    copy: the comparison must not write into the kept store)."""
    from altlearn.compare.comparison import build_report
    from altlearn.compare.selection import open_store, select_sweep

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "mlflow.db"
        shutil.copyfile(store, copy)
        client = open_store(f"sqlite:///{copy}")
        (parent,) = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.`altlearn.kind` = 'sweep' and tags.`altlearn.sweep_name` = '{name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return build_report(select_sweep(client, parent.info.run_id), None, strict=False), parent


def results_table(report, published: dict[str, float]) -> str:
    """Published vs ours per configuration, in the order the paper's table lists them."""
    by_label = {g.label: g for g in report.groups}
    lines = [
        "| configuration | published | ours (mean ± std) | seeds | difference | epochs | train min/trial |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in list(published) + sorted(set(by_label) - set(published)):
        paper = published.get(label)
        paper_text = "—" if paper is None else f"{paper:.2f}"
        stats = by_label.get(label)
        if stats is None:
            lines.append(f"| {label} | {paper_text} | not yet run | 0 | | | |")
            continue
        error = stats.test_error
        ours = f"{100 * error.mean:.2f}" + (f" ± {100 * error.std:.2f}" if error.std is not None else "")
        difference = "" if paper is None else f"{100 * error.mean - paper:+.2f}"
        epochs = "/".join(str(e) for e in sorted(set(stats.epochs)))
        seconds = stats.seconds_per_epoch
        minutes = "" if seconds is None else f"{seconds * max(stats.epochs) / 60:.0f}"
        lines.append(f"| {label} | {paper_text} | {ours} | {stats.n} | {difference} | {epochs} | {minutes} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, table: str) -> str:
    start, end = START.format(name), END
    if start not in text:
        raise SystemExit(f"the doc has no {start} ... {end} block for sweep {name!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def summary_table(rows: list[dict], papers: dict, reports: dict) -> str:
    """One line per published set-up: the paper's figures and ours (means over the finished seeds)."""
    lines = [
        "| set-up | spec | published | ours | seeds | epochs | command |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        published = papers[row["sweep"]]["published"]
        report = reports.get(row["sweep"])
        by_label = {g.label: g for g in report.groups} if report else {}
        paper = (
            " / ".join(f"{published[c]:.2f}" for c in row["configurations"] if c in published)
            or "none published"
        )
        measured = [by_label.get(c) for c in row["configurations"]]
        if any(measured):
            ours = " / ".join(f"{100 * g.test_error.mean:.2f}" if g else "–" for g in measured)
            counts = sorted({g.n if g else 0 for g in measured})
            seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        else:
            ours, seeds = "not yet measured" + (f" ({row['note']})" if row.get("note") else ""), "0"
        command = f"`altlearn sweep specs/sweeps/{row['file']}.yaml`"
        lines.append(
            f"| {row['setup']} | `{row['spec']}` | {paper} | {ours} | {seeds} | {row['epochs']} | {command} |"
        )
    return "\n".join(lines)


def update_docs(check: bool, doc: Path = DOC) -> int:
    from altlearn.compare.outputs import write_outputs

    papers = yaml.safe_load((HERE / "published.yaml").read_text(encoding="utf-8"))
    rows = papers.pop("summary")
    text = doc.read_text(encoding="utf-8")
    new, reports = text, {}
    for name, entry in papers.items():
        store = HERE / f"{name}.db"
        if not store.exists():
            continue
        report, parent = sweep_report(store, name)
        reports[name] = report
        new = replace_block(new, name, results_table(report, entry["published"]))
        if not check:
            write_outputs(report, FIGURES / name)
            print(f"{name}: {len(report.groups)} configurations, sweep run {parent.info.run_id}")
    new = replace_block(new, "summary", summary_table(rows, papers, reports))
    if check:
        if new != text:
            print(f"{doc} is out of date with the stores in {HERE}: run python results/update.py docs")
            return 1
        return 0
    doc.write_text(new, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("snapshot", help="copy a live sweep store here as NAME.db")
    copy.add_argument("name")
    copy.add_argument("live", type=Path)
    docs = commands.add_parser("docs", help="rewrite docs/results/ and the doc's tables")
    docs.add_argument("--check", action="store_true", help="only say whether the doc is up to date")
    docs.add_argument(
        "--doc", type=Path, default=DOC, help="the page to check or rewrite [default: %(default)s]"
    )
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        print(snapshot(args.name, args.live))
        return 0
    return update_docs(args.check, args.doc)


if __name__ == "__main__":
    sys.exit(main())
