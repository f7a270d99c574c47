"""A leaderboard's rows, read from its store: per case of the board's search sweep, how far its
search and finals are, its chosen configuration, the finals' test accuracy, the paired test
against BP (Holm-corrected over the board), its CPU cost and where it was measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores import latest_sweep

from altlearn.compare.at_best import build
from altlearn.compare.pairwise import PairTest, holm, pair_test
from altlearn.compare.search import case_of, phase, trial_state
from altlearn.compare.selection import RunData, open_store, select_sweep
from altlearn.compare.stats import GroupStats
from altlearn.errors import CompareError

BASELINE = "bp"  # every row's p-value is against this row


@dataclass
class Published:
    """A figure from a paper, quoted beside a row: it was measured on its own set-up."""

    figure: str  # test accuracy in %, as the paper gives it (a value, a mean ± std, a range)
    setup: str  # the paper's network and budget, where they differ from the board's
    source: str  # paper, table


@dataclass
class Board:
    name: str
    title: str
    sweep: str  # the sweep's name: field
    file: str  # the sweep file, from the repository's root
    reach: float  # the accuracy (a fraction) a row's CPU-seconds are counted to
    rows: list[str]  # the cases (their labels) in the order the plan lists them
    headline: bool = False  # the README's table
    published: dict[str, dict] = field(default_factory=dict)
    spec: str = ""  # the board's base spec, from the repository's root
    refused: dict[str, list[str]] = field(default_factory=dict)  # label -> its -s overrides

    def refusals(self, root: Path) -> dict[str, str]:
        """Why each refused rule cannot train the board's network, as the validator says it."""
        return {label: refusal(root / self.spec, overrides) for label, overrides in self.refused.items()}

    def quote(self, label: str) -> Published | None:
        entry = self.published.get(label)
        return Published(**entry) if entry else None


@dataclass
class Row:
    label: str
    family: str
    searched: dict[str, int]  # trial state -> count (complete, pruned, running, failed)
    finals_done: int
    finals_planned: int
    trials_planned: int
    chosen: dict[str, Any] = field(default_factory=dict)
    edges: dict[str, str] = field(default_factory=dict)  # path -> why its chosen value is at an edge
    stats: GroupStats | None = None
    versus_bp: PairTest | None = None
    cpu_per_epoch: float | None = None
    reach_seconds: list[float] = field(default_factory=list)  # per final that reached the accuracy
    # phase -> the training CPU-seconds of its runs that count (superseded runs and epochs trained
    # again after a resume left out: a lower bound)
    spent: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.stats is not None and self.finals_done >= self.finals_planned


def board_rows(uri: str, board: Board, families: dict[str, str]) -> list[Row]:
    client = open_store(uri)
    parent = latest_sweep(client, board.sweep)
    if parent is None:
        return []
    selection = select_sweep(client, parent.info.run_id)
    plan = selection.plan
    finals_planned = plan.final_seeds if isinstance(plan.final_seeds, int) else len(plan.final_seeds or [])
    rows = {
        label: Row(label, families.get(label, "other"), {}, 0, finals_planned, plan.trials or 0)
        for label in board.rows
    }
    for run in selection.runs:
        row = rows.setdefault(
            case_of(run), Row(case_of(run), "other", {}, 0, finals_planned, plan.trials or 0)
        )
        cpu = math.fsum(v for _, v in run.curves.get("epoch_cpu_seconds", []))
        row.spent[phase(run)] = row.spent.get(phase(run), 0.0) + cpu  # pruned and unfinished too
        if phase(run) == "search":
            state = trial_state(run, plan.objective)
            row.searched[state] = row.searched.get(state, 0) + 1
        elif phase(run) == "final" and run.status == "FINISHED":
            row.finals_done += 1
    _add_finals(selection, rows, board)
    return list(rows.values())


def _add_finals(selection, rows: dict[str, Row], board: Board) -> None:
    try:
        report = build(selection)
    except CompareError:  # no case has a finished final yet
        return
    for case in report.tuning.cases if report.tuning else []:
        row = rows.get(case.label)
        if row is None or case.stats is None:
            continue
        row.chosen, row.edges, row.stats = case.chosen_values, case.edges, case.stats
        finals = case.stats.group.runs
        row.cpu_per_epoch = _mean(
            [_mean([v for _, v in r.curves.get("epoch_cpu_seconds", [])]) for r in finals]
        )
        row.reach_seconds = [s for s in (seconds_to_reach(r, board.reach) for r in finals) if s is not None]
        row.provenance = provenance(finals)
    _versus_baseline(list(rows.values()))


def _versus_baseline(rows: list[Row]) -> None:
    """Each measured row against BP, paired by seed; Holm's correction over the board's rows."""
    baseline = next((row.stats for row in rows if row.label == BASELINE and row.stats), None)
    if baseline is None:
        return
    others = [row for row in rows if row.stats is not None and row.label != BASELINE]
    for row in others:
        row.versus_bp = pair_test(row.stats, baseline)  # difference: row minus bp
    adjusted = holm([row.versus_bp.p_value for row in others])
    for row, p in zip(others, adjusted):
        row.versus_bp.p_adjusted = p


def refusal(spec: Path, overrides: list[str]) -> str:
    """The validator's first problem with ``spec`` under ``overrides`` (a refused rule's reason)."""
    from altlearn.errors import SpecError
    from altlearn.spec.load import load_spec

    try:
        load_spec(spec, overrides)
    except SpecError as exc:
        return exc.problems[0].message
    raise ValueError(f"{spec} with {overrides} validates: the rule is not refused, give it a row")


def seconds_to_reach(run: RunData, accuracy: float) -> float | None:
    """The training CPU-seconds until the end of the first epoch whose test accuracy reached
    ``accuracy``; None if no epoch did (or the run logged no CPU time)."""
    cpu = dict(run.curves.get("epoch_cpu_seconds", []))
    spent = 0.0
    for epoch, value in run.curves.get("test_accuracy", []):
        if epoch not in cpu:
            return None
        spent += cpu[epoch]
        if value >= accuracy:
            return spent
    return None


def provenance(runs: list[RunData]) -> dict[str, str]:
    """What the finals ran on: versions, commit, CPU; several values joined when they differ."""

    def values(key: str, short: int | None = None) -> str:
        found = sorted({(run.tags.get(key) or "?")[:short] for run in runs})
        return ", ".join(found)

    plugins = sorted({key for run in runs for key in run.tags if key.startswith("plugin.")})
    return {
        "altlearn": values("altlearn.version"),
        "plugins": "; ".join(f"{key[len('plugin.') :]} {values(key)}" for key in plugins) or "—",
        "commit": values("altlearn.commit", 8),
        "torch": values("torch.version"),
        "cpu": values("host.cpu"),
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(present) / len(present) if present else None
