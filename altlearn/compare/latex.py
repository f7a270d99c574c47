"""The comparison as LaTeX tables (booktabs) to paste into a paper: the groups (or each case at its
best, with its chosen values), and the pairwise tests between the cases.

Every text from the store (labels, values) is escaped: ``\\ & % $ # _ { } ~ ^`` are LaTeX's own, and
a label such as ``lr_0.001 & 50%`` must print as written, not break the document. Control
characters are shown escaped first, as in every other form.
"""

from __future__ import annotations

from altlearn.compare.comparison import Report
from altlearn.compare.labels import readable
from altlearn.compare.pairwise import PairTest
from altlearn.compare.stats import Estimate, GroupStats
from altlearn.compare.table_best import chosen_text, evidence_text
from altlearn.compare.table_pairs import has_tests, pair_cells
from altlearn.text import printable

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
}


def escape(text: object) -> str:
    return "".join(SPECIAL.get(char, char) for char in printable(text))


def _estimate(e: Estimate) -> str:
    return f"{100 * e.mean:.2f} $\\pm$ {100 * e.std:.2f}" if e.std is not None else f"{100 * e.mean:.2f}"


def _interval(e: Estimate) -> str:
    return (
        f"[{100 * e.ci_low:.2f}, {100 * e.ci_high:.2f}]"
        if e.ci_low is not None and e.ci_high is not None
        else "--"
    )


def _p(value: float | None, note: str = "") -> str:
    if value is None:
        return escape(note) if note else "--"
    if value >= 0.001:
        return f"{value:.3f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"${mantissa} \\times 10^{{{int(exponent)}}}$"


def tabular(headers: list[str], rows: list[list[str]], align: str, caption: str, label: str) -> str:
    """One booktabs table float: headers and cells are LaTeX already (escaped by the caller)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_latex(report: Report) -> str:
    head = [
        f"% altlearn compare: {printable(report.selection.description).replace(chr(10), ' ')}",
        r"% needs \usepackage{booktabs} in the preamble",
        "",
    ]
    tables = [_groups_table(report) if report.tuning is None else _at_best_table(report)]
    if has_tests(report):
        tables.append(_pairs_table(report))
    return "\n".join(head) + "\n".join(tables)


def _groups_table(report: Report) -> str:
    headers = ["Group", "Seeds", r"Test acc.\ (\%)", r"95\% CI", r"$p$ vs best"]
    rows = [
        [
            escape(readable(s.label)),
            str(s.n),
            _estimate(s.test_accuracy),
            _interval(s.test_accuracy),
            _p(s.p_value, s.p_note),
        ]
        for s in report.groups
    ]
    caption = (
        r"Final test accuracy, mean $\pm$ sample standard deviation over seeds, with the 95\% "
        r"$t$ interval; $p$: the pairwise test against the best group"
        + (r" (Table~\ref{tab:altlearn-pairwise})" if has_tests(report) else "")
        + (", Holm-corrected." if report.correction else ".")
    )
    return tabular(headers, rows, "lrrrr", caption, "tab:altlearn-groups")


def _at_best_table(report: Report) -> str:
    tuning = report.tuning
    assert tuning is not None
    headers = [
        "Case",
        "Chosen",
        escape(tuning.objective) + r" (rank)",
        "Seeds",
        r"Test acc.\ (\%)",
        r"95\% CI",
        r"$p$ vs best",
    ]
    rows = []
    for case in tuning.cases:
        stats: GroupStats | None = case.stats
        finals = (
            [
                str(stats.n),
                _estimate(stats.test_accuracy),
                _interval(stats.test_accuracy),
                _p(stats.p_value, stats.p_note),
            ]
            if stats
            else ["0", "--", "--", "--"]
        )
        rows.append(
            [escape(case.label), escape(chosen_text(case)), escape(evidence_text(tuning, case)), *finals]
        )
    over = "fresh seeds (finals)" if tuning.mode == "search" else "seeds"
    caption = (
        f"Each case at its best: the configuration chosen on {escape(tuning.objective)} (validation), "
        rf"and its test accuracy over {over}, mean $\pm$ standard deviation with the 95\% $t$ interval; "
        r"$p$: the pairwise test against the best case" + (", Holm-corrected." if report.correction else ".")
    )
    return tabular(headers, rows, "llrrrrr", caption, "tab:altlearn-at-best")


def _pairs_table(report: Report) -> str:
    headers = ["Cases", "Pairing", "Test", r"$\Delta$ (points)", r"95\% CI", r"$p$", r"$p_{\mathrm{Holm}}$"]
    rows = [_pair_row(pair, report) for pair in report.pairs]
    caption = (
        r"Pairwise tests: $\Delta$ is the first's mean test accuracy minus the second's, with its "
        r"95\% $t$ interval; paired by seed where both ran the same seeds (paired $t$-test, Wilcoxon "
        r"signed-rank with 6 pairs or more), else Welch's $t$-test"
        + (
            ", Holm-corrected over the pairs tested."
            if report.correction
            else r"; one test needs no correction ($p_{\mathrm{Holm}}$: --)."
        )
    )
    return tabular(headers, rows, "lllrrrr", caption, "tab:altlearn-pairwise")


def _pair_row(pair: PairTest, report: Report) -> list[str]:
    return pair_cells(pair, report, text=escape, p_text=_p, missing="--")
