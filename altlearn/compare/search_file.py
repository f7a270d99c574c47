"""A search's settings, read back from the sweep file its parent run keeps (artifact ``sweep.yaml``):
the objective and its direction, the budget, the sampler and pruner, and each axis's range (which
the edge warning and the landscape's log axes need).

compare sits below altlearn.sweep (the sweep imports compare), so the file is read here with
yaml alone: only the ``search``, ``final`` and ``cases`` keys, which the sweep validated when it
ran. The edge rule and the direction of a metric are altlearn.spec.axes's, as the sweep's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from altlearn.spec.axes import KINDS, AxisRange, direction_of

SWEEP_FILE_ARTIFACT = "sweep.yaml"
MAX_SWEEP_FILE_BYTES = 1_000_000
CASE_KEYS = ("label", "base", "search")  # a case's keys that are not overrides


@dataclass(frozen=True)
class CaseSpace:
    """A case as the file writes it (its label, if any, and its overrides) and its own axes."""

    label: str | None
    overrides: dict[str, Any]
    axes: dict[str, AxisRange]


@dataclass(frozen=True)
class SearchPlan:
    objective: str = "val_accuracy"
    direction: str = "maximize"
    objective_at: str = "last"  # last | best
    trials: int | None = None  # search trials per case
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_min_epochs: int = 1
    final_seeds: Any = None  # a count or a list, as written
    space: dict[str, AxisRange] = field(default_factory=dict)
    cases: tuple[CaseSpace, ...] = ()

    def axes_for(self, case_label: str, params: Mapping[str, str]) -> dict[str, AxisRange]:
        """The shared axes and the case's own: the case is found by its label, else by its
        overrides agreeing with a run's params (an unlabelled case's label is made by the sweep)."""
        own = next((c for c in self.cases if c.label is not None and c.label == case_label), None)
        if own is None:
            matching = [c for c in self.cases if c.label is None and c.axes and _agrees(c.overrides, params)]
            own = matching[0] if len(matching) == 1 else None
        return {**self.space, **(own.axes if own else {})}


def _agrees(overrides: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    return all(_same(value, params.get(path)) for path, value in overrides.items())


def _same(value: Any, param: str | None) -> bool:
    if param is None:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(param) == float(value)
        except ValueError:
            return False
    return str(value) == param


def parse_plan(text: str) -> SearchPlan | None:
    """The search of a sweep file's text; None when it has none or is not a mapping."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    search = raw.get("search") if isinstance(raw, dict) else None
    if not isinstance(search, dict):
        return None
    objective = str(search.get("objective") or "val_accuracy")
    pruner = search.get("pruner")
    pruner = {"type": pruner} if isinstance(pruner, str) else pruner if isinstance(pruner, dict) else {}
    final = raw.get("final") if isinstance(raw.get("final"), dict) else {}
    return SearchPlan(
        objective=objective,
        direction=str(search.get("direction") or direction_of(objective) or "maximize"),
        objective_at=str(search.get("objective_at") or "last"),
        trials=_int(search.get("trials")),
        sampler=str(search.get("sampler") or "tpe"),
        pruner=str(pruner.get("type") or "median"),
        pruner_min_epochs=_int(pruner.get("min_epochs")) or 1,
        final_seeds=final.get("seeds", 5),
        space=_axes(search.get("space")),
        cases=tuple(_case(case) for case in raw.get("cases") or [] if isinstance(case, dict)),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _case(case: dict) -> CaseSpace:
    own = case["search"] if isinstance(case.get("search"), dict) else {}
    label = case.get("label")
    overrides = {k: v for k, v in case.items() if k not in CASE_KEYS}
    return CaseSpace(str(label) if label is not None else None, overrides, _axes(own.get("space")))


def _axes(space: Any) -> dict[str, AxisRange]:
    axes = {}
    for path, distribution in (space or {}).items() if isinstance(space, dict) else ():
        if isinstance(distribution, dict) and len(distribution) == 1:
            kind, values = next(iter(distribution.items()))
            if kind in KINDS and isinstance(values, list) and (kind == "choice" or len(values) == 2):
                axes[str(path)] = AxisRange(str(path), kind, tuple(values))
    return axes


def read_sweep_text(client, run_id: str) -> str | None:
    """The sweep file logged to the parent run, or None if it has none (or it cannot be read)."""
    from altlearn.tracking.store import quiet_downloads

    try:
        with quiet_downloads(), tempfile.TemporaryDirectory(prefix="altlearn-compare-") as folder:
            local = Path(client.download_artifacts(run_id, SWEEP_FILE_ARTIFACT, folder))
            if local.stat().st_size > MAX_SWEEP_FILE_BYTES:  # a shared store's data: bounded
                return None
            return local.read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - no such artifact, a store without its artifacts, not text
        return None
