"""The tables of "each at its best": per case the chosen configuration, the evidence for the choice
and its cost beside the test accuracy over the finals' seeds (the pairwise tests between the cases:
altlearn.compare.table_pairs).

Cells for a reader (rich, Markdown, HTML) show labels readably and round; records (JSON, CSV) keep
the exact labels, the chosen values under their spec paths and the unrounded numbers.
"""

from __future__ import annotations

from typing import Any

from altlearn.compare.formatting import interval, mean_std, p_value_text, seconds_text
from altlearn.compare.labels import number, range_text, readable
from altlearn.compare.search import CaseChoice, Tuning
from altlearn.compare.stats import GroupStats
from altlearn.text import printable


def at_best_headers(tuning: Tuning) -> tuple[str, ...]:
    return (
        "case",
        "chosen",
        f"{objective_header(tuning.objective)} (rank)",
        "search" if tuning.mode == "search" else "configurations",
        "cost",
        "seeds",
        "test acc % ± std",
        "95% CI",
        "p vs best",
    )


def objective_header(metric: str) -> str:
    return f"{metric} %" if "accuracy" in metric else metric


def objective_text(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if "accuracy" in metric else f"{value:.4g}"


def chosen_text(case: CaseChoice) -> str:
    """``lr 0.0813 (at edge), weight_decay 0``: the chosen values, an edge marked where it is one."""
    if not case.chosen_values and case.chosen is None:
        return "none complete"
    names = [path.rsplit(".", 1)[-1] for path in case.chosen_values]
    parts = []
    for (path, value), name in zip(case.chosen_values.items(), names):
        shown = number(value) if isinstance(value, (int, float)) else str(value)
        key = name if names.count(name) == 1 else path
        parts.append(f"{key} {shown}" + (" (at edge)" if path in case.edges else ""))
    return printable(", ".join(parts) or "-")


def evidence_text(tuning: Tuning, case: CaseChoice) -> str:
    value = case.chosen.value if case.chosen else None
    rank = case.rank(tuning.direction)
    complete = len(case.ranked(tuning.direction))
    where = f" ({rank} of {complete})" if rank else ""
    return objective_text(tuning.objective, value) + where


def budget_text(tuning: Tuning, case: CaseChoice) -> str:
    if tuning.mode == "select":
        return str(len(case.candidates))
    parts = [f"{len(case.candidates)} trials", f"{case.count('pruned')} pruned"]
    parts += [f"{n} failed" for n in [case.count("failed") + case.count("running")] if n]
    return ", ".join(parts)


def cost_text(tuning: Tuning, case: CaseChoice) -> str:
    epochs = f"{case.epochs} {'trial-epochs' if tuning.mode == 'search' else 'run-epochs'}"
    return epochs + (f", {seconds_text(case.seconds)} s of training" if case.seconds > 0 else "")


def at_best_cells(tuning: Tuning, case: CaseChoice) -> list[str]:
    stats = case.stats
    finals = (
        [str(stats.n), mean_std(stats.test_accuracy), interval(stats.test_accuracy), p_value_text(stats)]
        if stats
        else ["0", "-", "-", "no finals"]
    )
    return [
        printable(case.label),
        chosen_text(case),
        evidence_text(tuning, case),
        budget_text(tuning, case),
        cost_text(tuning, case),
        *finals,
    ]


def at_best_explanation(tuning: Tuning, corrected: bool) -> str:
    where = "after the last epoch" if tuning.objective_at == "last" else "at its best epoch"
    way = "maximised" if tuning.direction == "maximize" else "minimised"
    if tuning.mode == "search":
        chosen = f"the complete search trial with the best {tuning.objective} {where}"
        seeds, cost = "the finals' fresh seeds", "the search's trial-epochs and seconds"
    else:
        chosen = f"the configuration with the best mean {tuning.objective} over its seeds {where}"
        seeds, cost = "the chosen configuration's seeds", "epochs and seconds of every configuration tried"
    return (
        f"chosen: {chosen} ({way}; validation, never test), rank among those complete; test accuracy: "
        f"mean ± std and 95% t interval over {seeds}; cost: {cost} (the training epochs' CPU time "
        "where the runs logged it, else their wall time; evaluation, data loading and each run's start "
        "are not counted); p vs best: the pairwise test against the best case"
        + (", Holm-corrected" if corrected else "")
    )


def tuning_record(tuning: Tuning) -> dict[str, Any]:
    """Everything the tables show, exact: JSON's ``tuning``."""
    return {
        "mode": tuning.mode,
        "objective": tuning.objective,
        "direction": tuning.direction,
        "objective_at": tuning.objective_at,
        "per": tuning.per or None,
        "cases": [case_record(tuning, case) for case in tuning.cases],
    }


def case_record(tuning: Tuning, case: CaseChoice) -> dict[str, Any]:
    chosen = case.chosen
    return {
        "case": case.case,
        "label": case.label,
        "rule": case.rule,
        "chosen": case.chosen_values,
        "chosen_from": chosen.name if chosen else None,
        "chosen_trial": chosen.number if chosen else None,
        "objective_value": chosen.value if chosen else None,
        "objective_rank": case.rank(tuning.direction),
        "candidates": len(case.candidates),
        "complete": case.count("complete"),
        "pruned": case.count("pruned"),
        "failed": case.count("failed") + case.count("running"),
        "trial_epochs": case.epochs,
        "cpu_seconds": case.seconds,
        "edges": case.edges,
        "ranges": {path: range_text(axis) for path, axis in case.axes.items()},
        "group": case.stats.label if case.stats else None,
        "trials": [
            {"name": c.name, "number": c.number, "state": c.state, "value": c.value, "values": c.values}
            | {"run_ids": [run.run_id for run in c.runs]}
            for c in case.candidates
        ],
    }


def case_of_group(tuning: Tuning, stats: GroupStats) -> CaseChoice | None:
    return next((case for case in tuning.cases if case.stats is stats), None)


def case_label(tuning: Tuning, stats: GroupStats) -> str:
    """A group's case as the reader knows it (``fa``, not the chosen configuration's label)."""
    case = case_of_group(tuning, stats)
    return case.label if case is not None else readable(stats.label)
