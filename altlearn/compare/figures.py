"""The report's figures, each written as PNG, SVG and PDF (altlearn.compare.plotting).

- learning_curves: test accuracy per epoch, one line per group (mean) with a ±std band (for a
  search: the finals, over their fresh seeds);
- alignment: angle between each layer's update and the BP gradient over training, a panel per rule,
  its layers named as the spec builds them (hidden 1, hidden 2, output);
- accuracy_vs_lr: final test accuracy against learning rate per rule (only when the groups differ in
  lr, and not for a report of each case at its best, whose groups are one configuration per case);
- test_error: final test error per group as bars with ±std error bars;
- search_landscape and optimisation_history: a search's trials (altlearn.compare.search_figures).

Every rule has one colour in every figure (altlearn.compare.labels.rule_colour); several groups of
one rule are told apart by their line style.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altlearn.compare.comparison import Report
from altlearn.compare.labels import LINE_STYLES, MARKERS, layer_names, readable, rule_colour, styles_by_group
from altlearn.compare.plotting import (
    FigureFile,
    band,
    group_label,
    integer_ticks,
    legend_below,
    legend_height,
    mean_curve,
    new_figure,
    save,
    shown,
)
from altlearn.compare.search_figures import optimisation_history, search_landscape
from altlearn.compare.selection import Curve
from altlearn.compare.stats import GroupStats

__all__ = ["FIGURE_NAMES", "FigureFile", "make_figures", "mean_curve", "shown"]


def make_figures(report: Report, folder: Path) -> list[FigureFile]:
    """Draw every figure the report's data supports into ``folder`` (PNG, SVG, PDF)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title, build in _builders():
        figure = build(report)
        if figure is not None:
            written.append(save(figure, folder, name, title))
    return written


def _builders():
    return (
        ("learning_curves", "Test accuracy per epoch", learning_curves),
        ("alignment", "Alignment with the BP gradient per layer", alignment),
        ("accuracy_vs_lr", "Final test accuracy against learning rate", accuracy_vs_lr),
        ("test_error", "Final test error per group", error_bars),
        ("search_landscape", "The search: objective against each searched value", search_landscape),
        (
            "optimisation_history",
            "The search: objective per trial, and the best so far",
            optimisation_history,
        ),
    )


def _rules(report: Report) -> list[str]:
    return [stats.group.runs[0].rule for stats in report.groups]


def learning_curves(report: Report):
    labels = [group_label(stats) for stats in report.groups]
    figure, axes = new_figure(7.5, 4.0 + legend_height(labels))
    ax = axes[0][0]
    for stats, label, style in zip(report.groups, labels, styles_by_group(_rules(report))):
        steps, means, stds = mean_curve([run.curves["test_accuracy"] for run in stats.group.runs])
        band(ax, steps, means, stds, label, scale=100, marker="o", markersize=3, **style)
    over = "the finals' fresh seeds" if report.tuning and report.tuning.mode == "search" else "seeds"
    ax.set(
        xlabel="epoch", ylabel="test accuracy (%)", title=f"Test accuracy per epoch (mean ± std over {over})"
    )
    ax.grid(alpha=0.3)
    integer_ticks(ax)
    legend_below(ax, len(report.groups))
    return figure


@dataclass
class _Panel:
    rule: str
    stats: GroupStats  # the group drawn
    layers: dict[str, list[Curve]]  # each layer's curves over the group's seeds
    below_best: bool  # the rule's better groups have no alignment over training: a lower one is drawn


def _alignment_panels(report: Report) -> list[_Panel]:
    """Per rule with alignment metrics: its best-ranked group that measured alignment over
    training, and each layer's curves over its seeds."""
    panels: dict[str, _Panel] = {}
    ranked_rules: set[str] = set()  # rules whose best group has been passed
    for stats in report.groups:  # best first, so the first group of a rule is its best
        by_rule: dict[str, dict[str, list[Curve]]] = {}
        for run in stats.group.runs:
            if not run.alignment_over_training():  # one measurement, before training: a note says so
                continue
            for layer, curve in run.alignment_curves().items():
                by_rule.setdefault(run.rule, {}).setdefault(layer, []).append(curve)
        for rule, layers in by_rule.items():
            panels.setdefault(rule, _Panel(rule, stats, layers, below_best=rule in ranked_rules))
        ranked_rules |= {run.rule for run in stats.group.runs}
    return list(panels.values())


