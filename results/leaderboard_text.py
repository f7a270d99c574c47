"""A leaderboard's rows as the page's tables, the README's headline table and one SVG figure."""

from __future__ import annotations

import io
from pathlib import Path

from leaderboard_rows import Board, Row

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "leaderboard"
#: one colour per family of rules (the figure's legend), colour-blind-safe (Okabe & Ito)
FAMILY_COLOURS = {
    "backprop": "#000000",
    "feedback alignment": "#0072B2",
    "sign symmetry": "#56B4E9",
    "forward-only": "#E69F00",
    "energy-based": "#009E73",
    "local losses": "#CC79A7",
    "noisy gradient": "#D55E00",
    "other": "#999999",
}


def ranked(rows: list[Row]) -> list[Row]:
    """Rows with finals first, by mean test accuracy (ties: the label), then the others as listed."""
    measured = sorted((r for r in rows if r.stats), key=lambda r: (-r.stats.test_accuracy.mean, r.label))
    return measured + [r for r in rows if not r.stats]


def progress(row: Row) -> str:
    """How far an unfinished row is: its search trials by state, then its finals."""
    done = sum(row.searched.get(s, 0) for s in ("complete", "pruned", "failed"))
    parts = [f"search {done}/{row.trials_planned}"]
    if row.searched.get("pruned"):
        parts[-1] += f" ({row.searched['pruned']} pruned)"
    if row.searched.get("running"):
        parts.append(f"{row.searched['running']} running")
    if done >= row.trials_planned or row.finals_done:
        parts.append(f"finals {row.finals_done}/{row.finals_planned}")
    return ", ".join(parts) if done or row.searched else "not started"


def chosen_text(chosen: dict, edges: dict | None = None) -> str:
    """The chosen values; one at an edge of its searched range is marked † (the best may lie
    beyond it)."""
    return (
        ", ".join(
            f"`{path}` {_number(value)}" + (" †" if path in (edges or {}) else "")
            for path, value in sorted(chosen.items())
        )
        or "—"
    )


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def accuracy_text(row: Row) -> tuple[str, str]:
    estimate = row.stats.test_accuracy
    mean = f"{100 * estimate.mean:.2f}" + (f" ± {100 * estimate.std:.2f}" if estimate.std is not None else "")
    interval = (
        "—" if estimate.ci_low is None else f"[{100 * estimate.ci_low:.2f}, {100 * estimate.ci_high:.2f}]"
    )
    return mean, interval


def versus_bp_text(row: Row) -> str:
    test = row.versus_bp
    if row.label == "bp":
        return "baseline"
    if test is None:
        return "—"
    difference = f"{100 * test.difference:+.2f}"
    if test.ci_low is not None:
        difference += f" [{100 * test.ci_low:+.2f}, {100 * test.ci_high:+.2f}]"
    if test.p_adjusted is None:
        return f"{difference}; {test.note or 'no test'}"
    return f"{difference}; p = {_p(test.p_adjusted)} ({test.test})"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def reach_text(row: Row, board: Board) -> str:
    if not row.reach_seconds:
        return "not reached"
    mean = sum(row.reach_seconds) / len(row.reach_seconds)
    count = len(row.reach_seconds)
    return f"{mean:.0f}" + ("" if count == row.stats.n else f" ({count} of {row.stats.n} seeds)")


