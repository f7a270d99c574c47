"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

- learning_curves: test accuracy per epoch, one line per group (mean) with a ±std band;
- alignment: angle between each layer's update and the BP gradient over training, a panel per rule;
- accuracy_vs_lr: final test accuracy against learning rate per rule (only when the groups differ in lr);
- test_error: final test error per group as bars with ±std error bars.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from altlearn.compare.comparison import Report
from altlearn.compare.selection import Curve
from altlearn.compare.stats import GroupStats

DPI = 120
LABEL_WIDTH = 48  # characters per line of a group's label in legends and on axes
BAND_ALPHA = 0.2


@dataclass
class FigureFile:
    name: str  # file stem, e.g. "learning_curves"
    title: str
    path: Path


def make_figures(report: Report, folder: Path) -> list[FigureFile]:
    """Draw every figure the report's data supports into ``folder`` as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title, build in _builders():
        figure = build(report)
        if figure is None:
            continue
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        written.append(FigureFile(name, title, path))
    return written


def _builders():
    return (
        ("learning_curves", "Test accuracy per epoch", learning_curves),
        ("alignment", "Alignment with the BP gradient per layer", alignment),
        ("accuracy_vs_lr", "Final test accuracy against learning rate", accuracy_vs_lr),
        ("test_error", "Final test error per group", error_bars),
    )


def _figure(width: float, height: float, panels: tuple[int, int] = (1, 1)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # the headless raster canvas, whatever backend the user configured
    axes = figure.subplots(*panels, squeeze=False)
    return figure, axes


def mean_curve(curves: list[Curve]) -> tuple[list[int], list[float], list[float]]:
    """Steps, mean and sample std over the curves that reached each step (std 0 where only one did)."""
    values: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            values.setdefault(step, []).append(value)
    steps = sorted(values)
    means = [math.fsum(values[s]) / len(values[s]) for s in steps]
    stds = [_std(values[s], m) for s, m in zip(steps, means)]
    return steps, means, stds


def _std(values: list[float], mean: float) -> float:
    if len(values) < 2:
        return 0.0
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _band(ax, steps, means, stds, label: str, scale: float = 1.0, **style) -> None:
    (line,) = ax.plot(steps, [m * scale for m in means], label=label, **style)
    if any(stds):
        low = [(m - s) * scale for m, s in zip(means, stds)]
        high = [(m + s) * scale for m, s in zip(means, stds)]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)


def _label(stats: GroupStats) -> str:
    return textwrap.fill(f"{stats.label} (n={stats.n})", LABEL_WIDTH)


def _legend_columns(entries: int) -> int:
    return 2 if entries > 4 else 1


def _legend_below(ax, entries: int) -> None:
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=_legend_columns(entries), fontsize="small"
    )


def _legend_height(labels: list[str]) -> float:
    """Inches the legend below the axes needs: labels wrap over several lines (long param lists
    when a sweep's labels cannot be used), and a legend taller than the figure collapses the axes."""
    columns = _legend_columns(len(labels))
    rows = [labels[i : i + columns] for i in range(0, len(labels), columns)]
    lines = sum(max(label.count("\n") + 1 for label in row) for row in rows)
    return 0.2 + 0.17 * lines


def learning_curves(report: Report):
    figure, axes = _figure(7.5, 4.0 + _legend_height([_label(stats) for stats in report.groups]))
    ax = axes[0][0]
    for stats in report.groups:
        steps, means, stds = mean_curve([run.curves["test_accuracy"] for run in stats.group.runs])
        _band(ax, steps, means, stds, _label(stats), scale=100, marker="o", markersize=3)
    ax.set(
        xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy per epoch (mean ± std over seeds)"
    )
    ax.grid(alpha=0.3)
    _legend_below(ax, len(report.groups))
    return figure


def _alignment_panels(report: Report) -> list[tuple[str, GroupStats, dict[str, list[Curve]]]]:
    """Per rule with alignment metrics: its best-ranked group and each layer's curves over its seeds."""
    panels, seen = [], set()
    for stats in report.groups:  # best first, so the first group of a rule is its best
        by_rule: dict[str, dict[str, list[Curve]]] = {}
        for run in stats.group.runs:
            for layer, curve in run.alignment_curves().items():
                by_rule.setdefault(run.rule, {}).setdefault(layer, []).append(curve)
        for rule, layers in by_rule.items():
            if rule not in seen:
                seen.add(rule)
                panels.append((rule, stats, layers))
    return panels


def alignment(report: Report):
    panels = _alignment_panels(report)
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = _figure(5.0 * columns, 4.2 * rows, (rows, columns))
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (rule, stats, layers) in zip(axes.flat, panels):
        for layer in sorted(layers, key=_layer_order):
            steps, means, stds = mean_curve(layers[layer])
            # a short run measures alignment once or twice: a line alone would draw nothing
            _band(ax, steps, means, stds, layer, **({"marker": "o"} if len(steps) <= 3 else {}))
        # 90°: unrelated to the gradient. The axis starts below 0 so a layer at 0° (DFA's output layer)
        # stays visible instead of hiding in the frame.
        ax.axhline(90, color="grey", linestyle="--", linewidth=0.8)
        ax.set(
            xlabel="training step", ylabel="angle to BP gradient (°)", ylim=(-3, max(95, ax.get_ylim()[1]))
        )
        ax.set_title(f"{rule}\n{_label(stats)}", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("Update vs BP gradient per layer (mean ± std over seeds; the best group of each rule)")
    return figure


def _layer_order(layer: str) -> tuple[int, str]:
    digits = "".join(ch for ch in layer if ch.isdigit())
    return (int(digits) if digits else 0, layer)


def learning_rate(stats: GroupStats) -> float | None:
    """The group's learning rate if all its runs share one (a rule's own lr wins: GO-UP's rule.lr)."""
    values = {run.params.get("rule.lr") or run.params.get("optimizer.lr") for run in stats.group.runs}
    if len(values) != 1 or None in values:
        return None
    try:
        return float(values.pop())
    except ValueError:
        return None


def accuracy_vs_lr(report: Report):
    rates = {stats.label: learning_rate(stats) for stats in report.groups}
    if len({lr for lr in rates.values() if lr is not None}) < 2:
        return None
    points: dict[str, dict[float, GroupStats]] = {}
    for stats in report.groups:  # best first: at a given lr, a rule's best group is the one kept
        lr = rates[stats.label]
        if lr is not None:
            points.setdefault(stats.group.runs[0].rule, {}).setdefault(lr, stats)
    figure, axes = _figure(7.0, 4.5)
    ax = axes[0][0]
    for rule, by_lr in sorted(points.items()):
        lrs = sorted(by_lr)
        means = [100 * by_lr[lr].test_accuracy.mean for lr in lrs]
        errors = [100 * (by_lr[lr].test_accuracy.std or 0.0) for lr in lrs]
        ax.errorbar(lrs, means, yerr=errors, marker="o", capsize=3, label=rule)
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate",
        ylabel="final test accuracy (%)",
        title="Final test accuracy (mean ± std) by learning rate",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return figure


def error_bars(report: Report):
    groups = report.groups
    figure, axes = _figure(7.5, 1.2 + 0.45 * len(groups))
    ax = axes[0][0]
    positions = list(range(len(groups)))[::-1]  # best at the top
    means = [100 * s.test_error.mean for s in groups]
    errors = [100 * (s.test_error.std or 0.0) for s in groups]
    ax.barh(positions, means, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_yticks(positions, [_label(s) for s in groups], fontsize="small")
    for y, mean in zip(positions, means):
        ax.annotate(f"{mean:.2f}", (mean, y), xytext=(4, 4), textcoords="offset points", fontsize="small")
    ax.set(
        xlabel="final test error (%), error bars ± std over seeds",
        title="Final test error per group (lower is better)",
    )
    ax.grid(alpha=0.3, axis="x")
    return figure


FIGURE_NAMES = frozenset(name for name, _, _ in _builders())  # every figure a report can have
