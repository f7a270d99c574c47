"""A searched spec path and its range, as a sweep's search and compare's report both read it:
whether a chosen value sits at the edge of its range, and which way a metric is better."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: a value in the outer 5 % of its range (of its log, for log_uniform) is at the range's edge
EDGE_MARGIN = 0.05
KINDS = ("uniform", "log_uniform", "int_uniform", "choice")


@dataclass(frozen=True)
class AxisRange:
    """One searched spec path: ``kind`` is uniform, log_uniform, int_uniform or choice;
    ``values`` is [low, high] or the choices."""

    path: str
    kind: str
    values: tuple[Any, ...]

    @property
    def log(self) -> bool:
        return self.kind == "log_uniform"

    def at_edge(self, value: Any) -> str | None:
        """'low' or 'high' when a chosen value lies in the outer 5 % of a numeric range: the
        optimum may lie outside it."""
        if self.kind == "choice" or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high = (float(v) for v in self.values)
        where = float(value)
        if self.log:
            if min(low, high, where) <= 0:
                return None
            low, high, where = math.log(low), math.log(high), math.log(where)
        margin = EDGE_MARGIN * (high - low)
        if where <= low + margin:
            return "low"
        if where >= high - margin:
            return "high"
        return None


def direction_of(metric: str) -> str | None:
    """maximize for accuracies, minimize for losses and errors; None when the name does not say."""
    name = metric.lower()
    if "accuracy" in name:
        return "maximize"
    if "loss" in name or "error" in name:
        return "minimize"
    return None
