"""Each case at its best: which configuration a case's search (or a grid's --select-by) chose, and
the evidence for it — the objective's value and its rank, how many trials were run and pruned, what
they cost — beside the test accuracy of the chosen configuration over fresh seeds.

A search sweep's runs carry ``altlearn.phase``: ``search`` trials (validation only: they choose)
and ``final`` runs (the chosen configuration on fresh seeds: they report). Search trials never
enter the statistics of the finals, and pruned or superseded runs enter no statistics at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from altlearn.compare.labels import number, range_text, readable
from altlearn.compare.search_file import SearchPlan
from altlearn.compare.selection import Curve, RunData
from altlearn.compare.stats import GroupStats
from altlearn.spec.axes import AxisRange
from altlearn.tracking.sweep_tags import (
    CASE_LABEL_TAG,
    CHOSEN_TAG,
    NUMBER_TAG,
    PARAMS_TAG,
    PHASE_TAG,
    PRUNED_TAG,
)

#: a metric a run may log with the CPU time its process used, in seconds (cumulative)
CPU_METRIC = "epoch_cpu_seconds"  # per epoch: a run's CPU time is their sum


@dataclass
class Candidate:
    """One configuration a case chose among: a search trial, or a grid's configuration (its seeds)."""

    name: str  # "trial 3", or the configuration's label
    values: dict[str, Any]  # the searched (or varied) values, under their spec paths
    state: str  # complete, pruned, failed, running (which includes interrupted)
    value: float | None  # the objective as the choice ranks it; None unless complete
    runs: list[RunData]
    number: int | None = None  # a search trial's number
    curve: Curve = field(default_factory=list)  # the objective per epoch (a search trial's)

    @property
    def epochs(self) -> int:
        return sum(run_epochs(run) for run in self.runs)

    @property
    def seconds(self) -> float:
        return math.fsum(run_seconds(run) for run in self.runs)


@dataclass
class CaseChoice:
    case: str  # the case as the sweep names it ("rule.type=fa", "fa"), or the --per value
    candidates: list[Candidate]
    chosen: Candidate | None
    axes: dict[str, AxisRange] = field(default_factory=dict)  # ranges (search) or values tried (grid)
    stats: GroupStats | None = None  # the chosen configuration's test accuracy over its seeds
    edges: dict[str, str] = field(default_factory=dict)  # path -> why its chosen value is at an edge
    chosen_values: dict[str, Any] = field(default_factory=dict)  # what the finals ran

    @property
    def label(self) -> str:
        return readable(self.case)

    @property
    def rule(self) -> str:
        runs = [run for candidate in self.candidates for run in candidate.runs]
        runs += self.stats.group.runs if self.stats else []
        return runs[0].rule if runs else "?"

    def count(self, state: str) -> int:
        return sum(candidate.state == state for candidate in self.candidates)

    def ranked(self, direction: str) -> list[Candidate]:
        """The complete candidates, best first (ties: the earlier one)."""
        complete = [c for c in self.candidates if c.state == "complete" and c.value is not None]
        sign = -1.0 if direction == "maximize" else 1.0
        return sorted(complete, key=lambda c: (sign * (c.value or 0.0), c.number or 0))

    def rank(self, direction: str) -> int | None:
        ranked = self.ranked(direction)
        return ranked.index(self.chosen) + 1 if self.chosen in ranked else None

    @property
    def epochs(self) -> int:
        return sum(c.epochs for c in self.candidates)

    @property
    def seconds(self) -> float:
        return math.fsum(c.seconds for c in self.candidates)


@dataclass
class Tuning:
    """The "each at its best" part of a report."""

    mode: str  # "search" (a sweep's search, then finals) or "select" (--select-by over a grid)
    objective: str
    direction: str
    objective_at: str  # last | best
    cases: list[CaseChoice]  # in the order of the report's groups, best first
    plan: SearchPlan | None = None
    per: list[str] = field(default_factory=list)  # select mode: the params a case is chosen per


