"""The sweep file's grammar (docs/sweeps.md): read and check it into a ``SweepFile``.

Only the sweep file's own structure is checked here; what its overrides do to each trial's spec is
checked by the spec validator, trial by trial, in ``altlearn.sweep.trials``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from altlearn.problem_text import did_you_mean, short
from altlearn.spec_files import Problem, SpecError, load_yaml

SWEEP_KEYS = (
    "name",
    "description",
    "base",
    "experiment",
    "set",
    "cases",
    "grid",
    "random",
    "seeds",
    "resources",
)
CASE_KEYS = ("label", "base")  # every other key of a case is a spec override
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
RANDOM_KEYS = ("trials", "seed", "space")
RESOURCE_KEYS = ("cpus", "gpus")


class SweepError(Exception):
    """One or more user mistakes in a sweep file or in the trials it makes; each names the file."""

    def __init__(self, problems: list[Problem], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        if len(self.problems) == 1 and not self.problems[0].path:  # the file itself: unread, not YAML
            message = self.problems[0].message
            return message if self.source in message else f"{self.source}: {message}"
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''} in the sweep"
        return "\n".join([head] + [f"  - {self.source}: {p}" for p in self.problems])


@dataclass(frozen=True)
class Base:
    """The spec a trial starts from: a file (``label`` is its path) or an inline mapping."""

    raw: dict[str, Any]
    label: str
    path: Path | None = None


@dataclass(frozen=True)
class Case:
    index: int
    overrides: dict[str, Any]
    label: str | None = None
    base: Base | None = None


@dataclass(frozen=True)
class Distribution:
    kind: str  # one of DISTRIBUTIONS
    values: tuple  # [low, high] or the choices


@dataclass(frozen=True)
class RandomSearch:
    trials: int
    seed: int
    space: dict[str, Distribution]


@dataclass(frozen=True)
class Resources:
    """What one trial needs; None: decided from the trial's spec (see altlearn.sweep.engines)."""

    cpus: float | None = None
    gpus: float | None = None


@dataclass
class SweepFile:
    path: Path
    text: str
    name: str
    description: str | None = None
    base: Base | None = None
    experiment: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    grid: dict[str, list] = field(default_factory=dict)
    random: RandomSearch | None = None
    seeds: list[int] | None = None
    resources: Resources = field(default_factory=Resources)


