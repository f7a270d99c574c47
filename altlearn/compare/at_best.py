"""The report of "does rule X beat rule Y, each at its best?": a search sweep's finals per case, or
a grid's best configuration per --per value (--select-by), with the pairwise tests between them.

Which report a selection gets: a sweep with a search (its runs carry ``altlearn.phase``) gets the
search's; ``--select-by`` the grid's choice; anything else the ordinary comparison of every group.
"""

from __future__ import annotations

from dataclasses import replace

from altlearn.compare.best_of import check_select_by, choose
from altlearn.compare.comparison import Report, build_report, counted_runs, ranked_report
from altlearn.compare.grouping import Group, check_setups, group_runs
from altlearn.compare.search import (
    CaseChoice,
    Tuning,
    case_of,
    chosen_trial,
    edge_warnings,
    is_search,
    phase,
    search_candidates,
    search_values,
)
from altlearn.compare.selection import RunData, Selection
from altlearn.errors import CompareError


def build(
    selection: Selection,
    by: list[str] | None = None,
    strict: bool = True,
    select_by: str | None = None,
    per: list[str] | None = None,
) -> Report:
    direction = check_select_by(select_by, per)
    if selection.sweep_run_id is None:
        selection = _without_search_trials(selection)
    elif is_search(selection.runs):
        if select_by or by:
            option = "--select-by" if select_by else "--by"
            raise CompareError(
                f"{option}: {selection.description} is a search: each case chose its configuration on "
                "its own objective, and its finals are grouped by case (--select-by and --by are "
                "for grid sweeps and experiments)"
            )
        return search_report(selection)
    if select_by and direction:
        return select_report(selection, by, strict, select_by, per or ["rule.type"], direction)
    return build_report(selection, by, strict)


def _without_search_trials(selection: Selection) -> Selection:
    """An experiment's (or the given ids') runs without any search's trials: those chose on
    validation and logged no test accuracy; a search is compared as a whole with --sweep."""
    trials = [run for run in selection.runs if phase(run) == "search"]
    if not trials:
        return selection
    runs = [run for run in selection.runs if phase(run) != "search"]
    if not runs:
        raise CompareError(
            f"{selection.description} are all search trials, which choose on validation and report "
            "no test accuracy: compare their sweep as a whole with --sweep NAME"
        )
    sweeps = sorted({run.tags.get("altlearn.sweep", "?") for run in trials})
    note = (
        f"{len(trials)} search trial{'s' if len(trials) > 1 else ''} left out (they choose on validation; "
        f"compare a search as a whole with --sweep {sweeps[0]}"
        + (f" and {len(sweeps) - 1} more sweeps" if len(sweeps) > 1 else "")
        + ")"
    )
    return replace(selection, runs=runs, notes=[*selection.notes, note])


def search_report(selection: Selection) -> Report:
    plan = selection.plan
    objective = plan.objective if plan else "val_accuracy"
    direction, objective_at = (plan.direction, plan.objective_at) if plan else ("maximize", "last")
    finals = [run for run in selection.runs if phase(run) == "final"]
    searched = [run for run in selection.runs if phase(run) == "search"]
    others = [run for run in selection.runs if phase(run) not in ("search", "final")]
    if not finals:
        raise CompareError(_no_finals(selection, searched, objective))
    counted, excluded, notes = counted_runs(finals, f"the finals of {selection.description}")
    groups = _case_groups(counted)
    notes = list(selection.notes) + notes + check_setups(counted, groups, strict=False)
    notes += [
        f"run {run.run_id[:8]} ({run.name}) is neither a search trial nor a final: left out" for run in others
    ]
    report = ranked_report(selection, groups, excluded, notes)
    # every case with a search trial or a final, those with finals that count first
    labels = list(dict.fromkeys([g.label for g in groups] + [case_of(r) for r in searched + finals]))
    cases = []
    for label in labels:
        mine = [run for run in searched if case_of(run) == label]
        its_finals = [run for run in finals if case_of(run) == label]
        candidates = search_candidates(mine, objective, objective_at, direction)
        case = CaseChoice(label, candidates, chosen_trial(candidates, its_finals, direction))
        case.chosen_values = _chosen_values(case, its_finals, report.notes)
        # an unlabelled case's own axes are found by its overrides, which its runs' params hold
        case.axes = plan.axes_for(label, (its_finals + mine)[0].params) if plan else {}
        case.edges = edge_warnings(case.chosen_values, case.axes)
        cases.append(case)
    tuning = Tuning("search", objective, direction, objective_at, cases, plan=plan)
    report.notes.extend(_search_notes(tuning, selection))
    return _attach(report, tuning)


