"""Where a report goes besides the terminal: files in a folder, and artifacts of a (sweep's) run."""

from __future__ import annotations

import stat
from pathlib import Path

from altlearn.compare.comparison import Report
from altlearn.compare.figures import FIGURE_NAMES, make_figures
from altlearn.compare.html_report import render_html, render_markdown
from altlearn.compare.latex import to_latex
from altlearn.compare.plotting import EXTENSIONS
from altlearn.compare.table import FORMATS
from altlearn.errors import CompareError

ARTIFACT_PATH = "compare"  # the folder of a sweep parent's artifacts that holds its comparison
REPORT_FILE = "report.html"
MARKDOWN_FILE = "report.md"  # the same report as Markdown, to paste into a draft


def check_folder(folder: Path) -> None:
    """Refuse at once an output folder that cannot be one (a file, /dev/null, a path through a
    file), before the store is read and the figures drawn; nothing is created here."""
    try:
        existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
        if existing is None or existing.is_dir():
            return
    except OSError:  # a folder on the way this user may not look into: writing will say so
        return
    what = _kind(existing)
    if existing == folder:
        raise CompareError(f"--out {folder} is {what}, not a folder: give a folder for the report files")
    raise CompareError(f"--out {folder} cannot be created: {existing} is {what}, not a folder")


def _kind(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError:  # a link to nothing, or a place this user may not look into
        return "a broken link" if path.is_symlink() else "unreadable"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a file" if stat.S_ISREG(mode) else "neither a file nor a folder"


def write_outputs(report: Report, folder: Path) -> dict[str, Path]:
    """The table in every file format (md, csv, json, tex), the figures (PNG, SVG, PDF) and the
    reports (HTML, Markdown), into ``folder``; any failure to write there (read-only, full, no
    permission) is a CompareError naming the path."""
    check_folder(folder)
    try:
        return _write(report, folder)
    except OSError as exc:
        where = exc.filename or folder
        raise CompareError(
            f"cannot write the report into {folder}: {where}: {exc.strerror or exc} (give --out a "
            "folder you can write to)"
        ) from None


def _write(report: Report, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for extension, render in {**FORMATS, "tex": to_latex}.items():
        path = folder / f"table.{extension}"
        path.write_text(render(report), encoding="utf-8")
        files[path.name] = path
    figures = make_figures(report, folder)
    drawn = {figure.name for figure in figures}
    for name in FIGURE_NAMES - drawn:  # a figure of an earlier comparison would look like this one's
        for extension in EXTENSIONS:
            (folder / f"{name}.{extension}").unlink(missing_ok=True)
    files.update({path.name: path for figure in figures for path in figure.formats})
    for name, text in (
        (REPORT_FILE, render_html(report, figures)),
        (MARKDOWN_FILE, render_markdown(report, figures)),
    ):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        files[path.name] = path
    report.files = files
    return files


def log_to_run(client, run_id: str, report: Report) -> None:
    """Attach the written files to ``run_id`` under compare/, where the MLflow UI shows them."""
    for path in report.files.values():
        client.log_artifact(run_id, str(path), ARTIFACT_PATH)
    report.logged_to_run = run_id
