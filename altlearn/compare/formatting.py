"""Numbers as the tables show them: percentages rounded for reading, p-values in a short form."""

from __future__ import annotations

from altlearn.compare.stats import Estimate, GroupStats


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


def seconds_text(seconds: float) -> str:
    """Three significant digits with their trailing zeros (0.300 beside 0.305, not 0.3) and never
    an exponent (a search's 1,234 s, not 1.23e+03)."""
    if seconds >= 100:
        return f"{seconds:,.0f}"
    decimals = 1 if seconds >= 10 else 2 if seconds >= 1 else 3
    return f"{seconds:.{decimals}f}"