def select_report(
    selection: Selection, by: list[str] | None, strict: bool, metric: str, per: list[str], direction: str
) -> Report:
    counted, excluded, notes = counted_runs(selection.runs, selection.description)
    groups = group_runs(counted, by)
    notes = list(selection.notes) + notes + check_setups(counted, groups, strict and not by, by)
    cases = choose(groups, metric, per, direction)
    by_label = {group.label: group for group in groups}
    chosen = [by_label[case.chosen.name] for case in cases if case.chosen is not None]
    for case in cases:
        if case.chosen is None:
            notes.append(
                f"{case.label}: no configuration logged {metric} in every seed, so none is chosen "
                f"(a run without a validation split, data.val_size 0, logs no val_* metrics)"
            )
    if not chosen:
        raise CompareError(f"--select-by {metric}: no configuration of {selection.description} logged it")
    report = ranked_report(selection, chosen, excluded, notes, by)
    tuning = Tuning("select", metric, direction, "last", cases, per=per)
    for case in cases:
        report.notes.extend(
            f"warning: {case.label}: {edge}: the best may lie beyond it" for edge in case.edges.values()
        )
    return _attach(report, tuning)


def _case_groups(runs: list[RunData]) -> list[Group]:
    """The finals grouped by their case (in order of appearance), each labelled by it."""
    groups: dict[str, Group] = {}
    for run in runs:
        label = case_of(run)
        groups.setdefault(label, Group((("case", label),), [], label)).runs.append(run)
    return list(groups.values())


def _chosen_values(case: CaseChoice, finals: list[RunData], notes: list[str]) -> dict:
    """What the case's finals ran (their tag), else the chosen trial's values."""
    ran = [values for values in map(search_values, finals) if values is not None]
    distinct = {repr(sorted(values.items())) for values in ran}
    if len(distinct) > 1:
        notes.append(
            f"the finals of {case.label!r} ran {len(distinct)} different configurations: their "
            "statistics mix them (a search continued after its finals ran?)"
        )
    if ran:
        return ran[0]
    return dict(case.chosen.values) if case.chosen else {}


def _attach(report: Report, tuning: Tuning) -> Report:
    """Each case to its finals' statistics (cases in the groups' order, best first); the report's
    pairwise tests between them give the groups' p-values against the best."""
    for case in tuning.cases:
        name = case.chosen.name if tuning.mode == "select" and case.chosen else case.case
        case.stats = next((stats for stats in report.groups if stats.group.label == name), None)
    rank = {id(stats): index for index, stats in enumerate(report.groups)}
    tuning.cases.sort(key=lambda c: rank.get(id(c.stats), len(rank)))
    report.tuning = tuning
    return report


def _no_finals(selection: Selection, searched: list[RunData], objective: str) -> str:
    done = sum(run.status == "FINISHED" and bool(run.curves.get(objective)) for run in searched)
    return (
        f"{selection.description} is a search with no final runs yet ({done} of {len(searched)} "
        "search trials complete): its finals run each case's chosen configuration on fresh seeds "
        "once the case's search has ended; compare again then"
    )


def _search_notes(tuning: Tuning, selection: Selection) -> list[str]:
    notes = []
    if tuning.plan is None:
        notes.append(
            f"the sweep file is not among the artifacts of run {selection.sweep_run_id} (sweep.yaml): "
            "the objective is taken to be val_accuracy at the last epoch, and without the ranges no "
            "chosen value is checked against the edge of its range"
        )
    for case in tuning.cases:
        rank = case.rank(tuning.direction)
        if case.chosen is not None and rank not in (None, 1):
            notes.append(
                f"the finals of {case.label!r} re-run {case.chosen.name}, which ranks {rank} of "
                f"{len(case.ranked(tuning.direction))} complete search trials now"
            )
        unfinished = case.count("failed") + case.count("running")
        if unfinished:
            notes.append(
                f"{case.label}: {unfinished} search trial{'s' if unfinished > 1 else ''} failed or "
                "did not finish: not part of its choice"
            )
        notes.extend(
            f"warning: {case.label}: {edge}: the best value may lie outside it"
            for edge in case.edges.values()
        )
    return notes
