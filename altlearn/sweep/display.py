"""The sweep's progress: a live table (rich) on a terminal, one plain line per event otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from altlearn.sweep.jobs import Event
from altlearn.sweep.record import Plan

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
        self.live = None

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
            self._say(
                row, f"epoch {event.epoch}/{event.epochs}{_accuracy(event.test_accuracy, ': test acc ')}"
            )
        else:  # done or lost
            outcome = event.outcome
            row.state = outcome.status.lower()
            # A finished trial's message only repeats its accuracy and run id: the note is for trouble.
            failed = outcome.status != "FINISHED" and outcome.message
            row.note = brief(outcome.message)[:200] if failed else (outcome.stop_note or "")
            self._say(
                row,
                f"{outcome.status}{_accuracy(row.accuracy, ': test acc ')}{': ' + row.note if row.note else ''}",
            )
        if self.live is not None:
            self.live.update(self._table())

    def _say(self, row: Row, what: str) -> None:
        if self.live is None and not self.quiet:
            print(
                f"[{row.number}/{len(self.rows)}] {row.label}, seed {row.seed}: {what}",
                file=self.stream,
                flush=True,
            )

    def _table(self):
        from rich.table import Table

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
            state = f"[{STYLE.get(r.state, 'white')}]{r.state}[/]"
            table.add_row(str(r.number), r.label, str(r.seed), state, epoch, _accuracy(r.accuracy), r.note)
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