def board_table(board: Board, rows: list[Row] | None) -> str:
    if not rows:
        refused = "".join(f"\n- `{rule}` is refused: {why}" for rule, why in board.refusals(ROOT).items())
        return f"Not run yet: `altlearn sweep {board.file}`." + refused
    reach = f"{100 * board.reach:g} %"
    figure = f"![{board.title}: test accuracy with 95 % intervals per rule, coloured by family](leaderboard/{board.name}.svg)"
    lines = [
        figure,
        "",
        f"| rank | rule | family | chosen (on validation) | test accuracy % (mean ± std) | 95 % CI | vs BP: difference [95 % CI], Holm p | CPU-s / epoch | CPU-s to {reach} | CPU-min: search + finals | published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rank, row in enumerate(ranked(rows), start=1):
        quote = board.quote(row.label)
        published = "—" if quote is None else f"{quote.figure} ({quote.setup}; {quote.source})"
        if not row.complete:
            status = progress(row)
            if row.stats:  # some finals in: the figures so far, marked
                mean, interval = accuracy_text(row)
                status = f"{mean} so far ({status})"
            lines.append(
                f"| – | {row.label} | {row.family} | {chosen_text(row.chosen, row.edges)} | {status} | | | | | "
                f"{spent_text(row)} | {published} |"
            )
            continue
        mean, interval = accuracy_text(row)
        cpu = "—" if row.cpu_per_epoch is None else f"{row.cpu_per_epoch:.1f}"
        lines.append(
            f"| {rank} | {row.label} | {row.family} | {chosen_text(row.chosen, row.edges)} | {mean} | {interval} | "
            f"{versus_bp_text(row)} | {cpu} | {reach_text(row, board)} | {spent_text(row)} | {published} |"
        )
    for rule, why in board.refusals(ROOT).items():
        lines.append(f"| – | {rule} | | refused: {why.replace('|', '/')} | | | | | | | |")
    if any(row.edges for row in rows):
        lines.append("\n† chosen at an edge of its searched range: the best may lie beyond it.")
    search = sum(row.spent.get("search", 0.0) for row in rows)
    finals = sum(row.spent.get("final", 0.0) for row in rows)
    lines.append(
        f"\nThe board's training so far: {(search + finals) / 3600:.1f} CPU-hours "
        f"({search / 3600:.1f} searching, {finals / 3600:.1f} in finals; evaluation not counted)."
    )
    return "\n".join(lines)


def spent_text(row: Row) -> str:
    """The training CPU time a row took: its search (pruned trials too) and its finals."""
    if not row.spent:
        return "—"
    return f"{row.spent.get('search', 0.0) / 60:.0f} + {row.spent.get('final', 0.0) / 60:.0f}"


def provenance_table(rows: list[Row] | None) -> str:
    measured = [row for row in ranked(rows or []) if row.provenance]
    if not measured:
        return "No finals yet."
    lines = ["| rule | altlearn | plugins | commit | torch | CPU |", "| --- | --- | --- | --- | --- | --- |"]
    for row in measured:
        p = row.provenance
        lines.append(
            f"| {row.label} | {p['altlearn']} | {p['plugins']} | {p['commit']} | {p['torch']} | {p['cpu']} |"
        )
    return "\n".join(lines)


def headline_table(board: Board, rows: list[Row] | None) -> str:
    """The README's short form of a board: complete rows only, and how many are still running."""
    complete = [row for row in ranked(rows or []) if row.complete]
    lines = [
        f"| rule | test accuracy % (mean ± std, {complete[0].stats.n if complete else 5} seeds) | vs BP (Holm p) | CPU-s / epoch |",
        "| --- | --- | --- | --- |",
    ]
    for row in complete:
        mean, _ = accuracy_text(row)
        test = row.versus_bp
        versus = (
            "baseline"
            if row.label == "bp"
            else "—"
            if test is None or test.p_adjusted is None
            else (f"{100 * test.difference:+.2f} ({_p(test.p_adjusted)})")
        )
        cpu = "—" if row.cpu_per_epoch is None else f"{row.cpu_per_epoch:.1f}"
        lines.append(f"| `{row.label}` | {mean} | {versus} | {cpu} |")
    waiting = len(rows or []) - len(complete)
    if waiting:
        lines.append(
            f"\n{waiting} more rule{'s are' if waiting > 1 else ' is'} still being tuned or re-run: "
            "[docs/leaderboard.md](docs/leaderboard.md)."
        )
    return "\n".join(lines)


def board_figure(board: Board, rows: list[Row], families: dict[str, str]) -> str:
    """Final test accuracy with its 95 % interval per rule, coloured by family, as SVG text made
    the same on every run (fixed ids, no date) so that the drift check can compare it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [row for row in ranked(rows) if row.stats][::-1]  # best at the top
    plt.rcParams["svg.hashsalt"] = board.name
    figure, ax = plt.subplots(figsize=(8.5, 0.35 * max(len(measured), 3) + 1.2))
    for y, row in enumerate(measured):
        estimate = row.stats.test_accuracy
        low = estimate.ci_low if estimate.ci_low is not None else estimate.mean
        high = estimate.ci_high if estimate.ci_high is not None else estimate.mean
        colour = FAMILY_COLOURS.get(row.family, FAMILY_COLOURS["other"])
        ax.errorbar(
            100 * estimate.mean,
            y,
            xerr=[[100 * (estimate.mean - low)], [100 * (high - estimate.mean)]],
            fmt="o",
            color=colour,
            capsize=3,
            alpha=1.0 if row.complete else 0.45,
        )
    ax.set_yticks(range(len(measured)), [r.label + ("" if r.complete else " (so far)") for r in measured])
    ax.set_xlabel("test accuracy % (mean and 95 % CI over the finals)")
    ax.set_title(board.title)
    seen = sorted({row.family for row in measured}, key=list(FAMILY_COLOURS).index)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=FAMILY_COLOURS[f]) for f in seen]
    # beside the axes: inside, it hid the points of whichever rules landed in its corner
    ax.legend(handles, seen, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return buffer.getvalue()
