"""The measured half of docs/reproductions.md, made from the MLflow stores kept in this folder.

    python results/update.py snapshot nokland2016 /work/runs/nokland/mlflow.db   # keep a live store
    python results/update.py restore nokland2016 ~/runs/nokland   # a working copy, to continue it
    python results/update.py docs            # rewrite docs/results/<sweep>/ and the doc's tables
    python results/update.py docs --check    # exit 1 if the doc's tables differ from the stores

Each reproduction sweep keeps its store here as ``<sweep name>.db``. ``published.yaml`` holds what
each paper reports and the rows of the doc's summary table. ``docs`` runs altlearn's comparison on
every kept sweep (its table, figures and HTML report go to docs/results/<sweep>/, never into the
store) and rewrites the text between ``<!-- results: NAME -->`` and ``<!-- /results -->`` in
docs/reproductions.md: per configuration the published test error, ours as mean +- std over the
finished seeds, the difference, epochs and training minutes per trial; and the summary table.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from stores import StoreError, latest_sweep, restore_kept, snapshot, store_commands
from stores import replace_block as replace_stores_block

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "reproductions.md"
FIGURES = HERE.parent / "docs" / "results"
START, END = "<!-- results: {} -->", "<!-- /results -->"


def sweep_report(store: Path, name: str):
    """altlearn's comparison of the newest sweep called ``name`` in ``store``, read from a temporary
    copy (so the kept store is never written to), and the sweep's parent run."""
    from altlearn.compare.comparison import build_report
    from altlearn.compare.selection import open_store, select_sweep

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "mlflow.db"
        shutil.copyfile(store, copy)
        client = open_store(f"sqlite:///{copy}")
        parent = latest_sweep(client, name)
        if parent is None:
            raise StoreError(f"{store} holds no sweep named {name!r}: keep it with the snapshot command")
        return build_report(select_sweep(client, parent.info.run_id), None, strict=False), parent


def unfinished(report) -> dict[str, str]:
    """Configuration label -> what its trial is doing, for trials that have not finished: running
    (epoch k of N), stopped (a kept store has no checkpoints: the sweep runs it again), or failed
    with the first words of its error."""
    out = {}
    for excluded in report.excluded if report else []:
        run = excluded.run
        if "altlearn.superseded" in run.tags:  # replaced by a later run of the same trial
            continue
        curve = run.curves.get("test_accuracy") or [(0, None)]
        at = f"epoch {curve[-1][0]} of {run.params.get('train.epochs', '?')}"
        if run.status == "RUNNING":
            state = f"running ({at})"
        elif run.status == "FAILED":
            error = (run.tags.get("altlearn.error") or "no error recorded").splitlines()[0]
            state = f"FAILED at {at}: {error.split(';')[0][:100]}"  # the error's first clause
        else:
            # a kept store is the database alone: its checkpoints stayed with the live store
            state = f"{run.status} at {at}; kept without its checkpoint, so the sweep runs it again"
        out.setdefault(run.tags.get("altlearn.group", run.name), state)
    return out


