"""Numbers as the tables show them: percentages rounded for reading, p-values in a short form."""

from __future__ import annotations

from altlearn.compare.stats import Estimate, GroupStats
from altlearn.text import seconds_text

__all__ = ["interval", "mean_std", "p_value_text", "seconds_text"]


def mean_std(e: Estimate) -> str:
    return f"{100 * e.mean:.2f} ± {100 * e.std:.2f}" if e.std is not None else f"{100 * e.mean:.2f}"


def interval(e: Estimate) -> str:
    if e.ci_low is None or e.ci_high is None:  # set together, from two seeds on
        return "-"
    return f"[{100 * e.ci_low:.2f}, {100 * e.ci_high:.2f}]"


def p_value_text(stats: GroupStats) -> str:
    if stats.p_value is None:
        return stats.p_note
    return f"{stats.p_value:.3f}" if stats.p_value >= 0.001 else f"{stats.p_value:.1e}"
