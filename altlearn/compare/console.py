"""What ``altlearn compare`` prints: the table on stdout (in the chosen format), everything else —
runs not counted, notes, files written — on stderr, so ``--format csv > table.csv`` stays clean.

Every line here quotes what the tracking store holds (run names, labels, error tags), so each goes
through altlearn.text.printable: an ESC in a run name is shown as ``\\x1b``, never sent."""

from __future__ import annotations

import sys

import click

from altlearn.compare.comparison import Report
from altlearn.compare.outputs import ARTIFACT_PATH
from altlearn.compare.table import FORMATS, to_rich
from altlearn.text import printable

WARNING = "warning: "
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
        if note.startswith(WARNING):  # a chosen value at the edge of its range: the choice may be wrong
            _say("warning", note[len(WARNING) :], "red")
        else:
            _say("note", note, "yellow")
    if report.files:
        folder = next(iter(report.files.values())).parent
        _say("wrote", f"{', '.join(sorted(report.files))} in {folder}", "green")
    if report.exported_study:
        _say(
            "wrote",
            f"the search as an Optuna storage: optuna-dashboard sqlite:///{report.exported_study}",
            "green",
        )
    if report.logged_to_run:
        _say("logged", f"the report to run {report.logged_to_run} (artifacts {ARTIFACT_PATH}/)", "green")
    elif not report.files:
        _say("hint", "add --out DIR for the figures, the table as files and an HTML report", "cyan")


def _say(label: str, message: str, colour: str) -> None:
    # Notes quote run names, labels, param values and error tags from the store: escape them all.
    click.echo(click.style(f"{label}: ", fg=colour, bold=True) + printable(message), err=True)