def results_table(report, published: dict[str, float], name: str) -> str:
    """Published vs ours per configuration, in the order the paper's table lists them, then the
    links to the comparison's report and figures (when the sweep has run)."""
    by_label = {g.label: g for g in report.groups} if report else {}
    training = unfinished(report)
    # a sweep that held out a validation set (one that chooses an lr) shows what it chose by
    with_val = any(val_error(g) is not None for g in by_label.values())
    val_head, val_rule, val_gap = (" val error |", " --- |", " |") if with_val else ("", "", "")
    lines = [
        f"| configuration | published | ours (mean ± std) |{val_head} seeds | difference | best epoch | epochs | train min/trial | CPU kernels |",
        f"| --- | --- | --- |{val_rule} --- | --- | --- | --- | --- | --- |",
    ]
    for label in list(published) + sorted(set(by_label) - set(published)):
        paper = published.get(label)
        paper_text = "—" if paper is None else f"{paper:.2f}"
        stats = by_label.get(label)
        if stats is None:
            lines.append(
                f"| {label} | {paper_text} | {training.get(label, 'not yet run')} |{val_gap} 0 | | | | | |"
            )
            continue
        error = stats.test_error
        ours = f"{100 * error.mean:.2f}" + (f" ± {100 * error.std:.2f}" if error.std is not None else "")
        difference = "" if paper is None else f"{100 * error.mean - paper:+.2f}"
        epochs = "/".join(str(e) for e in sorted(set(stats.epochs)))
        seconds = stats.seconds_per_epoch
        minutes = "" if seconds is None else f"{seconds * max(stats.epochs) / 60:.0f}"
        best = f"{best_epoch_error(stats):.2f}"
        val = "" if not with_val else f" {'–' if val_error(stats) is None else f'{val_error(stats):.2f}'} |"
        lines.append(
            f"| {label} | {paper_text} | {ours} |{val} {stats.n} | {difference} | {best} | {epochs} | {minutes} "
            f"| {cpu_kernels(stats)} |"
        )
    if by_label:
        lines += [
            "",
            f"[the comparison's report](results/{name}/report.html) · "
            f"![{name}: final test error per configuration](results/{name}/test_error.png) "
            f"![{name}: test accuracy per epoch](results/{name}/learning_curves.png)",
        ]
    return "\n".join(lines)


def val_error(stats) -> float | None:
    """The mean over seeds of each run's validation error after its last epoch, in %; None when
    the runs held out no validation set (data.val_size 0)."""
    curves = [run.curves.get("val_accuracy") for run in stats.group.runs]
    if not all(curves):
        return None
    return 100 * sum(1 - curve[-1][1] for curve in curves) / len(curves)


def cpu_kernels(stats) -> str:
    """The CPU kernels torch ran the seeds with (AVX512, AVX2, ...; a run's torch.cpu_capability):
    they round differently, so two machines' runs of one seed part after some epochs, and a
    configuration's minutes per trial are those machines'. A run resumed on another machine counts
    both ("AVX512 then AVX2"); runs from before the tag are counted as not recorded."""
    from altlearn.tracking.tags import CPU_KERNELS_TAG

    tags = [run.tags.get(CPU_KERNELS_TAG) for run in stats.group.runs]
    kinds = " + ".join(sorted({kind for tag in tags if tag for kind in tag.split(" then ")}))
    unrecorded = tags.count(None)
    if not unrecorded:
        return kinds
    return f"{kinds} ({unrecorded} unrecorded)" if kinds else "—"


def best_epoch_error(stats) -> float:
    """The mean over seeds of each run's lowest test error over its epochs, in %: what a paper that
    reports its best epoch on the test set (BioTorch) compares with; our figure is the last epoch."""
    lowest = [1 - max(value for _, value in run.curves["test_accuracy"]) for run in stats.group.runs]
    return 100 * sum(lowest) / len(lowest)


