"""Where a report goes besides the terminal: files in a folder, and artifacts of a (sweep's) run."""

from __future__ import annotations

from pathlib import Path

from altlearn.compare.comparison import Report
from altlearn.compare.figures import FIGURE_NAMES, make_figures
from altlearn.compare.html_report import render_html
from altlearn.compare.table import FORMATS

ARTIFACT_PATH = "compare"  # the folder of a sweep parent's artifacts that holds its comparison
REPORT_FILE = "report.html"


def write_outputs(report: Report, folder: Path) -> dict[str, Path]:
    """The table in every file format, the figures and the HTML report, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for extension, render in FORMATS.items():
        path = folder / f"table.{extension}"
        path.write_text(render(report), encoding="utf-8")
        files[path.name] = path
    figures = make_figures(report, folder)
    drawn = {figure.name for figure in figures}
    for name in FIGURE_NAMES - drawn:  # a figure of an earlier comparison would look like this one's
        (folder / f"{name}.png").unlink(missing_ok=True)
    files.update({figure.path.name: figure.path for figure in figures})
    html = folder / REPORT_FILE
    html.write_text(render_html(report, figures), encoding="utf-8")
    files[html.name] = html
    report.files = files
    return files


def log_to_run(client, run_id: str, report: Report) -> None:
    """Attach the written files to ``run_id`` under compare/, where the MLflow UI shows them."""
    for path in report.files.values():
        client.log_artifact(run_id, str(path), ARTIFACT_PATH)
    report.logged_to_run = run_id
