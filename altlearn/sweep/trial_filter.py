"""``altlearn sweep --case PATTERN --seed N``: run part of a sweep now and the rest later. The sweep
itself stays whole (its parent run, its trial list, its summary); only which trials run this time
changes, so a later run without a selection finishes it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from altlearn.errors import SweepUsageError
from altlearn.sweep.configurations import Trial


def select(trials: list[Trial], cases: tuple[str, ...], seeds: tuple[int, ...]) -> set[int]:
    """The indices of the trials to run: a configuration label matching one of ``cases`` (see
    ``matches``; none given: every configuration) and a seed in ``seeds`` (none given: every seed).
    A pattern or seed that selects nothing is a mistake."""
    labels = sorted({t.label for t in trials})
    known = sorted({t.seed for t in trials})
    problems = []
    unmatched = [p for p in cases if not any(matches(label, p) for label in labels)]
    if unmatched:
        problems.append(
            f"--case {', '.join(repr(p) for p in unmatched)} matches no configuration of this sweep; "
            f"its configurations are: {', '.join(repr(label) for label in labels)} "
            f"(shell-style patterns: '3x800 *', '*dfa')"
        )
    missing = [s for s in seeds if s not in known]
    if missing:
        problems.append(
            f"--seed {', '.join(map(str, missing))}: this sweep has seeds {', '.join(map(str, known))}"
        )
    if problems:
        raise SweepUsageError("\n".join(problems))
    return {
        t.index
        for t in trials
        if (not cases or any(matches(t.label, p) for p in cases)) and (not seeds or t.seed in seeds)
    }


def matches(label: str, pattern: str) -> bool:
    """The label itself (brackets included: 'network.layers[1].out_features=16'), a shell-style
    pattern ('3x800 *', case-sensitive), or a case's own label in a cases x grid sweep ('bp' for
    'bp, optimizer.lr=0.001')."""
    return label == pattern or label.startswith(pattern + ", ") or fnmatchcase(label, pattern)


def final_only(sweep, trials: list[Trial], selected: set[int] | None) -> set[int]:
    """--final-only: the finals among the selected trials (a case's finals run once its search
    is done; the queue says which cases are not)."""
    if sweep.search is None:
        raise SweepUsageError("--final-only runs the finals of a search: this sweep file has no search:")
    return {t.index for t in trials if t.phase == "final" and (selected is None or t.index in selected)}
