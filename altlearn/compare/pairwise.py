"""Pairwise tests between a report's groups (or cases, each at its best): does X beat Y over seeds?

Two cases whose runs have the same seeds (each once) are paired by seed: seed s of X and seed s of
Y share their data order and initialisation stream, so the difference per seed removes that part
of the noise. Paired: Student's paired t-test, or with 6 pairs or more the Wilcoxon signed-rank
test (which assumes no normal differences; with fewer pairs its smallest possible p-value is above
0.05). Otherwise: Welch's t-test. Where two pairs or more could be tested, the p-values are
Holm-corrected over them. The effect size is the difference of the mean test accuracies (the mean
difference per seed when paired) with its 95 % t interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from altlearn.compare.stats import CONFIDENCE, GroupStats

MIN_WILCOXON_PAIRS = 6


@dataclass
class PairTest:
    a: GroupStats  # the better-ranked case
    b: GroupStats
    pairs: int  # seeds paired; 0 when unpaired
    test: str  # "paired t", "Wilcoxon signed-rank", "Welch t", or "" when none could be run
    difference: float  # mean test accuracy of a minus b (a fraction)
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm-corrected over the pairs tested (= p_value with one)
    note: str = ""  # why there is no test, when there is none


def compare_pairs(ranked: list[GroupStats]) -> tuple[list[PairTest], str | None]:
    """Every pair of ``ranked`` (best first), the better one first; and the correction applied:
    Holm's over the pairs that could be tested, when there are two or more of them."""
    tests = [pair_test(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
    correction = "holm" if sum(t.p_value is not None for t in tests) >= 2 else None
    adjusted = holm([t.p_value for t in tests]) if correction else [t.p_value for t in tests]
    for test, p in zip(tests, adjusted):
        test.p_adjusted = p
    return tests, correction


def paired_seeds(a: GroupStats, b: GroupStats) -> list[tuple[float, float]] | None:
    """(a, b) test accuracies per seed, when both cases ran the same seeds once each."""
    if len(set(a.seeds)) != len(a.seeds) or len(set(b.seeds)) != len(b.seeds) or set(a.seeds) != set(b.seeds):
        return None
    by_seed = dict(zip(b.seeds, b.test_accuracy.values))
    return [(value, by_seed[seed]) for seed, value in zip(a.seeds, a.test_accuracy.values)]


def pair_test(a: GroupStats, b: GroupStats) -> PairTest:
    pairs = paired_seeds(a, b)
    if pairs is not None and len(pairs) >= 2:
        return _paired(a, b, pairs)
    difference = a.test_accuracy.mean - b.test_accuracy.mean
    if a.n < 2 or b.n < 2:
        return PairTest(a, b, 0, "", difference, note="one seed: no test")
    return _welch(a, b, difference)


def _paired(a: GroupStats, b: GroupStats, pairs: list[tuple[float, float]]) -> PairTest:
    from scipy import stats

    differences = [x - y for x, y in pairs]
    n = len(differences)
    mean = math.fsum(differences) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * sd / math.sqrt(n)
    result = PairTest(a, b, n, "", mean, mean - half, mean + half)
    if sd == 0.0:
        result.note = "no seed variance in the differences"  # t is undefined; ranks all tie
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # scipy's Wilcoxon drops zero differences: with fewer than 6 left it could never reach 0.05
        if sum(d != 0 for d in differences) >= MIN_WILCOXON_PAIRS:
            result.test = "Wilcoxon signed-rank"
            result.p_value = float(stats.wilcoxon(differences).pvalue)
        else:
            result.test = "paired t"
            result.p_value = float(stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
    return result


def _welch(a: GroupStats, b: GroupStats, difference: float) -> PairTest:
    from scipy import stats

    va = (a.test_accuracy.std or 0.0) ** 2 / a.n
    vb = (b.test_accuracy.std or 0.0) ** 2 / b.n
    if va + vb == 0.0:
        return PairTest(a, b, 0, "", difference, difference, difference, note="no seed variance")
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=df)) * math.sqrt(va + vb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a.test_accuracy.values, b.test_accuracy.values, equal_var=False).pvalue)
    return PairTest(a, b, 0, "Welch t", difference, difference - half, difference + half, p)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the p-values that exist (None stays None)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def is_reference(stats: GroupStats) -> bool:
    """Whether ``stats`` is the group the others are tested against (rank marks it)."""
    return stats.p_note in ("best", "reference")


def versus_best(tests: list[PairTest], ranked: list[GroupStats]) -> None:
    """Each group's p-value against the group ``rank`` marked (the best, or the best with several
    seeds when the best has one): the Holm-corrected one, in its row's column."""
    reference = next(g for g in ranked if is_reference(g))
    for test in tests:
        if test.a is reference or test.b is reference:
            other = test.b if test.a is reference else test.a
            other.p_value = test.p_adjusted
            other.p_note = test.note or ("" if test.p_adjusted is not None else "no test")
