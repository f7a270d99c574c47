"""The comparison table in four forms: rich (a terminal), Markdown, CSV and JSON (files, scripts);
LaTeX is in altlearn.compare.latex.

Markdown and rich show percentages rounded for reading and labels readably (``fa, lr 1e-3``); CSV
and JSON carry the exact labels and unrounded fractions (accuracy 0.9712, not 97.12) so a script can
recompute anything from them. A report of each case at its best (a search, or --select-by) adds
its own tables before the groups' (altlearn.compare.table_best).

Labels and seeds come from the tracking store, which anyone may have written to: every form that
reaches a terminal (rich, Markdown, CSV: ``cat table.csv``) shows their control characters escaped
by altlearn.text.printable. JSON keeps the exact strings: it escapes control characters itself.
"""

from __future__ import annotations

import csv
import io
import json
import math

from altlearn.compare.comparison import Report
from altlearn.compare.formatting import interval, mean_std, p_value_text, seconds_text
from altlearn.compare.labels import readable
from altlearn.compare.stats import Estimate, GroupStats
from altlearn.compare.table_best import (
    at_best_cells,
    at_best_explanation,
    at_best_headers,
    case_of_group,
    case_record,
    tuning_record,
)
from altlearn.compare.table_pairs import (
    PAIR_HEADERS,
    has_tests,
    pair_cells,
    pair_explanation,
    pairs_record,
    with_reference,
)
from altlearn.text import markdown_text, printable

HEADERS = (
    "group",
    "seeds",
    "test acc % ± std",
    "95% CI",
    "test error % ± std",
    "95% CI",
    "best val acc %",
    "epochs",
    "s/epoch",
    "samples/s",
    "p vs best",
)
EXPLANATION = (
    "final values; mean ± sample std over seeds; 95% CI from the t distribution (clipped to 0-100); "
    "best val acc: each seed's best epoch; s/epoch and samples/s: training only; p vs best: the "
    "pairwise test of final test accuracy against the best group"
)
GROUPS_TITLE = "Final test accuracy per group (best first)"  # where the groups' table is one of several
NUMERIC_FROM = 1  # columns from here on are right-aligned
TERMINAL_PAIRS = 10  # more pairs than this (six groups and up) fill a screen: the terminal shows the best's
AT_BEST_NUMERIC_FROM = 2  # of the at-best table: case and chosen values are text


Section = tuple[str, str, tuple[str, ...], int, list[list[str]]]


def sections(report: Report, pair_limit: int | None = None) -> list[Section]:
    """Each table a reader sees, in order: (title, explanation, headers, first numeric column, rows).
    ``pair_limit``: above this many pairs, only those with the best group (a terminal's view)."""
    tested = has_tests(report)
    caption = EXPLANATION + (" (see the pairwise tests)" if tested else "")
    groups: Section = ("", caption, HEADERS, NUMERIC_FROM, [cells(s) for s in report.groups])
    pairs: list[Section] = []
    if tested:
        shown, explanation = report.pairs, pair_explanation(report)
        if pair_limit is not None and len(report.pairs) > pair_limit:
            shown = [pair for pair in report.pairs if with_reference(pair)]
            explanation += (
                f"; shown: the {len(shown)} pairs with the best group, of {len(report.pairs)} "
                "(all of them: --format markdown or json, or --out's report)"
            )
        rows = [pair_cells(pair, report) for pair in shown]
        pairs.append(("Pairwise tests", explanation, PAIR_HEADERS, 1, rows))
    tuning = report.tuning
    if tuning is None:
        return [groups, *pairs]
    title = "Each at its best" + (" (search, then finals on fresh seeds)" if tuning.mode == "search" else "")
    found: list[Section] = [
        (
            title,
            at_best_explanation(tuning, report.correction is not None),
            at_best_headers(tuning),
            AT_BEST_NUMERIC_FROM,
            [at_best_cells(tuning, case) for case in tuning.cases],
        ),
        *pairs,
    ]
    finals = "Finals" if tuning.mode == "search" else "The chosen configurations"
    _, caption, headers, numeric_from, rows = groups
    return [*found, (finals, caption, headers, numeric_from, rows)]


def cells(stats: GroupStats) -> list[str]:
    """One group's row as the reader sees it."""
    return [
        printable(readable(stats.label)),
        str(stats.n),
        mean_std(stats.test_accuracy),
        interval(stats.test_accuracy),
        mean_std(stats.test_error),
        interval(stats.test_error),
        mean_std(stats.best_val_accuracy) if stats.best_val_accuracy else "-",
        _epochs(stats.epochs),
        seconds_text(stats.seconds_per_epoch) if stats.seconds_per_epoch is not None else "-",
        f"{stats.samples_per_second:,.0f}" if stats.samples_per_second is not None else "-",
        p_value_text(stats),
    ]


def _epochs(epochs: list[int]) -> str:
    low, high = min(epochs), max(epochs)
    return str(low) if low == high else f"{low}-{high}"


def to_rich(report: Report):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    tables = []
    for index, (title, caption, headers, numeric_from, rows) in enumerate(sections(report, TERMINAL_PAIRS)):
        # Text, not str: a label such as "[red]x" or "[/]" is the store's text, not rich markup.
        name = printable(report.selection.description) + (f": {title}" if title else "")
        table = Table(
            title=Text(name if index == 0 or title else title), title_justify="left", caption=caption
        )
        for column, header in enumerate(headers):
            table.add_column(header, justify="right" if column >= numeric_from else "left", overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)


