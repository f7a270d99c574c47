"""From selected runs to a report: which runs count, their groups ranked, and what the reader must know.

Only FINISHED runs that logged a test accuracy enter the statistics; every other run is listed with
its status and the reason it was left out, so a half-finished sweep is never mistaken for a whole one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from altlearn.compare.grouping import Group, check_setups, group_runs
from altlearn.compare.pairwise import PairTest, compare_pairs, versus_best
from altlearn.compare.search import Tuning
from altlearn.compare.selection import RunData, Selection
from altlearn.compare.stats import GroupStats, rank, summarize
from altlearn.errors import CompareError
from altlearn.tracking.sweep_tags import PRUNED_TAG, SUPERSEDED_TAG


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
    tuning: Tuning | None = None  # each case at its best: a search sweep, or --select-by
    pairs: list[PairTest] = field(default_factory=list)  # every pair of groups tested
    correction: str | None = None  # "holm" with more than two groups
    exported_study: Path | None = None  # --export-study: the Optuna storage written


def build_report(selection: Selection, by: list[str] | None = None, strict: bool = True) -> Report:
    """``strict``: runs of different data sets or networks are an error unless ``by`` is given."""
    counted, excluded, notes = counted_runs(selection.runs, selection.description)
    groups = group_runs(counted, by)
    notes = list(selection.notes) + notes + check_setups(counted, groups, strict and not by, by)
    return ranked_report(selection, groups, excluded, notes, by)


def counted_runs(runs: list[RunData], description: str) -> tuple[list[RunData], list[ExcludedRun], list[str]]:
    """The runs that count (FINISHED, with a finite final test accuracy, their non-finite points
    taken out), those that do not with the reason, and a note on the non-finite points; an error
    when none counts."""
    counted, excluded = [], []
    for run in runs:
        reason = exclusion_reason(run)
        if reason:
            excluded.append(ExcludedRun(run, reason))
        else:
            counted.append(run)
    if not counted:
        statuses = "; ".join(f"{e.run.run_id[:8]} {e.reason}" for e in excluded)
        raise CompareError(f"none of {description} can be compared yet: {statuses}")
    counted, non_finite = without_non_finite(counted)
    return counted, excluded, non_finite


def ranked_report(
    selection: Selection, groups: list[Group], excluded: list[ExcludedRun], notes: list[str], by=None
) -> Report:
    """The groups summarised and ranked, every pair tested (paired by seed where both ran the same
    seeds, Holm-corrected over the pairs), with the notes they call for."""
    ranked = rank([summarize(group) for group in groups])
    pairs, correction = compare_pairs(ranked) if len(ranked) >= 2 else ([], None)
    versus_best(pairs, ranked)
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
    notes.extend(_alignment_notes([run for group in groups for run in group.runs]))
    return Report(selection, ranked, excluded, notes, by, pairs=pairs, correction=correction)


def exclusion_reason(run: RunData) -> str | None:
    """Why a run stays out of the statistics, or None if it counts."""
    epochs = run.params.get("train.epochs", "?")
    done = run.curves["test_accuracy"][-1][0] if run.curves.get("test_accuracy") else 0
    if PRUNED_TAG in run.tags:  # a search's trial it stopped early: evidence, never a result
        return f"was pruned by its search after epoch {run.tags[PRUNED_TAG]}: a pruned run never counts"
    if SUPERSEDED_TAG in run.tags:  # --experiment or ids (--sweep leaves these out with a note)
        return "is tagged altlearn.superseded: its sweep replaced it (a trial started again) or dropped it"
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
    final = run.curves["test_accuracy"][-1][1]
    if not math.isfinite(final):
        # A nan in the mean makes every number of its group nan, and its group "best" in the ranking.
        return f"FINISHED but its final test_accuracy is {final} (did it diverge?): no number to count"
    if not 0.0 <= final <= 1.0:  # written into the store by hand or by another tool: not altlearn's
        return f"FINISHED but its final test_accuracy is {final}, not a fraction from 0 to 1: not counted"
    return None


def without_non_finite(runs: list[RunData]) -> tuple[list[RunData], list[str]]:
    """The runs with every nan or inf point taken out of their curves (the figures and the numbers
    read finite values only), and a note naming the runs that had any. A run whose final test
    accuracy is not finite never gets here: exclusion_reason leaves it out."""
    cleaned, found = [], []
    for run in runs:
        bad = {key: text for key, curve in run.curves.items() if (text := _spelled(curve))}
        if not bad:
            cleaned.append(run)
            continue
        curves = {key: [(s, v) for s, v in curve if math.isfinite(v)] for key, curve in run.curves.items()}
        cleaned.append(replace(run, curves={key: curve for key, curve in curves.items() if curve}))
        found.append(f"run {run.run_id[:8]} ({run.name}): " + ", ".join(f"{k} {v}" for k, v in bad.items()))
    if not found:
        return cleaned, []
    more = f"; and {len(found) - 5} more runs" if len(found) > 5 else ""
    return cleaned, [
        "non-finite metric values left out of the statistics and figures: " + "; ".join(found[:5]) + more
    ]


def _spelled(curve) -> str:
    """'nan at step 3, inf at step 4' for a curve's non-finite points (the first few; '' if none)."""
    points = [f"{value} at step {step}" for step, value in curve if not math.isfinite(value)]
    return ", ".join(points[:3]) + (f" (+{len(points) - 3} more)" if len(points) > 3 else "")


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
    once = sorted(
        {run.rule for run in runs if run.alignment_curves()}
        - {run.rule for run in runs if run.alignment_over_training()}
    )
    notes = [_measured_once_note(once, runs)] if once else []
    if not without:
        return notes
    if len(without) == len({run.rule for run in runs}):
        return [
            "no run logged alignment metrics (tracking.alignment_every is 0, or the rules have no "
            "update to compare with the BP gradient): the alignment figure is left out"
        ]
    return [
        f"no alignment metrics for rule {', '.join(without)}, so no alignment panel for "
        f"{'them' if len(without) > 1 else 'it'} ({'; '.join(_why_unaligned(rule, runs) for rule in without)})",
        *notes,
    ]


def _measured_once_note(rules: list[str], runs: list[RunData]) -> str:
    every = sorted({run.params.get("tracking.alignment_every", "?") for run in runs if run.rule in rules})
    return (
        f"alignment of rule {', '.join(rules)} was measured only once, at step 0 before any update "
        f"(tracking.alignment_every {'/'.join(every)} is more than the runs' training steps, or they "
        "stopped before a second measurement), so "
        f"{'they have' if len(rules) > 1 else 'it has'} no alignment panel: the angle at the random "
        "start says nothing of training; lower tracking.alignment_every to see it"
    )


def _why_unaligned(rule: str, runs: list[RunData]) -> str:
    """Why a rule's runs logged no alignment: the spec switched it off, or the rule has nothing to
    set against the BP gradient (bp is that gradient; ff, goup following bp, some plugins)."""
    if all(run.params.get("tracking.alignment_every") == "0" for run in runs if run.rule == rule):
        return f"{rule} ran with tracking.alignment_every 0"
    if rule == "bp":
        return "bp's update is the BP gradient itself"
    return f"{rule}'s update has nothing to compare with the BP gradient"