def alignment(report: Report):
    panels = _alignment_panels(report)
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = new_figure(5.0 * columns, 4.2 * rows, (rows, columns))
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        rule, stats, layers = panel.rule, panel.stats, panel.layers
        names = layer_names(layers, stats.group.runs[0].params)
        for index, layer in enumerate(sorted(layers, key=_layer_order)):
            steps, means, stds = mean_curve(layers[layer])
            # a short run measures alignment once or twice: a line alone would draw nothing
            style: dict[str, Any] = {"marker": MARKERS[index % len(MARKERS)]} if len(steps) <= 3 else {}
            # the rule's colour, one line style per layer: the colour says the rule in every figure
            style.update(color=rule_colour(rule), linestyle=LINE_STYLES[index % len(LINE_STYLES)])
            band(ax, steps, means, stds, shown(names.get(layer, layer)), **style)
        # 90°: unrelated to the gradient. The axis starts below 0 so a layer at 0° (DFA's output layer)
        # stays visible instead of hiding in the frame.
        ax.axhline(90, color="grey", linestyle="--", linewidth=0.8, label="90°: orthogonal, no alignment")
        ax.set(
            xlabel="training step", ylabel="angle to BP gradient (°)", ylim=(-3, max(95, ax.get_ylim()[1]))
        )
        label = readable(stats.label)  # the rule's name once: "fa" or "fa, lr 1e-3", never both
        title = (
            shown(rule)
            if label == rule
            else group_label(stats)
            if label.startswith((f"{rule},", f"{rule} "))
            else f"{shown(rule)}\n{group_label(stats)}"
        )
        if panel.below_best:  # its better groups did not measure alignment during training
            title += "\n(not its best group: that one has no alignment over training)"
        ax.set_title(title, fontsize="medium", color=rule_colour(rule))
        ax.grid(alpha=0.3)
        integer_ticks(ax)
        ax.legend(fontsize="small")
    figure.suptitle("Update vs BP gradient per layer (mean ± std over seeds; the best group of each rule)")
    return figure


def _layer_order(layer: str) -> tuple[tuple[int, ...], str]:
    """layer1 < layer3 < layer3.layers.1 < layer10: by position in the network, not as text."""
    digits = tuple(int(part) for part in "".join(c if c.isdigit() else " " for c in layer).split())
    return (digits, layer)


def learning_rate(stats: GroupStats) -> float | None:
    """The group's learning rate if all its runs share one (a rule's own lr wins: GO-UP's rule.lr)."""
    values = {run.params.get("rule.lr") or run.params.get("optimizer.lr") for run in stats.group.runs}
    value = values.pop() if len(values) == 1 else None
    if value is None:
        return None
    try:
        lr = float(value)
    except ValueError:
        return None
    return lr if math.isfinite(lr) and lr > 0 else None  # the axis is logarithmic


def accuracy_vs_lr(report: Report):
    if report.tuning is not None:  # one configuration per case: the search's landscape shows lr
        return None
    rates = {stats.label: learning_rate(stats) for stats in report.groups}
    if len({lr for lr in rates.values() if lr is not None}) < 2:
        return None
    points: dict[str, dict[float, GroupStats]] = {}
    for stats in report.groups:  # best first: at a given lr, a rule's best group is the one kept
        lr = rates[stats.label]
        if lr is not None:
            points.setdefault(stats.group.runs[0].rule, {}).setdefault(lr, stats)
    figure, axes = new_figure(7.0, 4.5)
    ax = axes[0][0]
    for rule, by_lr in sorted(points.items()):
        lrs = sorted(by_lr)
        means = [100 * by_lr[lr].test_accuracy.mean for lr in lrs]
        errors = [100 * (by_lr[lr].test_accuracy.std or 0.0) for lr in lrs]
        ax.errorbar(
            lrs, means, yerr=errors, marker="o", capsize=3, label=shown(rule), color=rule_colour(rule)
        )
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
    figure, axes = new_figure(7.5, 1.2 + 0.45 * len(groups))
    ax = axes[0][0]
    positions = list(range(len(groups)))[::-1]  # best at the top
    means = [100 * s.test_error.mean for s in groups]
    errors = [100 * (s.test_error.std or 0.0) for s in groups]
    colours = [rule_colour(rule) for rule in _rules(report)]
    ax.barh(positions, means, xerr=errors, capsize=3, color=colours, alpha=0.8)
    ax.set_yticks(positions, [group_label(s) for s in groups], fontsize="small")
    for y, mean in zip(positions, means):
        ax.annotate(f"{mean:.2f}", (mean, y), xytext=(4, 4), textcoords="offset points", fontsize="small")
    ax.set(
        xlabel="final test error (%), error bars ± std over seeds",
        title="Final test error per group (lower is better)",
    )
    ax.grid(alpha=0.3, axis="x")
    return figure


FIGURE_NAMES = frozenset(name for name, _, _ in _builders())  # every figure a report can have
