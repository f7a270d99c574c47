"""The figures of a search (and of a grid read with --select-by): how the objective depends on each
searched value, and how the search progressed.

- search_landscape: one row per case, one panel per searched spec path: the objective of each
  trial against its value (a log axis for a log-uniform range; a choice's values as categories),
  pruned trials as crosses at the value they were stopped with, the chosen one as a star;
- optimisation_history: per case, the objective per trial number and the best so far.

Each case is drawn in its rule's colour, as in every other figure of the report.
"""

from __future__ import annotations

import math
from typing import Any

from altlearn.compare.comparison import Report
from altlearn.compare.labels import number, rule_colour
from altlearn.compare.plotting import integer_ticks, new_figure, shown
from altlearn.compare.search import Candidate, CaseChoice, Tuning
from altlearn.spec.axes import AxisRange

PRUNED_STYLE = {"marker": "x", "s": 36, "alpha": 0.6, "linewidths": 1.2}
CHOSEN_STYLE = {"marker": "*", "s": 220, "edgecolors": "black", "linewidths": 0.8, "zorder": 5}
LOG_SPAN = 100.0  # without a range from the sweep file, values spanning this factor get a log axis


def _scale(tuning: Tuning) -> float:
    """Accuracies are drawn in percent, as every other figure draws them."""
    return 100.0 if "accuracy" in tuning.objective else 1.0


def _ylabel(tuning: Tuning) -> str:
    unit = " (%)" if "accuracy" in tuning.objective else ""
    return f"{tuning.objective}{unit}"


def _shown_value(candidate: Candidate) -> float | None:
    """A complete trial's objective; a pruned one's last value before it was stopped."""
    if candidate.state == "complete":
        return candidate.value
    if candidate.state == "pruned" and candidate.curve:
        value = candidate.curve[-1][1]
        return value if math.isfinite(value) else None
    return None


def _paths(tuning: Tuning) -> list[str]:
    return list(dict.fromkeys(path for case in tuning.cases for c in case.candidates for path in c.values))


def search_landscape(report: Report):
    tuning = report.tuning
    if tuning is None or not any(c.values for case in tuning.cases for c in case.candidates):
        return None
    paths = _paths(tuning)
    rows, columns = len(tuning.cases), len(paths)
    figure, axes = new_figure(max(3.8 * columns, 6.0), 3.0 * rows + 0.6, (rows, columns))
    for row, case in enumerate(tuning.cases):
        for column, path in enumerate(paths):
            _landscape_panel(axes[row][column], tuning, case, path)
    if tuning.mode == "search":
        title = f"{tuning.objective} of each search trial by searched value (★ chosen, × pruned)"
    else:
        title = f"mean {tuning.objective} of each configuration by varied value (★ chosen)"
    figure.suptitle(title, fontsize="medium")
    return figure


