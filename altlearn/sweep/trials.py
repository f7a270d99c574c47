"""A sweep file -> its trials: configurations (cases x grid x random draws) times seeds, each
resolved into a validated spec and given stable keys, before any trial starts.

Overrides apply in this order, later ones winning: the base spec, ``set``, the case, the grid
point, the random draw, the seed, and ``altlearn sweep -s``. Every value remembers where in the
sweep file it came from, so that a spec problem names that place.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

import yaml

from altlearn.spec_files import Problem, SpecError, apply_overrides, set_path
from altlearn.spec_keys import spec_keys
from altlearn.sweep.sweep_file import Base, Distribution, SweepError, SweepFile, read_sweep


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
    spec: Any  # altlearn.spec.Spec
    key: str  # hash of the resolved spec's non-default values, seed included
    group_key: str  # the same without the seed: trials of one configuration share it

    @property
    def label(self) -> str:
        return self.configuration.label


def load_trials(path, cli_overrides: list[str] | None = None) -> tuple[SweepFile, list[Trial]]:
    """The sweep file and every trial in it, resolved and validated; SweepError lists every
    problem at once: those of the file's structure and those of each trial's spec."""
    sweep, problems = read_sweep(path)
    trials = expand(sweep, cli_overrides or [], problems)
    if problems:
        raise SweepError(_unique(problems), str(sweep.path))
    return sweep, trials


def expand(sweep: SweepFile, cli_overrides: list[str], problems: list[Problem]) -> list[Trial]:
    """The trials of ``sweep``; their problems are appended to ``problems``."""
    configurations = [c for c in _configurations(sweep) if c.base is not None]
    trials: list[Trial] = []
    seeds = sweep.seeds
    # Seed-major: the first trials to finish cover every configuration once.
    order = [(c, s) for s in (seeds or [None]) for c in configurations]
    for configuration, seed in order:
        spec = _resolve(sweep, configuration, seed, cli_overrides, problems)
        if spec is not None:
            trials.append(_trial(len(trials), configuration, spec))
    _check_distinct(trials, problems)
    return trials


def _configurations(sweep: SweepFile) -> list[Configuration]:
    cases = [
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


def _resolve(sweep, configuration: Configuration, seed, cli_overrides, problems) -> Any:
    """The configuration's spec for ``seed``; problems are appended, naming their origin."""
    from altlearn.spec import validate

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
    tracking = raw.get("tracking") if isinstance(raw.get("tracking"), dict) else {}
    experiment = sweep.experiment or tracking.get("experiment") or "altlearn"
    run_name = f"{sweep.name}: {configuration.label}" + (f", seed {seed}" if seed is not None else "")
    raw["tracking"] = {**tracking, "experiment": experiment, "run_name": run_name}
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


def _trial(index: int, configuration: Configuration, spec) -> Trial:
    trial_key, group_key = spec_keys(spec)  # what differs from the defaults: see altlearn.spec_keys
    return Trial(index, configuration, spec.seed, spec, trial_key, group_key)


def _check_distinct(trials: list[Trial], problems: list[Problem]) -> None:
    """Two configurations that resolve to the same spec would be one trial run twice."""
    first: dict[str, Trial] = {}
    for trial in trials:
        other = first.setdefault(trial.key, trial)
        if other is not trial and other.configuration.id != trial.configuration.id:
            problems.append(
                Problem(
                    f"{trial.configuration.id} ({trial.label})",
                    f"resolves to the same spec as {other.configuration.id} ({other.label}) with "
                    f"seed {trial.seed}: make the configurations differ, or remove one",
                )
            )


def _unique(problems: list[Problem]) -> list[Problem]:
    """A mistake repeats for every seed of a configuration, and a mistake in ``set`` for every
    configuration: report each once, naming all the configurations it concerns."""
    where_by_message: dict[str, list[str]] = {}
    for problem in problems:
        wheres = where_by_message.setdefault(problem.message, [])
        if problem.path not in wheres:
            wheres.append(problem.path)
    out = []
    for message, wheres in where_by_message.items():
        if len(wheres) > 1:  # name them by id alone: "cases[0], cases[1]"
            wheres = list(dict.fromkeys(w.split(" (")[0] for w in wheres))
        out.append(Problem(", ".join(wheres), message))
    return out


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return str(value)
