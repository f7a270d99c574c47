"""Read a sweep file into a ``SweepFile``: its grammar (``altlearn.sweep.grammar``), the rules across
its keys, its bounds, and its base specs read.

Only the sweep file's own structure is checked here; what its overrides do to each trial's spec is
checked by the spec validator, trial by trial, in ``altlearn.sweep.trials``. The number of trials
is bounded here, before any configuration is made: a sweep that would make millions is refused
at once instead of validating them for hours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from altlearn.components.validator import pydantic_problems
from altlearn.errors import Problem, SpecError, SweepError
from altlearn.spec.files import load_yaml
from altlearn.sweep.extends import with_extends
from altlearn.sweep.file_model import SweepModel, unknown_key
from altlearn.sweep.grammar import MAX_TRIALS, MAX_TRIALS_CEILING, Distribution, RandomSearch, Resources
from altlearn.sweep.search_grammar import Final, Search, search_problems
from altlearn.text import short

__all__ = ["Base", "Case", "Distribution", "RandomSearch", "Resources", "SweepFile", "read_sweep"]


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
    space: dict[str, Distribution] = field(default_factory=dict)  # its own search axes


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
    seeds: Sequence[int] | None = None  # a count of seeds is a range
    resources: Resources = field(default_factory=Resources)
    max_trials: int = MAX_TRIALS
    search: Search | None = None  # a search per case, then its finals (docs/tuning.md)
    final: Final | None = None


def read_sweep(path: str | Path) -> tuple[SweepFile, list[Problem]]:
    """Read a sweep file and check its structure: the sweep (with what could be read of it) and
    the problems found, so that the trials' own problems can be reported with them, all at once.
    A file that is not YAML, or that would make more trials than its bound, raises SweepError at
    once."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except SpecError as exc:
        raise SweepError(exc.problems, str(path)) from None
    raw, merged_text = with_extends(raw, path) if isinstance(raw, dict) else (raw, None)
    problems: list[Problem] = []
    model = _validated(raw, problems) or SweepModel()
    sweep = SweepFile(
        path=path,
        text=merged_text or path.read_text(),
        name=model.name or "",
        description=model.description,
        base=_base(model.base, "base", path, problems),
        experiment=model.experiment,
        set=model.set,
        cases=[
            Case(
                i,
                dict(case.model_extra or {}),
                case.label,
                _base(case.base, f"cases[{i}].base", path, problems),
                dict(case.search.space) if case.search else {},
            )
            for i, case in enumerate(model.cases or [])
        ],
        grid=model.grid,
        random=model.random,
        seeds=model.seeds,
        resources=model.resources,
        max_trials=model.max_trials,
        search=model.search,
        final=(model.final or Final()) if model.search else model.final,
    )
    _check_across_keys(raw, problems)
    problems += search_problems(raw, sweep.search, [c.space for c in sweep.cases])
    too_many = _too_many_trials(sweep)
    if too_many:  # making the trials would take hours: report what is known now
        raise SweepError([*problems, too_many], str(path))
    return sweep, problems


def _validated(raw: dict[str, Any], problems: list[Problem]) -> SweepModel | None:
    """The file's model; where parts of it are wrong, their problems, and the model of the rest."""
    try:
        return SweepModel.model_validate(raw)
    except ValidationError as exc:
        problems += pydantic_problems(exc, "", SweepModel, "the sweep file", unknown=unknown_key)
        locations = [err["loc"] for err in exc.errors()]
    if not all(locations):
        return None
    kept: dict[str | int, Any] = dict(raw.items())  # pydantic's locations are str | int
    for key, *inner in locations:
        section = kept.get(key)
        if key in ("set", "grid") and inner and isinstance(section, dict):
            kept[key] = {k: v for k, v in section.items() if k != inner[0]}  # only the wrong path
        else:
            kept.pop(key, None)
    try:
        return SweepModel.model_validate(kept)
    except ValidationError:  # not expected (each check is of one key); then there are no trials
        return None


