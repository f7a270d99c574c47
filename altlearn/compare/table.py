"""The comparison table in four forms: rich (a terminal), Markdown, CSV and JSON (files, scripts).

Markdown and rich show percentages rounded for reading; CSV and JSON carry the unrounded fractions
(accuracy 0.9712, not 97.12) so a script can recompute anything from them.
"""

from __future__ import annotations

import csv
import io
import json

from altlearn.compare.comparison import Report
from altlearn.compare.stats import Estimate, GroupStats

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
    "best val acc: each seed's best epoch; s/epoch and samples/s: training only; p vs best: Welch's "
    "two-sided t-test of final test accuracy against the best group"
)
NUMERIC_FROM = 1  # columns from here on are right-aligned


def cells(stats: GroupStats) -> list[str]:
    """One group's row as the reader sees it."""
    return [
        stats.label,
        str(stats.n),
        mean_std(stats.test_accuracy),
        interval(stats.test_accuracy),
        mean_std(stats.test_error),
        interval(stats.test_error),
        mean_std(stats.best_val_accuracy) if stats.best_val_accuracy else "-",
        _epochs(stats.epochs),
        f"{stats.seconds_per_epoch:.3g}" if stats.seconds_per_epoch is not None else "-",
        f"{stats.samples_per_second:,.0f}" if stats.samples_per_second is not None else "-",
        p_value_text(stats),
    ]


def mean_std(e: Estimate) -> str:
    return f"{100 * e.mean:.2f} ± {100 * e.std:.2f}" if e.std is not None else f"{100 * e.mean:.2f}"


def interval(e: Estimate) -> str:
    return f"[{100 * e.ci_low:.2f}, {100 * e.ci_high:.2f}]" if e.ci_low is not None else "-"


def p_value_text(stats: GroupStats) -> str:
    if stats.p_value is None:
        return stats.p_note
    return f"{stats.p_value:.3f}" if stats.p_value >= 0.001 else f"{stats.p_value:.1e}"


def _epochs(epochs: list[int]) -> str:
    low, high = min(epochs), max(epochs)
    return str(low) if low == high else f"{low}-{high}"


def to_rich(report: Report):
    from rich.table import Table

    table = Table(title=report.selection.description, title_justify="left", caption=EXPLANATION)
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="right" if index >= NUMERIC_FROM else "left", overflow="fold")
    for stats in report.groups:
        table.add_row(*cells(stats))
    return table


def to_markdown(report: Report) -> str:
    def line(values) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = ["---"] * NUMERIC_FROM + ["---:"] * (len(HEADERS) - NUMERIC_FROM)
    lines = [line(HEADERS), "| " + " | ".join(align) + " |"]
    lines += [line(cells(stats)) for stats in report.groups]
    return "\n".join(lines) + "\n"


def records(report: Report) -> list[dict]:
    """The table as plain data, unrounded: what JSON holds and CSV flattens."""
    return [
        {
            "rank": rank,
            "group": s.label,
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


def _estimate_record(e: Estimate) -> dict:
    return {"mean": e.mean, "std": e.std, "ci95": [e.ci_low, e.ci_high], "values": e.values}


def to_json(report: Report) -> str:
    document = {
        "selection": report.selection.description,
        "sweep_run_id": report.selection.sweep_run_id,
        "grouped_by": report.by or "every param except seed, name and tracking.*",
        "groups": records(report),
        "not_counted": [
            {"run_id": e.run.run_id, "name": e.run.name, "status": e.run.status, "reason": e.reason}
            for e in report.excluded
        ],
        "notes": report.notes,
    }
    return json.dumps(document, indent=2) + "\n"


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    estimates = ("test_accuracy", "test_error", "best_val_accuracy")
    writer.writerow(
        ["rank", "group", "n", "seeds"]
        + [f"{name}_{part}" for name in estimates for part in ("mean", "std", "ci95_low", "ci95_high")]
        + ["epochs", "seconds_per_epoch", "samples_per_second", "p_value_vs_best", "p_value_note"]
    )
    for record in records(report):
        row = [record["rank"], record["group"], record["n"], " ".join(record["seeds"])]
        for name in estimates:
            e = record[name] or {"mean": None, "std": None, "ci95": [None, None]}
            row += [e["mean"], e["std"], *e["ci95"]]
        row += [
            " ".join(map(str, record["epochs"])),
            record["seconds_per_epoch"],
            record["samples_per_second"],
        ]
        row += [record["p_value_vs_best"], record["p_value_note"]]
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


FORMATS = {"md": to_markdown, "csv": to_csv, "json": to_json}
