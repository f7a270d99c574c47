"""The pairwise tests every comparison carries, on groups built by hand: which pairs are tested, how,
what is corrected, and which group the others are tested against."""

from __future__ import annotations

import re
import statistics
from types import SimpleNamespace as NS

import pytest
from scipy import stats

from altlearn.compare.pairwise import compare_pairs, versus_best
from altlearn.compare.stats import rank


def group(label: str, values: list[float], seeds: list[str] | None = None):
    """What the tests read of a group: its seeds and final test accuracies."""
    seeds = seeds or [str(s) for s in range(len(values))]
    std = statistics.stdev(values) if len(values) > 1 else None
    accuracy = NS(values=values, mean=statistics.fmean(values), std=std)
    return NS(label=label, seeds=seeds, test_accuracy=accuracy, n=len(values), p_value=None, p_note="")


def test_a_best_group_of_one_seed_leaves_the_tests_to_the_best_group_with_several():
    lucky = group("lucky", [0.99])
    steady = group("steady", [0.95, 0.96, 0.955])
    behind = group("behind", [0.90, 0.92, 0.91])
    ranked = rank([behind, steady, lucky])
    assert ranked == [lucky, steady, behind] and steady.p_note == "reference"
    pairs, correction = compare_pairs(ranked)
    assert [(p.a.label, p.b.label, p.test or p.note) for p in pairs] == [
        ("lucky", "steady", "one seed: no test"),
        ("lucky", "behind", "one seed: no test"),
        ("steady", "behind", "paired t"),
    ]
    assert correction is None  # one test: nothing to correct
    versus_best(pairs, ranked)
    expected = stats.ttest_rel(steady.test_accuracy.values, behind.test_accuracy.values).pvalue
    assert behind.p_value == pytest.approx(expected)  # tested against the reference, not the best
    assert lucky.p_value is None and lucky.p_note == "one seed: no test"
    assert steady.p_value is None and steady.p_note == "reference"


def test_holm_corrects_over_the_pairs_that_were_tested_only():
    groups = [
        group("a", [0.97, 0.975, 0.972]),
        group("b", [0.95, 0.96, 0.952]),
        group("c", [0.90, 0.93, 0.91]),
        group("d", [0.80]),  # one seed: its three pairs cannot be tested
    ]
    pairs, correction = compare_pairs(rank(groups))
    tested = [p for p in pairs if p.p_value is not None]
    assert correction == "holm" and len(pairs) == 6 and len(tested) == 3
    ordered = sorted(p.p_value for p in tested)
    assert min(p.p_adjusted for p in tested) == pytest.approx(3 * ordered[0])  # m = 3, not 6
    assert all(p.p_adjusted is None for p in pairs if p.p_value is None)


@pytest.mark.parametrize(("pairs", "test"), [(6, "paired t"), (7, "Wilcoxon signed-rank")])
def test_wilcoxon_needs_six_differences_that_are_not_zero(pairs, test):
    """scipy's Wilcoxon drops zero differences: six pairs with one tie leave five, whose smallest
    two-sided p-value (1/16) could never reach 0.05, so the paired t-test is used there."""
    better = [0.90 + 0.01 * i for i in range(pairs)]
    worse = [b - 0.005 * (i + 1) for i, b in enumerate(better)]
    worse[0] = better[0]  # one tie
    (pair,), _ = compare_pairs(rank([group("better", better), group("worse", worse)]))
    assert pair.pairs == pairs and pair.test == test


def hand_run(rule: str, seed: int, accuracy: float):
    from altlearn.compare.selection import RunData

    params = {"rule.type": rule, "seed": str(seed), "train.epochs": "1", "data.type": "digits"}
    return RunData(
        f"{rule}{seed}", f"{rule}-{seed}", "FINISHED", params, {}, {"test_accuracy": [(1, accuracy)]}
    )


def test_a_terminal_shows_the_pairs_with_the_best_group_when_all_pairs_would_fill_a_screen():
    from altlearn.compare.comparison import build_report
    from altlearn.compare.selection import Selection
    from altlearn.compare.table import TERMINAL_PAIRS, sections, to_markdown

    rules = ["a", "b", "c", "d", "e", "f"]  # six groups: 15 pairs
    runs = [
        hand_run(r, s, 0.9 - 0.01 * i + 0.003 * (s * (i + 2) % 3))
        for i, r in enumerate(rules)
        for s in range(3)
    ]
    report = build_report(Selection("six rules", runs), by=["rule.type"])
    assert len(report.pairs) == 15 > TERMINAL_PAIRS
    (_, terminal_caption, _, _, terminal_rows) = sections(report, TERMINAL_PAIRS)[1]
    assert [row[0] for row in terminal_rows] == [f"a vs {r}" for r in rules[1:]]
    assert "shown: the 5 pairs with the best group, of 15" in terminal_caption
    (_, caption, _, _, rows) = sections(report)[1]
    assert len(rows) == 15 and "shown" not in caption
    assert len(re.findall(r"^\| \w vs \w \|", to_markdown(report), re.M)) == 15  # files keep every pair


def test_a_few_groups_show_every_pair_in_the_terminal_too():
    from altlearn.compare.comparison import build_report
    from altlearn.compare.selection import Selection
    from altlearn.compare.table import TERMINAL_PAIRS, sections

    runs = [hand_run(r, s, 0.9 - 0.01 * i + 0.002 * s) for i, r in enumerate("abc") for s in range(3)]
    report = build_report(Selection("three rules", runs), by=["rule.type"])
    assert sections(report, TERMINAL_PAIRS) == sections(report)
    assert [row[0] for row in sections(report)[1][4]] == ["a vs b", "a vs c", "b vs c"]
