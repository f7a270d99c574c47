"""Per-group numbers over seeds: mean, sample std and a t-distribution 95% interval, and the groups
ranked best first (altlearn.compare.pairwise then tests each against the best)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from altlearn.compare.grouping import NOT_SETTINGS, Group, config_params

CONFIDENCE = 0.95


@dataclass
class Estimate:
    """A quantity measured once per seed. std and the interval need two seeds or more."""

    values: list[float]
    mean: float
    std: float | None = None  # sample standard deviation (ddof=1)
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class GroupStats:
    group: Group
    seeds: list[str]
    test_accuracy: Estimate
    test_error: Estimate
    best_val_accuracy: Estimate | None  # None when the runs held out no validation set
    epochs: list[int]  # per run
    seconds_per_epoch: float | None
    samples_per_second: float | None
    p_value: float | None = None  # the pairwise test against the best group; None for the best itself
    p_note: str = ""  # why there is no p-value, when there is none
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.group.label

    @property
    def n(self) -> int:
        return self.test_accuracy.n


def estimate(values: list[float]) -> Estimate:
    """Mean, std and the t interval of a fraction (accuracy, error): the interval is clipped to
    [0, 1], as with two or three seeds it can reach past what a fraction can be."""
    from scipy import stats

    n = len(values)
    mean = _sum(values) / n
    if n < 2:
        return Estimate(values, mean)
    std = math.sqrt(_sum([(v - mean) * (v - mean) for v in values]) / (n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * std / math.sqrt(n)
    return Estimate(values, mean, std, max(0.0, mean - half), min(1.0, mean + half))


def summarize(group: Group) -> GroupStats:
    """The table's numbers for one group of FINISHED runs that all logged test_accuracy."""
    runs = group.runs
    seeds, accuracies = _per_seed(runs, [run.curves["test_accuracy"][-1][1] for run in runs])
    with_val = [run for run in runs if run.curves.get("val_accuracy")]
    best_vals = _per_seed(with_val, [max(v for _, v in run.curves["val_accuracy"]) for run in with_val])[1]
    stats = GroupStats(
        group=group,
        seeds=seeds,
        test_accuracy=estimate(accuracies),
        test_error=estimate([1.0 - a for a in accuracies]),
        best_val_accuracy=estimate(best_vals) if len(with_val) == len(runs) else None,
        epochs=[run.curves["test_accuracy"][-1][0] for run in runs],
        seconds_per_epoch=_mean_of_run_means(runs, "epoch_seconds"),
        samples_per_second=_mean_of_run_means(runs, "samples_per_second"),
    )
    if len(seeds) < len(runs):
        keys = [_sample_key(run, i) for i, run in enumerate(runs)]
        repeated = sorted({run.seed for run, key in zip(runs, keys) if keys.count(key) > 1})
        stats.notes.append(
            f"group {group.label!r} has several runs of one configuration with seed "
            f"{', '.join(repeated)}: each is one sample, the mean of its runs (repeats of a seed are "
            f"not independent), so its n counts {len(seeds)} samples of {len(runs)} runs"
        )
    return stats


def _per_seed(runs, values: list[float]) -> tuple[list[str], list[float]]:
    """One value per seed of each configuration, in the runs' order: the mean over its runs. A
    configuration's seed, not a run, is the unit of replication: a spec run three times with seed 0
    is one sample, whose spread says nothing of seed-to-seed variation. A group that mixes
    configurations (``--by rule.type``) keeps each configuration's seed 0 apart; runs without a
    logged seed ('?') count one each."""
    samples: dict[tuple, list[float]] = {}
    seeds: list[str] = []
    for index, (run, value) in enumerate(zip(runs, values)):
        key = _sample_key(run, index)
        if key not in samples:
            samples[key] = []
            seeds.append(run.seed)
        samples[key].append(value)
    return seeds, [_sum(group) / len(group) for group in samples.values()]


def _sample_key(run, index: int) -> tuple:
    if run.seed == "?":
        return ("?", index)
    settings = {k: v for k, v in config_params(run).items() if k not in NOT_SETTINGS}
    return (run.seed, tuple(sorted(settings.items())))


def _mean_of_run_means(runs, key: str) -> float | None:
    # Each run weighs the same, however many epochs it has.
    means = [
        _sum([v for _, v in run.curves[key]]) / len(run.curves[key]) for run in runs if run.curves.get(key)
    ]
    return _sum(means) / len(means) if means else None


def _sum(values: list[float]) -> float:
    """The exact sum, or inf where it overflows (math.fsum raises then): values no real run logs,
    which the table shows as inf and JSON as null, never as a traceback."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def rank(groups: list[GroupStats]) -> list[GroupStats]:
    """Best first (highest mean final test accuracy), the group the others are tested against marked.

    A best group with one seed cannot be tested against: the best group with several seeds is the
    reference then (its row says "reference"), so the other groups still get their p-values."""
    ranked = sorted(groups, key=lambda g: -g.test_accuracy.mean)
    reference = next((g for g in ranked if g.n >= 2), ranked[0])
    reference.p_note = "best" if reference is ranked[0] else "reference"
    return ranked