def _landscape_panel(ax, tuning: Tuning, case: CaseChoice, path: str) -> None:
    colour, scale = rule_colour(case.rule), _scale(tuning)
    axis = case.axes.get(path)
    shown_values = [(c, c.values[path], _shown_value(c)) for c in case.candidates if path in c.values]
    if not shown_values:  # a path another case searches (its own axis): nothing to draw here
        ax.set_visible(False)
        return
    points = [(c, x, y) for c, x, y in shown_values if y is not None]
    categories = _categories(axis, [x for _, x, _ in points])
    position = (lambda x: categories.index(x)) if categories is not None else (lambda x: x)
    for candidate, x, y in points:
        style: dict[str, Any] = PRUNED_STYLE if candidate.state == "pruned" else {"marker": "o", "s": 28}
        ax.scatter([position(x)], [y * scale], color=colour, **style)
    chosen = case.chosen
    if chosen is not None and chosen.value is not None and path in chosen.values:
        ax.scatter([position(chosen.values[path])], [chosen.value * scale], color=colour, **CHOSEN_STYLE)
    if categories is not None:
        ax.set_xticks(range(len(categories)), [_text(v) for v in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)
    elif _log_axis(axis, [x for _, x, _ in points]):
        ax.set_xscale("log")
    if categories is None and axis is not None:
        numbers = [x for _, x, _ in points if isinstance(x, (int, float)) and not isinstance(x, bool)]
        _show_range(ax, axis, [float(x) for x in numbers])
    ax.set_title(f"{shown(case.label)}: {shown(path)}", fontsize="medium", color=colour)
    ax.set(xlabel=shown(path) + (" (log)" if ax.get_xscale() == "log" else ""), ylabel=_ylabel(tuning))
    ax.grid(alpha=0.3, which="both")


def _show_range(ax, axis: AxisRange, drawn: list[float]) -> None:
    """The searched range's ends as dashed lines, the axis spanning the range (and any value drawn
    outside it, from a sweep whose range changed): a chosen value at its edge then shows as one,
    not as the rightmost of the points."""
    ends = sorted(float(v) for v in axis.values)
    for end in ends:
        ax.axvline(end, color="grey", linestyle="--", linewidth=0.8)
    low, high = min([ends[0], *drawn]), max([ends[-1], *drawn])
    if axis.log and low > 0:
        pad = (high / low) ** 0.04
        ax.set_xlim(low / pad, high * pad)
    else:
        pad = 0.04 * (high - low) or 0.5
        ax.set_xlim(low - pad, high + pad)


def _categories(axis: AxisRange | None, values: list[Any]) -> list[Any] | None:
    """The categories of a choice axis (or of values that are not all numbers), in their order."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if axis is not None and axis.kind == "choice":
        return list(axis.values) + [v for v in dict.fromkeys(values) if v not in axis.values]
    return None if numeric else sorted(dict.fromkeys(values), key=str)


def _log_axis(axis: AxisRange | None, values: list[Any]) -> bool:
    if axis is not None:
        return axis.log
    positive = [v for v in values if isinstance(v, (int, float)) and v > 0]
    return len(positive) == len(values) > 1 and max(positive) / min(positive) >= LOG_SPAN


def _text(value: Any) -> str:
    return shown(number(value) if isinstance(value, (int, float)) else str(value))


def optimisation_history(report: Report):
    tuning = report.tuning
    if tuning is None or tuning.mode != "search" or not tuning.cases:
        return None
    columns = min(3, len(tuning.cases))
    rows = math.ceil(len(tuning.cases) / columns)
    figure, axes = new_figure(4.6 * columns, 3.6 * rows + 0.4, (rows, columns))
    for ax in axes.flat[len(tuning.cases) :]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, tuning.cases):
        _history_panel(ax, tuning, case)
    figure.suptitle(
        f"{tuning.objective} per search trial, the best so far (★ chosen, × pruned)", fontsize="medium"
    )
    return figure


def _history_panel(ax, tuning: Tuning, case: CaseChoice) -> None:
    colour, scale = rule_colour(case.rule), _scale(tuning)
    maximise = tuning.direction == "maximize"
    best: float | None = None
    steps: tuple[list[int], list[float]] = ([], [])
    for candidate in sorted(case.candidates, key=lambda c: c.number or 0):
        y, number_ = _shown_value(candidate), candidate.number or 0
        if y is None:
            continue
        style: dict[str, Any] = PRUNED_STYLE if candidate.state == "pruned" else {"marker": "o", "s": 28}
        ax.scatter([number_], [y * scale], color=colour, **style)
        if candidate.state == "complete":
            best = y if best is None or (y > best if maximise else y < best) else best
        if best is not None:
            steps[0].append(number_)
            steps[1].append(best * scale)
    if steps[0]:
        ax.step(steps[0], steps[1], where="post", color=colour, label="best so far")
        ax.legend(fontsize="small")
    chosen = case.chosen
    if chosen is not None and chosen.value is not None and chosen.number is not None:
        ax.scatter([chosen.number], [chosen.value * scale], color=colour, **CHOSEN_STYLE)
    ax.set_title(shown(case.label), fontsize="medium", color=colour)
    ax.set(xlabel="trial number", ylabel=_ylabel(tuning))
    ax.grid(alpha=0.3)
    integer_ticks(ax)