def run_epochs(run: RunData) -> int:
    """Epochs the run trained: the last step of its per-epoch curves."""
    steps = [curve[-1][0] for key, curve in run.curves.items() if curve and not key.startswith("alignment/")]
    return max(steps, default=0)


def run_seconds(run: RunData) -> float:
    """The run's training CPU time if it logged it, else its training time: the sum over epochs of
    epoch_cpu_seconds, else of epoch_seconds."""
    curve = run.curves.get(CPU_METRIC) or run.curves.get("epoch_seconds", [])
    return math.fsum(value for _, value in curve)


def phase(run: RunData) -> str:
    return run.tags.get(PHASE_TAG, "")


def is_search(runs: list[RunData]) -> bool:
    return any(phase(run) in ("search", "final") for run in runs)


def search_values(run: RunData) -> dict[str, Any] | None:
    """The searched values a run was given (a final: its case's chosen ones), from their tag."""
    try:
        values = json.loads(run.tags.get(PARAMS_TAG, ""))
    except ValueError:
        return None
    return values if isinstance(values, dict) else None


def case_of(run: RunData) -> str:
    return run.tags.get(CASE_LABEL_TAG) or run.tags.get("altlearn.case", "?")


def trial_state(run: RunData, objective: str) -> str:
    if PRUNED_TAG in run.tags:
        return "pruned"
    if run.status == "FINISHED":
        return "complete" if run.curves.get(objective) else "failed"
    return "failed" if run.status == "FAILED" else "running"


def objective_value(curve: Curve, objective_at: str, direction: str) -> float | None:
    """The objective as the search ranks it: after the last epoch, or its best over the epochs."""
    finite = [value for _, value in curve if math.isfinite(value)]
    if not curve or not finite:
        return None
    if objective_at == "best":
        return max(finite) if direction == "maximize" else min(finite)
    last = curve[-1][1]
    return last if math.isfinite(last) else None


def search_candidates(
    runs: list[RunData], objective: str, objective_at: str, direction: str
) -> list[Candidate]:
    """A case's search trials, one per number: its newest run (superseded runs are gone already)."""
    newest: dict[int, RunData] = {}
    for run in sorted(runs, key=lambda r: -r.start_time):
        tag = run.tags.get(NUMBER_TAG, "")
        if tag.isdigit():
            newest.setdefault(int(tag), run)
    candidates = []
    for trial_number, run in sorted(newest.items()):
        state = trial_state(run, objective)
        curve = run.curves.get(objective, [])
        value = objective_value(curve, objective_at, direction) if state == "complete" else None
        if state == "complete" and value is None:
            state = "failed"  # a non-finite objective cannot be ranked
        values = search_values(run) or {}
        candidates.append(
            Candidate(f"trial {trial_number}", values, state, value, [run], trial_number, curve)
        )
    return candidates


def chosen_trial(candidates: list[Candidate], finals: list[RunData], direction: str) -> Candidate | None:
    """The trial the finals re-run (their ``altlearn.chosen_trial``), else the best complete one."""
    numbers = {run.tags.get(CHOSEN_TAG) for run in finals} - {None}
    if len(numbers) == 1:
        number = numbers.pop()
        found = next((c for c in candidates if str(c.number) == number), None)
        if found is not None:
            return found
    complete = [c for c in candidates if c.state == "complete" and c.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    return min(complete, key=lambda c: (sign * (c.value or 0.0), c.number or 0), default=None)


def edge_warnings(values: dict[str, Any], axes: dict[str, AxisRange]) -> dict[str, str]:
    """Per chosen value in the outer 5 % of its range, 'optimizer.lr = 0.0813 lies at the high
    edge of its range log-uniform [1e-4, 0.1]': the best value may lie beyond it."""
    warnings = {}
    for path, value in values.items():
        axis = axes.get(path)
        side = axis.at_edge(value) if axis else None
        if axis is not None and side:
            warnings[path] = (
                f"{path} = {number(value)} lies at the {side} edge of its range {range_text(axis)}"
            )
    return warnings
