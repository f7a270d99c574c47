"""The table of pairwise tests every report with two groups or more carries (the tests themselves:
altlearn.compare.pairwise): cells for a reader, the caption that says how they were tested, and
records with the exact labels and unrounded numbers for JSON."""

from __future__ import annotations

from typing import Any

from altlearn.compare.comparison import Report
from altlearn.compare.labels import readable
from altlearn.compare.pairwise import PairTest, is_reference
from altlearn.compare.stats import GroupStats
from altlearn.compare.table_best import case_label
from altlearn.text import printable

PAIR_HEADERS = ("cases", "pairing", "test", "difference (points)", "95% CI", "p", "p (Holm)")


def has_tests(report: Report) -> bool:
    """Whether the report shows its pairwise table: some pair was tested or has an interval (two
    groups of one seed each have neither, and their difference is in the groups' table)."""
    return any(pair.p_value is not None or pair.ci_low is not None for pair in report.pairs)


def with_reference(pair: PairTest) -> bool:
    """Whether the best group (or, where it has one seed, the best with several) is in the pair."""
    return is_reference(pair.a) or is_reference(pair.b)


def pair_explanation(report: Report) -> str:
    tested = sum(pair.p_value is not None for pair in report.pairs)
    holm = (
        f"; Holm-corrected over the {tested} pairs tested"
        if report.correction
        else "; one test needs no correction for many comparisons (p (Holm): -)"
    )
    return (
        "difference: mean test accuracy of the first minus the second (per seed when paired), with "
        "its 95% t interval; paired by seed where both ran the same seeds (paired t-test, "
        f"Wilcoxon signed-rank with 6 pairs or more), else Welch's t-test{holm}"
    )


def pair_cells(pair: PairTest, report: Report, text=printable, p_text=None, missing: str = "-") -> list[str]:
    """One pairwise test's cells; ``text`` makes a label safe for the format (printable for a
    terminal, escape for LaTeX), ``p_text`` writes a p-value, ``missing`` stands for no value."""
    p_text = p_text or _p
    pairing = f"by seed ({pair.pairs})" if pair.pairs else f"unpaired ({pair.a.n}, {pair.b.n})"
    ci = (
        f"[{100 * pair.ci_low:+.2f}, {100 * pair.ci_high:+.2f}]"
        if pair.ci_low is not None and pair.ci_high is not None
        else missing
    )
    return [
        text(f"{_label(report, pair.a)} vs {_label(report, pair.b)}"),
        pairing,
        text(pair.test or pair.note or missing),
        f"{100 * pair.difference:+.2f}",
        ci,
        p_text(pair.p_value),
        p_text(pair.p_adjusted) if report.correction else missing,
    ]


def _label(report: Report, stats: GroupStats) -> str:
    """A group as its row names it: the case (``fa``) in a report of each case at its best."""
    return case_label(report.tuning, stats) if report.tuning is not None else readable(stats.label)


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def pairs_record(report: Report) -> dict[str, Any]:
    """JSON's ``pairwise`` tests and the ``correction`` applied over them."""
    return {"pairwise": [pair_record(pair) for pair in report.pairs], "correction": report.correction}


def pair_record(pair: PairTest) -> dict[str, Any]:
    return {
        "a": pair.a.label,
        "b": pair.b.label,
        "pairs": pair.pairs,
        "test": pair.test or None,
        "difference": pair.difference,
        "ci95": [pair.ci_low, pair.ci_high],
        "p_value": pair.p_value,
        "p_value_holm": pair.p_adjusted,
        "note": pair.note,
    }
