"""What ``altlearn compare`` prints: the table on stdout (in the chosen format), everything else —
runs not counted, notes, files written — on stderr, so ``--format csv > table.csv`` stays clean."""

from __future__ import annotations

import sys

import click

from altlearn.compare.comparison import Report
from altlearn.compare.outputs import ARTIFACT_PATH
from altlearn.compare.table import FORMATS, to_rich

WIDTH_OFF_TERMINAL = 250  # rich folds at 80 columns when it cannot ask a terminal; the table is wider


def show(report: Report, fmt: str) -> None:
    if fmt == "rich":
        from rich.console import Console

        console = Console(width=None if sys.stdout.isatty() else WIDTH_OFF_TERMINAL)
        console.print(to_rich(report))
    else:
        click.echo(FORMATS[fmt](report), nl=False)
    sys.stdout.flush()  # the table before the notes, when both streams go to one terminal
    for excluded in report.excluded:
        _say("not counted", f"run {excluded.run.run_id} ({excluded.run.name}) {excluded.reason}", "yellow")
    for note in report.notes:
        _say("note", note, "yellow")
    if report.files:
        folder = next(iter(report.files.values())).parent
        _say("wrote", f"{', '.join(sorted(report.files))} in {folder}", "green")
    if report.logged_to_run:
        _say("logged", f"the report to run {report.logged_to_run} (artifacts {ARTIFACT_PATH}/)", "green")
    elif not report.files:
        _say("hint", "add --out DIR for the figures, the table as files and an HTML report", "cyan")


def _say(label: str, message: str, colour: str) -> None:
    click.echo(click.style(f"{label}: ", fg=colour, bold=True) + message, err=True)