def read_sweep(path: str | Path) -> tuple[SweepFile, list[Problem]]:
    """Read a sweep file and check its structure: the sweep (with what could be read of it) and
    the problems found, so that the trials' own problems can be reported with them, all at once.
    A file that is not YAML raises SweepError at once."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except SpecError as exc:
        raise SweepError(exc.problems, str(path)) from None
    checker = _Checker(path)
    return checker.sweep(raw), checker.problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def sweep(self, raw: dict[str, Any]) -> SweepFile:
        for key in raw:
            if key not in SWEEP_KEYS:
                self.add(
                    str(key),
                    f"unknown key; {did_you_mean(key, list(SWEEP_KEYS))}keys: {', '.join(SWEEP_KEYS)}",
                )
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add("name", f"required: a non-empty name for the sweep, got {short(name)}")
            name = ""
        experiment = raw.get("experiment")
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            self.add("experiment", f"expected an MLflow experiment name, got {short(experiment)}")
        cases = self.cases(raw.get("cases"))
        base = self.base(raw["base"], "base") if raw.get("base") is not None else None
        # a base given but failing to load is reported already: only a base nowhere given is missing
        raw_cases = raw.get("cases") if isinstance(raw.get("cases"), list) else []
        every_case_has_one = bool(raw_cases) and all(
            isinstance(item, dict) and item.get("base") is not None for item in raw_cases
        )
        if raw.get("base") is None and not every_case_has_one:
            self.add(
                "base",
                "required (a spec file relative to the sweep file, or an inline spec) "
                "unless every case has its own base",
            )
        return SweepFile(
            path=self.path,
            text=self.path.read_text(),
            name=name,
            description=raw.get("description"),
            base=base,
            experiment=experiment,
            set=self.overrides(raw.get("set"), "set"),
            cases=cases,
            grid=self.grid(raw.get("grid")),
            random=self.random(raw.get("random")),
            seeds=self.seeds(raw.get("seeds")),
            resources=self.resources(raw.get("resources")),
        )

    def base(self, value: Any, where: str) -> Base | None:
        if isinstance(value, dict):
            return Base(raw=value, label=f"the inline spec at {where}")
        if not isinstance(value, str):
            self.add(
                where, f"expected a spec file (a path) or an inline spec (a mapping), got {short(value)}"
            )
            return None
        spec_path = (self.path.parent / value).resolve() if not Path(value).is_absolute() else Path(value)
        try:
            return Base(raw=load_yaml(spec_path), label=value, path=spec_path)
        except SpecError as exc:
            for problem in exc.problems:
                self.add(where, f"{value}: {problem}")
            return None

    def overrides(self, value: Any, where: str, reserved: tuple[str, ...] = ()) -> dict[str, Any]:
        """A mapping of dotted spec paths to values (``optimizer.lr: 0.001``)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(
                where, f"expected a mapping of spec paths to values (optimizer.lr: 0.001), got {short(value)}"
            )
            return {}
        out = {}
        for key, item in value.items():
            if key in reserved:
                continue
            if not isinstance(key, str) or not all(part.strip() for part in key.split(".")):
                self.add(
                    f"{where}.{key}", "a spec path is dotted names, e.g. optimizer.lr or network.layers.1.p"
                )
                continue
            out[key] = item
        return out

    def cases(self, value: Any) -> list[Case]:
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            self.add(
                "cases", f"expected a non-empty list of cases (mappings of overrides), got {short(value)}"
            )
            return []
        cases = []
        for index, item in enumerate(value):
            where = f"cases[{index}]"
            if not isinstance(item, dict):
                self.add(where, f"expected a mapping of spec paths to values, got {short(item)}")
                continue
            label = item.get("label")
            if label is not None and not isinstance(label, str):
                self.add(f"{where}.label", f"expected text, got {short(label)}")
                label = None
            base = self.base(item["base"], f"{where}.base") if item.get("base") is not None else None
            cases.append(Case(index, self.overrides(item, where, CASE_KEYS), label, base))
        return cases

    def grid(self, value: Any) -> dict[str, list]:
        grid = self.overrides(value, "grid")
        for key, values in list(grid.items()):
            if not isinstance(values, list) or not values:
                self.add(f"grid.{key}", f"expected a non-empty list of values to try, got {short(values)}")
                del grid[key]
            elif len({repr(v) for v in values}) != len(values):
                self.add(f"grid.{key}", f"a value appears twice in {short(values)}")
        return grid

    def random(self, value: Any) -> RandomSearch | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add(
                "random",
                f"expected {{trials: N, seed: S, space: {{path: distribution}}}}, got {short(value)}",
            )
            return None
        for key in value:
            if key not in RANDOM_KEYS:
                self.add(f"random.{key}", f"unknown key; keys: {', '.join(RANDOM_KEYS)}")
        trials, seed = value.get("trials"), value.get("seed", 0)
        if not _is_int(trials) or trials < 1:
            self.add("random.trials", f"expected a positive number of draws, got {short(trials)}")
        if not _is_int(seed):
            self.add("random.seed", f"expected an integer, got {short(seed)}")
        space = {}
        for key, spec in self.overrides(value.get("space"), "random.space").items():
            space[key] = self.distribution(spec, f"random.space.{key}")
        if not space:
            self.add("random.space", "required: at least one spec path with a distribution")
        if not _is_int(trials) or trials < 1 or not _is_int(seed) or None in space.values():
            return None
        return RandomSearch(trials, seed, space)

    def distribution(self, spec: Any, where: str) -> Distribution | None:
        allowed = "{uniform: [low, high]}, {log_uniform: [low, high]}, {int_uniform: [low, high]} or {choice: [a, b, ...]}"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            self.add(where, f"expected {allowed}, got {short(spec)}")
            return None
        kind, values = next(iter(spec.items()))
        if kind == "choice":
            if not isinstance(values, list) or not values:
                self.add(f"{where}.choice", f"expected a non-empty list, got {short(values)}")
                return None
            return Distribution(kind, tuple(values))
        check = _is_int if kind == "int_uniform" else _is_number
        if not (isinstance(values, list) and len(values) == 2 and all(check(v) for v in values)):
            self.add(
                f"{where}.{kind}",
                f"expected [low, high] ({'integers' if kind == 'int_uniform' else 'numbers'}), got {short(values)}",
            )
            return None
        low, high = values
        if low > high or (kind == "log_uniform" and low <= 0):
            rule = "0 < low <= high" if kind == "log_uniform" else "low <= high"
            self.add(f"{where}.{kind}", f"{short(values)} is invalid: needs {rule}")
            return None
        return Distribution(kind, (low, high))

    def seeds(self, value: Any) -> list[int] | None:
        if value is None:
            return None
        if _is_int(value) and value >= 1:
            return list(range(value))  # seeds: 3 means [0, 1, 2]
        if isinstance(value, list) and value and all(_is_int(v) for v in value):
            if len(set(value)) != len(value):
                self.add("seeds", f"a seed appears twice in {short(value)}")
            return list(value)
        self.add("seeds", f"expected a list of integer seeds ([0, 1, 2]) or a count (3), got {short(value)}")
        return None

    def resources(self, value: Any) -> Resources:
        if value is None:
            return Resources()
        if not isinstance(value, dict):
            self.add("resources", f"expected {{cpus: N, gpus: G}}, got {short(value)}")
            return Resources()
        for key in value:
            if key not in RESOURCE_KEYS:
                self.add(f"resources.{key}", f"unknown key; keys: {', '.join(RESOURCE_KEYS)}")
        cpus, gpus = value.get("cpus"), value.get("gpus")
        if cpus is not None and (not _is_number(cpus) or cpus <= 0):
            self.add("resources.cpus", f"expected a number > 0 of CPU cores per trial, got {short(cpus)}")
            cpus = None
        if gpus is not None and (not _is_number(gpus) or gpus < 0):
            self.add(
                "resources.gpus",
                f"expected a number >= 0 of GPUs per trial (0.25: four trials share one), got {short(gpus)}",
            )
            gpus = None
        return Resources(cpus, gpus)