def markdown_table(headers: tuple[str, ...], numeric_from: int, rows: list[list[str]]) -> str:
    def line(values) -> str:
        return "| " + " | ".join(markdown_text(v) for v in values) + " |"

    align = ["---"] * numeric_from + ["---:"] * (len(headers) - numeric_from)
    lines = [line(headers), "| " + " | ".join(align) + " |"] + [line(row) for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    found = sections(report)
    if len(found) == 1:
        return markdown_table(*found[0][2:])
    parts = [
        f"**{markdown_text(title or GROUPS_TITLE)}** ({markdown_text(caption)})\n\n"
        + markdown_table(headers, numeric_from, rows)
        for title, caption, headers, numeric_from, rows in found
    ]
    return "\n".join(parts)


def records(report: Report) -> list[dict]:
    """The table as plain data, unrounded: what JSON holds and CSV flattens. A number that is not
    finite (an overflowing mean, say) is None: JSON has no nan, and null says "no number"."""
    rows = [
        {
            "rank": rank,
            "group": s.label,
            "label": readable(s.label),
            "params": s.group.params,
            "n": s.n,
            "seeds": s.seeds,
            "run_ids": [run.run_id for run in s.group.runs],
            "test_accuracy": _estimate_record(s.test_accuracy),
            "test_error": _estimate_record(s.test_error),
            "best_val_accuracy": _estimate_record(s.best_val_accuracy) if s.best_val_accuracy else None,
            "epochs": s.epochs,
            "seconds_per_epoch": s.seconds_per_epoch,
            "samples_per_second": s.samples_per_second,
            "p_value_vs_best": s.p_value,
            "p_value_note": s.p_note,
        }
        for rank, s in enumerate(report.groups, start=1)
    ]
    return _finite_or_none(rows)


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def _estimate_record(e: Estimate) -> dict:
    return {"mean": e.mean, "std": e.std, "ci95": [e.ci_low, e.ci_high], "values": e.values}


def to_json(report: Report) -> str:
    document: dict[str, object] = {
        "selection": report.selection.description,
        "sweep_run_id": report.selection.sweep_run_id,
        "grouped_by": report.by or "every param except seed, name and tracking.*",
        "groups": records(report),
        "not_counted": [
            {"run_id": e.run.run_id, "name": e.run.name, "status": e.run.status, "reason": e.reason}
            for e in report.excluded
        ],
        "notes": report.notes,
        **pairs_record(report),
    }
    if report.tuning is not None:
        document["tuning"] = tuning_record(report.tuning)
    # allow_nan=False: a bare NaN is not JSON, and json.loads elsewhere (jq, JavaScript) rejects it.
    return json.dumps(_finite_or_none(document), indent=2, allow_nan=False) + "\n"


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    estimates = ("test_accuracy", "test_error", "best_val_accuracy")
    paths = _chosen_paths(report)
    writer.writerow(
        ["rank", "group", "n", "seeds"]
        + [f"{name}_{part}" for name in estimates for part in ("mean", "std", "ci95_low", "ci95_high")]
        + ["epochs", "seconds_per_epoch", "samples_per_second", "p_value_vs_best", "p_value_note"]
        + ([*CASE_COLUMNS, *(f"chosen.{path}" for path in paths)] if report.tuning else [])
    )
    for stats, record in zip(report.groups, records(report)):
        seeds = " ".join(record["seeds"])
        row = [record["rank"], printable(record["group"]), record["n"], printable(seeds)]
        for name in estimates:
            e = record[name] or {"mean": None, "std": None, "ci95": [None, None]}
            row += [e["mean"], e["std"], *e["ci95"]]
        row += [
            " ".join(map(str, record["epochs"])),
            record["seconds_per_epoch"],
            record["samples_per_second"],
        ]
        row += [record["p_value_vs_best"], record["p_value_note"]]
        row += _case_columns(report, stats, paths)
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


# a case's choice, beside its finals' row (CSV, at-best reports only)
CASE_COLUMNS = (
    "case",
    "objective",
    "objective_value",
    "objective_rank",
    "candidates",
    "complete",
    "pruned",
    "failed",
    "trial_epochs",
    "cpu_seconds",
    "edges",
)


def _chosen_paths(report: Report) -> list[str]:
    cases = report.tuning.cases if report.tuning else []
    return list(dict.fromkeys(path for case in cases for path in case.chosen_values))


def _case_columns(report: Report, stats: GroupStats, paths: list[str]) -> list:
    if report.tuning is None:
        return []
    case = case_of_group(report.tuning, stats)
    if case is None:
        return [None] * (len(CASE_COLUMNS) + len(paths))
    record = _finite_or_none(case_record(report.tuning, case))
    row = [printable(record["case"]), report.tuning.objective]
    row += [record[key] for key in CASE_COLUMNS[2:-1]]
    row.append(printable("; ".join(record["edges"].values())))
    return row + [printable(record["chosen"].get(path, "")) for path in paths]


FORMATS = {"md": to_markdown, "csv": to_csv, "json": to_json}