def _base(value: str | dict | None, where: str, sweep_path: Path, problems: list[Problem]) -> Base | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return Base(raw=value, label=f"the inline spec at {where}")
    spec_path = Path(value) if Path(value).is_absolute() else (sweep_path.parent / value).resolve()
    try:
        return Base(raw=load_yaml(spec_path), label=value, path=spec_path)
    except SpecError as exc:
        problems += [Problem(where, f"{value}: {problem}") for problem in exc.problems]
        return None


def _check_across_keys(raw: dict[str, Any], problems: list[Problem]) -> None:
    """The rules that involve several keys, read from the file as written: a mistake in one case
    must not hide a label the others share."""
    if raw.get("name") is None:
        problems.append(
            Problem("name", f"required: a non-empty name for the sweep, got {short(raw.get('name'))}")
        )
    listed = raw["cases"] if isinstance(raw.get("cases"), list) else []
    cases = [case if isinstance(case, dict) else {} for case in listed]
    # a base given but wrong is reported already: only a base given nowhere is missing
    if raw.get("base") is None and not (cases and all(c.get("base") is not None for c in cases)):
        problems.append(
            Problem(
                "base",
                "required (a spec file relative to the sweep file, or an inline spec) "
                "unless every case has its own base",
            )
        )
    first: dict[str, int] = {}
    for index, case in enumerate(cases):
        label = case.get("label")
        other = first.setdefault(label, index) if isinstance(label, str) else index
        if other != index:
            problems.append(
                Problem(
                    f"cases[{index}].label",
                    f"{short(label)} is the label of cases[{other}] too; a label names one "
                    "configuration in tables, run names and --case: make them differ",
                )
            )


def _too_many_trials(sweep: SweepFile) -> Problem | None:
    """Whether cases x grid points x random draws x seeds passes the sweep's bound, computed from
    the counts alone: no configuration is made, whatever their number."""
    if sweep.search is not None:
        return _too_many_searched(sweep, sweep.search)
    factors = [("cases", len(sweep.cases), "cases")] if sweep.cases else []
    factors += [(f"grid.{key}", len(values), "values") for key, values in sweep.grid.items()]
    if sweep.random is not None:
        factors.append(("random.trials", sweep.random.trials, "draws"))
    if sweep.seeds is not None:
        # a count of seeds is a range, whose len() raises past 2**63
        count = sweep.seeds.stop if isinstance(sweep.seeds, range) else len(sweep.seeds)
        factors.append(("seeds", count, "seeds"))
    trials = math.prod(count for _, count, _ in factors)
    if trials <= sweep.max_trials:
        return None
    made_of = " x ".join(f"{where}: {_number(count)} {noun}" for where, count, noun in factors)
    bound = "its max_trials" if sweep.max_trials != MAX_TRIALS else "the bound max_trials"
    remedy = (
        f"make a factor smaller, or raise max_trials (up to {MAX_TRIALS_CEILING:,}) if you mean it"
        if trials <= MAX_TRIALS_CEILING
        else f"make a factor smaller (max_trials goes up to {MAX_TRIALS_CEILING:,})"
    )
    return Problem(
        "",
        f"the sweep makes {_number(trials)} trials ({made_of}), more than {bound} "
        f"({sweep.max_trials:,}): every trial is resolved and validated before the first starts; {remedy}",
    )


def _number(count: int) -> str:
    # YAML takes integers of up to 4300 digits: their product may have more than str() writes
    return f"{count:,}" if count < 10**15 else f"about 10^{int(count.bit_length() * math.log10(2))}"


def _too_many_searched(sweep: SweepFile, search: Search) -> Problem | None:
    """A search makes, per case, its search trials and its finals."""
    cases = max(1, len(sweep.cases))
    seeds = sweep.final.seeds if sweep.final else 0
    finals = seeds if isinstance(seeds, int) else len(seeds)
    trials = cases * (search.trials + finals)
    if trials <= sweep.max_trials:
        return None
    return Problem(
        "search.trials",
        f"the sweep makes {trials:,} trials ({cases} cases x ({search.trials} search trials + "
        f"{finals} finals)), more than max_trials ({sweep.max_trials:,}): make a factor smaller, or "
        f"raise max_trials (up to {MAX_TRIALS_CEILING:,})",
    )
