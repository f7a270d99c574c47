"""``--select-by METRIC --per PARAM``: an ordinary grid sweep read as "each at its best".

Per value of ``--per`` (rule.type by default), the configuration with the best mean of METRIC at
the last epoch over its seeds is chosen, and that configuration's test accuracy is reported. The
choice is made on validation only: a test metric is refused, since choosing on the numbers one
then reports inflates them.
"""

from __future__ import annotations

import math
from typing import Any

from altlearn.compare.grouping import Group, check_by, config_params
from altlearn.compare.labels import number
from altlearn.compare.search import Candidate, CaseChoice
from altlearn.errors import CompareError
from altlearn.spec.axes import AxisRange, direction_of


def check_select_by(metric: str | None, per: list[str] | None) -> str | None:
    """The direction to choose in (maximize, minimize); an error for a test metric, a metric
    whose name does not say its direction, or --per without --select-by."""
    if metric is None:
        if per:
            raise CompareError("--per chooses a configuration per value: give the metric with --select-by")
        return None
    if metric.startswith("test_"):
        raise CompareError(
            f"--select-by {metric}: choosing on the test set and then reporting it inflates the "
            "result; choose on validation (--select-by val_accuracy or val_loss) and report test"
        )
    direction = direction_of(metric)
    if direction is None:
        raise CompareError(
            f"--select-by {metric}: the name does not say whether higher or lower is better; use "
            "an accuracy (maximised) or a loss or error (minimised), e.g. val_accuracy"
        )
    return direction


def choose(groups: list[Group], metric: str, per: list[str], direction: str) -> list[CaseChoice]:
    """Per value of ``per``: every configuration as a candidate, the best mean of ``metric``
    chosen (ties: the first)."""
    runs = [run for group in groups for run in group.runs]
    check_by(runs, per)
    cases: dict[str, list[Group]] = {}
    for group in groups:
        values = {_per_value(run.params, per) for run in group.runs}
        if len(values) > 1:
            raise CompareError(
                f"group {group.label!r} mixes values of --per {','.join(per)}: group by them too "
                f"(--by {','.join(per)},...) or leave --by out"
            )
        cases.setdefault(values.pop(), []).append(group)
    return [_case(label, members, metric, direction) for label, members in cases.items()]


def _per_value(params: dict[str, str], per: list[str]) -> str:
    return ", ".join(f"{name}={params.get(name, '(unset)')}" for name in per)


def _case(label: str, groups: list[Group], metric: str, direction: str) -> CaseChoice:
    varying = _varying(groups)
    candidates = [_candidate(group, metric, varying) for group in groups]
    complete = [c for c in candidates if c.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    chosen = min(complete, key=lambda c: sign * (c.value or 0.0), default=None)  # min: the first of ties
    axes = _tried(candidates, varying)
    case = CaseChoice(label, candidates, chosen, axes)
    if chosen is not None:
        case.chosen_values = dict(chosen.values)
        case.edges = _edges(chosen.values, axes)
    return case


def _varying(groups: list[Group]) -> list[str]:
    """The params that differ between a case's configurations: what the choice chooses."""
    configs = [config_params(group.runs[0]) for group in groups]
    keys = sorted({k for config in configs for k in config})
    return [k for k in keys if len({config.get(k) for config in configs}) > 1]


def _candidate(group: Group, metric: str, varying: list[str]) -> Candidate:
    finals = [run.curves[metric][-1][1] for run in group.runs if run.curves.get(metric)]
    finite = [v for v in finals if math.isfinite(v)]
    complete = len(finite) == len(group.runs) and finite
    value = math.fsum(finite) / len(finite) if complete else None
    params = config_params(group.runs[0])
    values = {key: typed(params[key]) for key in varying if key in params}
    return Candidate(group.label, values, "complete" if complete else "failed", value, list(group.runs))


def typed(text: str) -> Any:
    """A param's text as the value it was: 0.001 a float, 3 an int, anything else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _tried(candidates: list[Candidate], varying: list[str]) -> dict[str, AxisRange]:
    """Each numeric varied param's values tried, as a choice: the grid's points."""
    axes = {}
    for key in varying:
        values = sorted({c.values[key] for c in candidates if _numeric(c.values.get(key))})
        if len(values) >= 2:
            axes[key] = AxisRange(key, "choice", tuple(values))
    return axes


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _edges(values: dict[str, Any], axes: dict[str, AxisRange]) -> dict[str, str]:
    """A chosen value that is the smallest or largest of its grid: the best may lie beyond it."""
    warnings = {}
    for key, axis in axes.items():
        value, tried = values.get(key), axis.values
        if value in (tried[0], tried[-1]):
            side = "smallest" if value == tried[0] else "largest"
            shown = ", ".join(number(v) for v in tried)
            warnings[key] = f"{key} = {number(value)} is the {side} value tried ({shown})"
    return warnings
