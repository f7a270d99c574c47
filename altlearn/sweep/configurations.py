"""A sweep's configurations, and one configuration resolved into a validated spec for a seed.

A configuration is a base spec and the overrides the sweep file puts on it (``set``, a case, a
grid point, a random draw, a search's values). Overrides apply in this order, later ones winning:
the base spec, ``set``, the case, the grid point, the random draw (or a search's values), the
seed, and ``altlearn sweep -s``. Every value remembers where in the sweep file it came from, so
that a spec problem names that place.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

import yaml

from altlearn.components.values import MAX_RUN_NAME
from altlearn.errors import Problem, SpecError
from altlearn.spec.files import apply_overrides, set_path
from altlearn.sweep.sweep_file import Base, Distribution, SweepFile


@dataclass(frozen=True)
class Override:
    key: str  # a dotted spec path
    value: Any
    origin: str  # where in the sweep file: "set.train.epochs", "cases[1].rule.type", ...
    labelled: bool  # part of the configuration's readable label


@dataclass(frozen=True)
class Configuration:
    id: str  # "cases[1]" or "configuration 3": how messages name it
    label: str  # readable, e.g. "dfa, optimizer.lr=0.0005"
    base: Base
    overrides: tuple[Override, ...]


@dataclass(frozen=True)
class Trial:
    index: int
    configuration: Configuration
    seed: int
    spec: Any  # altlearn.spec.load.Spec
    key: str  # hash of the resolved spec's non-default values, seed included
    group_key: str  # the same without the seed: trials of one configuration share it
    # A search's trials (sweep/tuning.py): "search" or "final", the case's label, and a search
    # trial's number; their spec is only a probe until the trial is built, when it starts.
    phase: str = ""
    case: str = ""
    number: int = -1
    search: Any = None  # its case's search (altlearn.sweep.search_trials.SearchCase)

    @property
    def label(self) -> str:
        return self.configuration.label


def configurations(sweep: SweepFile) -> list[Configuration]:
    cases: list[tuple[str | None, str | None, Base | None, list[Override]]] = [
        (
            f"cases[{c.index}]",
            c.label,
            c.base,
            [Override(k, v, f"cases[{c.index}].{k}", c.label is None) for k, v in c.overrides.items()],
        )
        for c in sweep.cases
    ] or [(None, None, None, [])]
    grid_points = [
        [Override(k, v, f"grid.{k}", True) for k, v in zip(sweep.grid, values)]
        for values in itertools.product(*sweep.grid.values())
    ]
    draws = _draws(sweep)
    combos = list(itertools.product(cases, grid_points, draws))
    configurations = []
    for number, ((case_id, case_label, case_base, case_overrides), point, draw) in enumerate(combos, 1):
        base = case_base or sweep.base
        if base is None:  # a base given nowhere: read_sweep reported it
            continue
        overrides = [Override(k, v, f"set.{k}", False) for k, v in sweep.set.items()]
        overrides += case_overrides + point + draw
        parts = (
            [case_label] if case_label else ([case_base.path.stem] if case_base and case_base.path else [])
        )
        parts += [f"{o.key}={_text(o.value)}" for o in overrides if o.labelled]
        label = ", ".join(parts) or sweep.name
        configurations.append(
            Configuration(case_id or f"configuration {number}", label, base, tuple(overrides))
        )
    return configurations


def _draws(sweep: SweepFile) -> list[list[Override]]:
    """The random search's points: the same draws for every case, so cases compare like for like."""
    search = sweep.random
    if search is None:
        return [[]]
    rng = random.Random(search.seed)
    return [
        [Override(k, _draw(d, rng), f"random.space.{k}", True) for k, d in search.space.items()]
        for _ in range(search.trials)
    ]


def _draw(distribution: Distribution, rng: random.Random) -> Any:
    # Only rng.random() is used: its sequence for a seed is stable across Python versions.
    u = rng.random()
    if distribution.kind == "choice":
        return distribution.values[min(int(u * len(distribution.values)), len(distribution.values) - 1)]
    low, high = distribution.values
    if distribution.kind == "int_uniform":
        return min(low + int(u * (high - low + 1)), high)
    if distribution.kind == "log_uniform":
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    return float(f"{value:.4g}")  # readable labels and stable keys: 4 significant digits


def resolve(sweep, configuration: Configuration, seed, cli_overrides, problems) -> Any:
    """The configuration's spec for ``seed``; problems are appended, naming their origin."""
    from altlearn.spec.load import validate

    raw = copy.deepcopy(configuration.base.raw)
    where = f"{configuration.id} ({configuration.label})"
    origins: list[Override] = []
    for override in configuration.overrides:
        if seed is not None and override.key.strip() == "seed":
            problems.append(Problem(where, f"{override.origin}: the seed is set by `seeds`; remove it here"))
            continue
        try:
            set_path(raw, override.key, copy.deepcopy(override.value))
            origins.append(override)
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(Problem(where, f"{override.origin}: cannot set {override.key}: {exc.args[0]}"))
    if seed is not None:
        raw["seed"] = seed
    tracking = raw["tracking"] if isinstance(raw.get("tracking"), dict) else {}
    experiment = sweep.experiment or tracking.get("experiment") or "altlearn"
    raw["tracking"] = {
        **tracking,
        "experiment": experiment,
        "run_name": _run_name(configuration, seed),
    }
    # the command line's --set comes last, so a problem at its path is its doing
    origins += [
        Override(item.partition("=")[0].strip(), None, f"--set {item}", False) for item in cli_overrides
    ]
    try:
        apply_overrides(raw, list(cli_overrides))
        return validate(raw, source=configuration.base.label)
    except SpecError as exc:
        for problem in exc.problems:
            problems.append(Problem(where, _attributed(problem, origins, configuration.base)))
        return None


def _run_name(configuration: Configuration, seed: int | None) -> str:
    """The trial's MLflow run name: what it trains, first (the sweep's name is its parent run's,
    under which the UI lists it). Cut to the length MLflow keeps, as a label made of many overrides
    may not fit, and that is no mistake of the spec's tracking.run_name; the run's altlearn.group
    tag keeps the whole label."""
    tail = f", seed {seed}" if seed is not None else ""
    head = configuration.label
    room = MAX_RUN_NAME - len(tail)
    return (head if len(head) <= room else head[: room - 3] + "...") + tail


def _attributed(problem: Problem, origins: list[Override], base: Base) -> str:
    """A spec problem, prefixed with the place in the sweep file that most likely caused it."""
    problem_parts = _parts(problem.path)
    for override in reversed(origins):  # the latest override of a path is the one that counts
        key_parts = _parts(override.key)
        shared = min(len(key_parts), len(problem_parts))
        if shared and key_parts[:shared] == problem_parts[:shared]:
            said = problem.message if key_parts == problem_parts else str(problem)
            return f"{override.origin}: {said}"
    if problem.path.startswith("--set "):
        return str(problem)
    return f"base {base.label}: {problem}"


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("[", ".").replace("]", "").split(".") if p]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return str(value)
