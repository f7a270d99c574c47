"""From selected runs to a report: which runs count, their groups ranked, and what the reader must know.

Only FINISHED runs that logged a test accuracy enter the statistics; every other run is listed with
its status and the reason it was left out, so a half-finished sweep is never mistaken for a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from altlearn.compare.errors import CompareError
from altlearn.compare.grouping import check_setups, group_runs
from altlearn.compare.selection import RunData, Selection
from altlearn.compare.stats import GroupStats, rank, summarize


@dataclass
class ExcludedRun:
    run: RunData
    reason: str


@dataclass
class Report:
    selection: Selection
    groups: list[GroupStats]  # best first
    excluded: list[ExcludedRun]
    notes: list[str]
    by: list[str] | None = None
    files: dict[str, Path] = field(default_factory=dict)  # output name -> file written (write_outputs)
    logged_to_run: str | None = None  # the run the outputs were logged to as artifacts, if any


def build_report(selection: Selection, by: list[str] | None = None, strict: bool = True) -> Report:
    """``strict``: runs of different data sets or networks are an error unless ``by`` is given."""
    counted, excluded = [], []
    for run in selection.runs:
        reason = exclusion_reason(run)
        if reason:
            excluded.append(ExcludedRun(run, reason))
        else:
            counted.append(run)
    if not counted:
        statuses = "; ".join(f"{e.run.run_id[:8]} {e.reason}" for e in excluded)
        raise CompareError(f"none of {selection.description} can be compared yet: {statuses}")
    groups = group_runs(counted, by)
    notes = list(selection.notes) + check_setups(counted, groups, strict and not by)
    ranked = rank([summarize(group) for group in groups])
    for stats in ranked:
        notes.extend(stats.notes)
    notes.extend(_one_seed_notes(ranked))
    if ranked[0].p_note != "best":
        reference = next(g for g in ranked if g.p_note == "reference")
        notes.append(
            f"the best group {ranked[0].label!r} has one seed, so the p-values test against "
            f"{reference.label!r}, the best group with several seeds"
        )
    notes.extend(_stop_unmet_notes(ranked))
    notes.extend(_alignment_notes(counted))
    return Report(selection, ranked, excluded, notes, by)


def exclusion_reason(run: RunData) -> str | None:
    """Why a run stays out of the statistics, or None if it counts."""
    epochs = run.params.get("train.epochs", "?")
    done = run.curves["test_accuracy"][-1][0] if run.curves.get("test_accuracy") else 0
    if run.status == "RUNNING":
        return f"is still RUNNING ({done} of {epochs} epochs logged): left out until it finishes"
    if run.status == "FAILED":
        error = run.tags.get("altlearn.error", "no error recorded")
        return f"FAILED after {done} of {epochs} epochs ({error})"
    if run.status == "KILLED":
        return f"KILLED after {done} of {epochs} epochs (continue it with: altlearn resume {run.run_id})"
    if run.status != "FINISHED":
        return f"is {run.status}: not started"
    if not run.curves.get("test_accuracy"):
        return "FINISHED but logged no test_accuracy (not an altlearn training run?)"
    return None


def _one_seed_notes(groups: list[GroupStats]) -> list[str]:
    single = [g.label for g in groups if g.n == 1]
    if not single:
        return []
    which = ", ".join(repr(label) for label in single)
    return [
        f"{len(single)} group{'s have' if len(single) > 1 else ' has'} one seed ({which}): no std, "
        "no confidence interval and no t-test there; add seeds (e.g. altlearn run SPEC -s seed=1)"
    ]


def _stop_unmet_notes(groups: list[GroupStats]) -> list[str]:
    """Runs whose train.stop_when was never met ended at the epoch cap, not where the condition
    holds: a group's figures then mix two different ends of training."""
    notes = []
    for stats in groups:
        unmet = [run for run in stats.group.runs if run.tags.get("altlearn.stop_unmet")]
        if unmet:
            example, epochs = unmet[0], sorted({run.params.get("train.epochs", "?") for run in unmet})
            notes.append(
                f"{len(unmet)} of {len(stats.group.runs)} runs of {stats.label!r} trained all "
                f"{'/'.join(epochs)} epochs without meeting their stop: their "
                f"figures are at the cap, not at the stop (run {example.run_id[:8]}: "
                f"{example.tags['altlearn.stop_unmet']})"
            )
    return notes


def _alignment_notes(runs: list[RunData]) -> list[str]:
    without = sorted({run.rule for run in runs if not run.alignment_curves()})
    if not without:
        return []
    if len(without) == len({run.rule for run in runs}):
        return [
            "no run logged alignment metrics (tracking.alignment_every is 0, or the rules have no "
            "update to compare with the BP gradient): the alignment figure is left out"
        ]
    return [
        f"no alignment metrics for rule {', '.join(without)}, so no alignment panel for "
        f"{'them' if len(without) > 1 else 'it'} ({'; '.join(_why_unaligned(rule, runs) for rule in without)})"
    ]


def _why_unaligned(rule: str, runs: list[RunData]) -> str:
    """Why a rule's runs logged no alignment: the spec switched it off, or the rule has nothing to
    set against the BP gradient (bp is that gradient; ff, goup following bp, some plugins)."""
    if all(run.params.get("tracking.alignment_every") == "0" for run in runs if run.rule == rule):
        return f"{rule} ran with tracking.alignment_every 0"
    if rule == "bp":
        return "bp's update is the BP gradient itself"
    return f"{rule}'s update has nothing to compare with the BP gradient"