def summary_table(rows: list[dict], papers: dict, reports: dict) -> str:
    """One line per published set-up: the paper's figures, ours (means over the finished seeds) and
    the project's target for them (a row's ``target`` in published.yaml; none: —)."""
    lines = [
        "| set-up | spec | published | ours | target | seeds | epochs | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        published = papers[row["sweep"]]["published"]
        report = reports.get(row["sweep"])
        by_label = {g.label: g for g in report.groups} if report else {}
        paper = " / ".join(
            f"{published[c]:.2f}" for c in row["configurations"] if published.get(c) is not None
        )
        measured = [by_label.get(c) for c in row["configurations"]]
        if any(measured):
            ours = " / ".join(f"{100 * g.test_error.mean:.2f}" if g else "–" for g in measured)
            counts = sorted({g.n if g else 0 for g in measured})
            seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        else:
            ours, seeds = "not yet measured" + (f" ({row['note']})" if row.get("note") else ""), "0"
        if row.get("earlier") and not all(measured):  # figures measured before stores were kept
            earlier = f"earlier sitting {row['earlier']}, its store lost, to be re-run"
            ours = f"{ours}; {earlier}" if any(measured) else earlier
        command = f"`altlearn sweep specs/sweeps/{row['file']}.yaml`"
        lines.append(
            f"| {row['setup']} | `{row['spec']}` | {paper or 'none published'} | {ours} | "
            f"{row.get('target') or '—'} | {seeds} | {row['epochs']} | {command} |"
        )
    return "\n".join(lines)


def replace_block(text: str, name: str, content: str) -> str:
    return replace_stores_block(text, START.format(name), END, content, f"the doc (block {name!r})")


#: formats compare writes for papers (vector figures, LaTeX): not kept in the docs' folders
PRINT_ONLY = {".pdf", ".svg", ".tex"}

#: the report's time of generation: a report that differs only there is not rewritten
GENERATED = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def write_figures(report, folder: Path, write_outputs) -> None:
    """The comparison's files into ``folder``, keeping a report.html whose only change would be
    its generation time (so re-running the docs on unchanged stores leaves git clean)."""
    html = folder / "report.html"
    before = html.read_text(encoding="utf-8") if html.exists() else None
    write_outputs(report, folder)
    for path in folder.iterdir():  # the doc links the HTML report, the PNGs and the tables
        if path.suffix in PRINT_ONLY or path.name == "report.md":
            path.unlink()
    if before is not None and GENERATED.sub("", before) == GENERATED.sub(
        "", html.read_text(encoding="utf-8")
    ):
        html.write_text(before, encoding="utf-8")


def update_docs(check: bool, doc: Path = DOC) -> int:
    from altlearn.compare.outputs import write_outputs

    papers = yaml.safe_load((HERE / "published.yaml").read_text(encoding="utf-8"))
    rows = papers.pop("summary")
    text = doc.read_text(encoding="utf-8")
    new, reports = text, {}
    for name, entry in papers.items():
        store = HERE / f"{name}.db"
        report, parent = sweep_report(store, name) if store.exists() else (None, None)
        reports[name] = report
        if f"{START.format(name)}" in new or report is not None:
            new = replace_block(new, name, results_table(report, entry["published"], name))
        if report is not None and not check:
            write_figures(report, FIGURES / name, write_outputs)
        kept = (
            f"sweep run {parent.info.run_id}, {len(report.groups)} configurations" if report else "no store"
        )
        print(f"{name}: {kept}")
    new = replace_block(new, "summary", summary_table(rows, papers, reports))
    if check:
        if new != text:
            print(f"{doc} is out of date with the stores in {HERE}: run python results/update.py docs")
            return 1
        print(f"{doc} matches the stores")
        return 0
    doc.write_text(new, encoding="utf-8")
    return 0


def sweep_file(name: str) -> str:
    """The sweep file (relative to the repository) whose ``name:`` is ``name``."""
    for path in sorted((HERE.parent / "specs" / "sweeps").glob("*.yaml")):
        if (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("name") == name:
            return str(path.relative_to(HERE.parent))
    return "specs/sweeps/FILE.yaml (the file whose name: is " + name + ")"


def main(argv: list[str] | None = None) -> int:
    parser, commands = store_commands(
        __doc__,
        ("name", "the sweep's name (its file's name: field)"),
        "keep a consistent copy of a live sweep store as NAME.db",
        "copy NAME.db to FOLDER/mlflow.db to continue its sweep there",
    )
    docs = commands.add_parser("docs", help="rewrite docs/results/ and the doc's tables")
    docs.add_argument("--check", action="store_true", help="only say whether the doc is up to date")
    docs.add_argument(
        "--doc", type=Path, default=DOC, help="the page to check or rewrite [default: %(default)s]"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "snapshot":
            print(snapshot(args.name, args.live, HERE))
        elif args.command == "restore":
            print(restore_kept(HERE / f"{args.name}.db", args.folder, sweep_file(args.name)))
        else:
            return update_docs(args.check, args.doc)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
