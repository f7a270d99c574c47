"""What every figure of a report shares: a headless canvas (matplotlib's Agg, no display and no
pyplot global state), mean and std bands, safe text, legends, and saving as PNG, SVG and PDF.

PNG is what the HTML report embeds; SVG and PDF are for a paper (vector, fonts as paths). Their
timestamps are left out so that the same report gives the same files.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from altlearn.compare.labels import readable
from altlearn.compare.selection import Curve
from altlearn.compare.stats import GroupStats
from altlearn.text import printable

DPI = 120
LABEL_WIDTH = 48  # characters per line of a group's label in legends and on axes
BAND_ALPHA = 0.2
EXTENSIONS = ("png", "svg", "pdf")
#: no creation dates in the vector files: the same report gives the same bytes
METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}


@dataclass
class FigureFile:
    name: str  # file stem, e.g. "learning_curves"
    title: str
    path: Path  # the PNG (what the HTML report embeds)
    formats: list[Path] = field(default_factory=list)  # every file written: PNG, SVG, PDF


def new_figure(width: float, height: float, panels: tuple[int, int] = (1, 1)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # the headless raster canvas, whatever backend the user configured
    axes = figure.subplots(*panels, squeeze=False)
    return figure, axes


def save(figure, folder: Path, name: str, title: str) -> FigureFile:
    paths = []
    for extension in EXTENSIONS:
        path = folder / f"{name}.{extension}"
        figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata=METADATA[extension])
        paths.append(path)
    return FigureFile(name, title, paths[0], paths)


def integer_ticks(ax) -> None:
    """Epochs, steps and trial numbers are whole: no 2.5 on their axis. Call it after drawing."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = ax.get_xlim()
    if math.floor(high) - math.ceil(low) < 1:
        # one epoch (or one measurement): the locator finds fewer than two whole numbers in the
        # autoscaled margin around the point and falls back to 0.95, 1.00, 1.05
        middle = round((low + high) / 2)
        ax.set_xlim(middle - 1, middle + 1)


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


def band(ax, steps, means, stds, label: str, scale: float = 1.0, **style) -> None:
    (line,) = ax.plot(steps, [m * scale for m in means], label=label, **style)
    if any(stds):
        low = [(m - s) * scale for m, s in zip(means, stds)]
        high = [(m + s) * scale for m, s in zip(means, stds)]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)


def group_label(stats: GroupStats) -> str:
    return textwrap.fill(f"{shown(readable(stats.label))} (n={stats.n})", LABEL_WIDTH)


def shown(text: str) -> str:
    """A label, rule or layer name from the store as matplotlib should draw it: control characters
    escaped (as in the table), and "$" taken literally, not as the start of TeX math that a label
    like "$\\frac{" would make fail to draw."""
    return printable(text).replace("$", r"\$")


def legend_columns(entries: int) -> int:
    return 2 if entries > 4 else 1


def legend_below(ax, entries: int) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=legend_columns(entries), fontsize="small")


def legend_height(labels: list[str]) -> float:
    """Inches the legend below the axes needs: labels wrap over several lines (long param lists
    when a sweep's labels cannot be used), and a legend taller than the figure collapses the axes."""
    columns = legend_columns(len(labels))
    rows = [labels[i : i + columns] for i in range(0, len(labels), columns)]
    lines = sum(max(label.count("\n") + 1 for label in row) for row in rows)
    return 0.2 + 0.17 * lines
