"""The sweep's progress: a live table (rich) on a terminal, one plain line per event otherwise;
and the lines of its --dry-run listing and its summary.

Labels come from the sweep file (or, for trials of an earlier run of the sweep, from the store) and
notes from trials' error messages: every text printed here goes through altlearn.text.printable, so
an ESC or BEL in a case's label cannot retitle or clear the terminal, and into the live table as rich
Text, so "[red]" in a label is shown, not taken for markup.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from altlearn.sweep.configurations import Trial
from altlearn.sweep.jobs import Event
from altlearn.sweep.record import Plan
from altlearn.sweep.summary import DONE, LATER, NOT_STARTED, GroupResult, TrialResult
from altlearn.text import printable

if TYPE_CHECKING:
    from rich.live import Live

MAX_ROWS = 30  # beyond this the live table shows the running and failed trials, and counts


@dataclass
class Row:
    number: int  # 1-based, as printed
    label: str
    seed: int
    state: str  # pending, skipped, later (not selected), running, finished, failed, killed
    epoch: int = 0
    epochs: int = 0
    accuracy: float | None = None
    accuracy_of: str = "test"  # a search trial shows its validation accuracy
    note: str = ""


STYLE = {
    "running": "cyan",
    "finished": "green",
    "skipped": "dim",
    "later": "dim",
    "failed": "red",
    "killed": "yellow",
}


class SweepDisplay:
    def __init__(self, plans: list[Plan], quiet: bool = False, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.live_table = not quiet and self.stream.isatty()
        self.rows = {
            p.trial.index: Row(
                i + 1,
                p.trial.label,
                p.trial.seed,
                {"skip": "skipped", "later": "later"}.get(p.action, "pending"),
            )
            for i, p in enumerate(plans)
        }
        self.live: Live | None = None

    def start(self) -> None:
        if self.live_table:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._table(), console=Console(file=self.stream), refresh_per_second=2)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
            self.live = None

    def update(self, event: Event) -> None:
        row = self.rows[event.index]
        if event.kind == "started":
            row.state, row.epoch, row.epochs = "running", event.epoch, event.epochs
            self._say(row, f"resumed after epoch {event.epoch}" if event.epoch else "started")
        elif event.kind == "epoch":
            row.epoch, row.epochs, row.accuracy = event.epoch, event.epochs, event.test_accuracy
            row.accuracy_of = event.accuracy_of
            self._say(
                row,
                f"epoch {event.epoch}/{event.epochs}{_accuracy(event.test_accuracy, f': {row.accuracy_of} acc ')}",
            )
        else:  # done or lost
            outcome = event.outcome
            assert outcome is not None  # done and lost events carry the trial's outcome
            row.state = outcome.status.lower()
            # A finished trial's message only repeats its accuracy and run id: the note is for trouble.
            failed = outcome.status != "FINISHED" and outcome.message
            row.note = brief(outcome.message)[:200] if failed else (outcome.stop_note or "")
            self._say(
                row,
                f"{outcome.status}{_accuracy(row.accuracy, f': {row.accuracy_of} acc ')}"
                f"{': ' + row.note if row.note else ''}",
            )
        if self.live is not None:
            self.live.update(self._table())

    def _say(self, row: Row, what: str) -> None:
        if self.live is None and not self.quiet:
            print(
                printable(f"[{row.number}/{len(self.rows)}] {row.label}, seed {row.seed}: {what}"),
                file=self.stream,
                flush=True,
            )

    def _table(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self._counts(), title_justify="left", expand=False)
        for name, justify in (
            ("#", "right"),
            ("configuration", "left"),
            ("seed", "right"),
            ("state", "left"),
            ("epoch", "right"),
            ("test acc", "right"),
            ("note", "left"),
        ):
            table.add_column(name, justify=justify, overflow="ellipsis", no_wrap=name == "note")
        rows = list(self.rows.values())
        if len(rows) > MAX_ROWS:
            rows = [r for r in rows if r.state in ("running", "failed", "killed")][:MAX_ROWS]
        for r in rows:
            epoch = f"{r.epoch}/{r.epochs}" if r.epochs else ""
            state = Text(r.state, style=STYLE.get(r.state, "white"))
            label, note = Text(printable(r.label)), Text(printable(r.note))
            table.add_row(str(r.number), label, str(r.seed), state, epoch, _accuracy(r.accuracy), note)
        return table

    def _counts(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
        return "sweep: " + ", ".join(f"{n} {state}" for state, n in counts.items())


def _accuracy(value: float | None, prefix: str = "") -> str:
    return f"{prefix}{value:.2%}" if value is not None else ""


def brief(message: str | None) -> str:
    """A trial's error in one line: its first line, and for a spec error (a header, then one
    "  - path: problem" line each) its first problem, which is what the user must fix."""
    lines = (message or "").splitlines()
    if not lines:
        return ""
    problems = [line.strip()[2:] for line in lines[1:] if line.strip().startswith("- ")]
    if not problems:
        return lines[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{lines[0]}: {problems[0]}{more}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def trial_lines(trials: list[Trial], selected: set[int] | None) -> list[str]:
    """The --dry-run listing: a head line, then one line per (selected) trial."""
    lines = [
        f"{_count(len(trials), 'trial')}: {_made_of(trials)}"
        + ("" if selected is None else f"; {len(selected)} selected by --case/--seed, listed below"),
        f"{'#':>4}  {'trial key':<12}  {'group key':<12}  {'seed':>4}  configuration",
    ]
    for trial in trials if selected is None else [t for t in trials if t.index in selected]:
        lines.append(
            f"{trial.index + 1:>4}  {trial.key:<12}  {trial.group_key:<12}  {trial.seed:>4}  "
            + printable(trial.label)
        )
    return lines


def _made_of(trials: list[Trial]) -> str:
    if any(t.phase for t in trials):  # a search: its trials' values are drawn as they start
        cases = len({t.case for t in trials})
        search = sum(t.phase == "search" for t in trials) // max(cases, 1)
        finals = sum(t.phase == "final" for t in trials) // max(cases, 1)
        return f"{_count(cases, 'case')} x ({search} search trials + {finals} finals on fresh seeds)"
    configurations = len({t.group_key for t in trials})
    seeds = len({t.seed for t in trials})
    return f"{_count(configurations, 'configuration')} x {_count(seeds, 'seed')}"


def summary_lines(results: list[TrialResult], summary: list[GroupResult]) -> list[str]:
    """The end of a sweep: each configuration's finished trials and accuracy, then every trial
    that failed or was stopped, with its error's first line."""
    labels = [printable(g.label) for g in summary]  # escaped first: the column fits what is shown
    width = max((len(label) for label in labels), default=10)
    lines = [f"{'configuration':<{width}}  finished  test accuracy (mean +- std)"]
    for g, label in zip(summary, labels):
        value = "" if g.mean is None else f"{g.mean:.2%}" + (f" +- {g.std:.2%}" if g.std is not None else "")
        value = value or printable(g.choice)
        lines.append(f"{label:<{width}}  {g.finished:>3}/{g.trials:<4}  {value}")
    for r in results:
        if r.status not in (*DONE, NOT_STARTED, LATER):
            lines.append(
                printable(
                    f"trial {r.trial.index + 1} ({r.trial.label}, seed {r.trial.seed}) {r.status}: "
                    + brief(r.message)
                )
            )
    return lines
