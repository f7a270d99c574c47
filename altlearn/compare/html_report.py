"""One self-contained HTML page: the table, the notes and every figure embedded as a base64 PNG.

No scripts, no fonts or styles from the network: the file reads the same offline, attached to an
email, or as an MLflow artifact.
"""

from __future__ import annotations

import base64
import datetime
from html import escape

from altlearn.compare.comparison import Report
from altlearn.compare.figures import FigureFile
from altlearn.compare.table import EXPLANATION, HEADERS, NUMERIC_FROM, cells
from altlearn.version import __version__

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.6rem; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { font-weight: 600; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #6b4e00; } .meta { color: #666; font-size: 0.85rem; } code { font-size: 0.85rem; }
"""


def render_html(report: Report, figures: list[FigureFile]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>altlearn compare: {escape(report.selection.description)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>altlearn compare</h1>",
        f'<p class="meta">{escape(report.selection.description)}; grouped by '
        f"{escape(_grouping(report))}; generated {_now()} by altlearn {escape(__version__)}</p>",
        "<h2>Final test accuracy per group (best first)</h2>",
        _table(report),
        f'<p class="meta">{escape(EXPLANATION)}.</p>',
        _notes(report),
        _not_counted(report),
    ]
    for figure in figures:
        parts.append(_figure(figure))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def _grouping(report: Report) -> str:
    return ", ".join(report.by) if report.by else "every param except seed, name and tracking.*"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    rows = []
    for rank, stats in enumerate(report.groups):
        tds = "".join(
            f'<td class="num">{escape(c)}</td>' if i >= NUMERIC_FROM else f"<td>{escape(c)}</td>"
            for i, c in enumerate(cells(stats))
        )
        rows.append(f'<tr class="best">{tds}</tr>' if rank == 0 else f"<tr>{tds}</tr>")
    return f'<table id="groups"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _notes(report: Report) -> str:
    if not report.notes:
        return ""
    items = "".join(f'<li class="note">{escape(note)}</li>' for note in report.notes)
    return f"<h2>Notes</h2><ul>{items}</ul>"


def _not_counted(report: Report) -> str:
    if not report.excluded:
        return ""
    items = "".join(
        f"<li><code>{escape(e.run.run_id)}</code> ({escape(e.run.name)}): {escape(e.reason)}</li>"
        for e in report.excluded
    )
    return f"<h2>Runs not counted</h2><ul>{items}</ul>"


def _figure(figure: FigureFile) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="{escape(figure.name)}"><img alt="{escape(figure.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(figure.title)}</figcaption></figure>'
    )
