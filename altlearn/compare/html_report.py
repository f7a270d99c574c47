"""One self-contained HTML page: the set-up, the tables, the notes and every figure embedded as a
base64 PNG; and the same report as Markdown (report.md), its figures linked beside it.

No scripts, no fonts or styles from the network: the file reads the same offline, attached to an
email, or as an MLflow artifact.
"""

from __future__ import annotations

import base64
import datetime
from html import escape

from altlearn.compare.comparison import Report
from altlearn.compare.plotting import FigureFile
from altlearn.compare.setup import setup_lines
from altlearn.compare.table import GROUPS_TITLE, sections, to_markdown
from altlearn.compare.table_pairs import has_tests
from altlearn.text import markdown_text, printable
from altlearn.version import __version__

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.6rem; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { font-weight: 600; }
dl#setup { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; font-size: 0.9rem; }
dl#setup dt { font-weight: 600; } dl#setup dd { margin: 0; }
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
        _setup(report),
    ]
    for (title, caption, headers, numeric_from, rows), anchor in zip(sections(report), _anchors(report)):
        parts.append(f"<h2>{escape(title or GROUPS_TITLE)}</h2>")
        parts.append(_table(anchor, headers, numeric_from, rows, best_first=anchor != "pairwise"))
        parts.append(f'<p class="meta">{escape(caption)}.</p>')
    parts += [_notes(report), _not_counted(report)]
    for figure in figures:
        parts.append(_figure(figure))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def _anchors(report: Report) -> list[str]:
    pairs = ["pairwise"] if has_tests(report) else []
    return ["groups", *pairs] if report.tuning is None else ["at-best", *pairs, "groups"]


def _grouping(report: Report) -> str:
    if report.tuning is not None and report.tuning.mode == "search":
        return "case (the search's finals)"
    return ", ".join(report.by) if report.by else "every param except seed, name and tracking.*"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _setup(report: Report) -> str:
    items = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(printable(text))}</dd>" for name, text in setup_lines(report)
    )
    return f'<h2>Set-up</h2><dl id="setup">{items}</dl>' if items else ""


def _table(anchor: str, headers, numeric_from: int, rows: list[list[str]], best_first: bool) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for rank, row in enumerate(rows):
        tds = "".join(
            f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f'<tr class="best">{tds}</tr>' if rank == 0 and best_first else f"<tr>{tds}</tr>")
    return f'<table id="{anchor}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_markdown(report: Report, figures: list[FigureFile]) -> str:
    """The report as Markdown, to paste into a draft: the set-up, the tables, the notes, and the
    figures as links to their files beside it (PNG; SVG and PDF for print)."""
    lines = [f"# altlearn compare: {markdown_text(report.selection.description)}", "", "## Set-up", ""]
    lines += [f"- **{markdown_text(name)}**: {markdown_text(text)}" for name, text in setup_lines(report)]
    lines += ["", "## Results", "", to_markdown(report)]
    if report.notes:
        lines += ["## Notes", "", *(f"- {markdown_text(note)}" for note in report.notes), ""]
    for figure in figures:
        formats = ", ".join(f"[{path.suffix[1:].upper()}]({path.name})" for path in figure.formats[1:])
        title = markdown_text(figure.title)
        lines += [f"![{title}]({figure.path.name})", "", f"*{title}* ({formats})", ""]
    return "\n".join(lines).rstrip() + "\n"


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
