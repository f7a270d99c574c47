"""A search's trials: per case, ``search.trials`` search trials, then its finals on fresh seeds.

Their values are not known when the sweep starts (each search trial's are drawn when it starts,
from the trials finished by then; the finals' are the search's choice), so each trial here is a
slot with a stable key (its case, its phase, its number or seed) and a probe spec: the case
resolved at the ends of its ranges, which is what validation checks before anything runs. The
real spec is resolved when the trial starts (``altlearn.sweep.tuning``).

Search trials run with the base spec's seed, never evaluate the test set and log no model; the
finals run on seeds the search never used, with ``final.set`` on top.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from altlearn.errors import Problem
from altlearn.spec.axes import direction_of
from altlearn.spec.keys import KEY_LENGTH, spec_keys
from altlearn.sweep.configurations import Configuration, Override, Trial, configurations, resolve
from altlearn.sweep.search_space import Axis, PrunerSettings, SearchSettings
from altlearn.sweep.sweep_file import SweepFile

#: what every search trial sets: choosing on validation never looks at the test set, and a model
#: per search trial would only fill the artifact store
SEARCH_OVERRIDES = {"train.evaluate_test": False, "tracking.log_model": False}


@dataclass(frozen=True)
class SearchCase:
    """One case of a search: its configuration (base, set, the case's overrides), its search and
    the seeds of its finals."""

    configuration: Configuration
    settings: SearchSettings
    seed: int  # the search trials' seed (the base spec's)
    final_seeds: tuple[int, ...]
    probe: Any  # the case's spec at the low ends of its ranges: what validation checked

    @property
    def label(self) -> str:
        return self.configuration.label


def expand_search(sweep: SweepFile, cli_overrides: list[str], problems: list[Problem]) -> list[Trial]:
    """Every slot of the search, search trials first (round-robin over the cases, so that a search
    stopped early has given each case the same budget), then each case's finals."""
    search = sweep.search
    assert search is not None  # a search sweep
    made = configurations(sweep)
    cases = [c for c in map(lambda conf: _case(sweep, conf, cli_overrides, problems), made) if c]
    trials: list[Trial] = []
    for number in range(search.trials):
        for case in cases:
            trials.append(_slot(len(trials), case, "search", number, case.seed))
    for case in cases:
        for seed in case.final_seeds:
            trials.append(_slot(len(trials), case, "final", -1, seed))
    return trials


def _case(sweep, configuration, cli_overrides, problems) -> SearchCase | None:
    settings = settings_of(sweep, configuration)
    specs = [
        resolve(sweep, with_values(configuration, values), None, cli_overrides, problems)
        for values in (_ends(settings.axes, 0), _ends(settings.axes, -1))
    ]
    if None in specs:
        return None
    objective = _objective_problem(settings, specs[0])
    if objective:
        problems.append(Problem(f"{configuration.id} ({configuration.label})", objective))
        return None
    seed = specs[0].seed
    finals = _final_seeds(sweep, seed, problems)
    case = SearchCase(configuration, settings, seed, finals, specs[0])
    if finals:
        final = final_configuration(sweep, case, _ends(settings.axes, 0))
        if resolve(sweep, final, finals[0], cli_overrides, problems) is None:
            return None
    return case


def settings_of(sweep: SweepFile, configuration: Configuration) -> SearchSettings:
    search = sweep.search
    assert search is not None  # a search sweep
    case = next((c for c in sweep.cases if f"cases[{c.index}]" == configuration.id), None)
    space = {**search.space, **(case.space if case else {})}
    pruner = search.pruner
    named = direction_of(search.objective)  # by the metric's name; None when it does not say
    return SearchSettings(
        axes=tuple(Axis(path, d.kind, d.values) for path, d in space.items()),
        trials=search.trials,
        sampler=search.sampler,
        objective=search.objective,
        direction=search.direction or ("minimize" if named == "minimize" else "maximize"),
        objective_at=search.objective_at,
        pruner=PrunerSettings(pruner.type, pruner.min_epochs, pruner.reduction_factor, pruner.startup_trials),
        seed=search.seed,
        startup_trials=search.startup_trials,
    )


def _ends(axes: tuple[Axis, ...], end: int) -> dict[str, Any]:
    """Each axis at one end of its range (a choice's first or last value): the probes validated."""
    return {axis.path: axis.values[end] for axis in axes}


def _objective_problem(settings: SearchSettings, spec) -> str | None:
    if settings.objective.startswith("val_") and spec.data_options.val_size == 0:
        return (
            f"search.objective {settings.objective!r} needs a validation split: set data.val_size "
            "(in the sweep's set: or the base spec)"
        )
    return None


def _final_seeds(sweep: SweepFile, search_seed: int, problems: list[Problem]) -> tuple[int, ...]:
    assert sweep.final is not None  # read_sweep gives every search sweep its final
    seeds = sweep.final.seeds
    if isinstance(seeds, int):  # fresh seeds: the ones after the search's
        return tuple(search_seed + i for i in range(1, seeds + 1))
    if search_seed in seeds:
        problems.append(
            Problem(
                "final.seeds",
                f"{search_seed} is the seed the search trials ran with: finals need fresh seeds",
            )
        )
        return ()
    return tuple(seeds)


def with_values(configuration: Configuration, values: dict[str, Any]) -> Configuration:
    """The configuration of a search trial: its case's, the search's settings and its values."""
    fixed = [Override(k, v, "search", False) for k, v in SEARCH_OVERRIDES.items()]
    drawn = [Override(k, v, f"search.space.{k}", False) for k, v in values.items()]
    return replace(configuration, overrides=configuration.overrides + tuple(fixed + drawn))


def final_configuration(sweep: SweepFile, case: SearchCase, values: dict[str, Any]) -> Configuration:
    """A final's configuration: its case's, the chosen values, then ``final.set``."""
    chosen = [Override(k, v, "the search's choice", False) for k, v in values.items()]
    assert sweep.final is not None  # read_sweep gives every search sweep its final
    final_set = [Override(k, v, f"final.set.{k}", False) for k, v in sweep.final.set.items()]
    overrides = case.configuration.overrides + tuple(chosen + final_set)
    return replace(case.configuration, overrides=overrides)


def _slot(index: int, case: SearchCase, phase: str, number: int, seed: int) -> Trial:
    """A trial whose spec is resolved when it starts; its keys name its place, not its values."""
    identity = {
        "case": case.label,
        "overrides": [(o.key, repr(o.value)) for o in case.configuration.overrides],
        "base": case.configuration.base.label,
        "search": repr(case.settings.axes) + case.settings.objective + case.settings.sampler,
        "search_seed": case.settings.seed,
    }
    group = _hash({**identity, "phase": phase, "number": number})
    label = f"{case.label}, search {number}" if phase == "search" else case.label
    configuration = replace(case.configuration, label=label)
    # A final's key holds the search's budget: a search grown later chooses anew, and the finals
    # of the smaller one leave the sweep (superseded) rather than count for the larger.
    key = (
        group
        if phase == "search"
        else _hash({**identity, "phase": phase, "seed": seed, "of": case.settings.trials})
    )
    return Trial(index, configuration, seed, case.probe, key, group, phase, case.label, number, case)


def _hash(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:KEY_LENGTH]


def built_trial(slot: Trial, spec, label: str) -> Trial:
    """The slot with its resolved spec; a final's configuration key is its spec's, like any run's,
    so that compare keeps a case's finals together."""
    group_key = spec_keys(spec)[1] if slot.phase == "final" else slot.group_key
    return replace(
        slot, spec=spec, group_key=group_key, configuration=replace(slot.configuration, label=label)
    )


def search_notes(trials: list[Trial]) -> list[str]:
    """What in a valid search cannot do what it says: start-up draws that leave the sampler's model
    nothing to choose, a pruner whose grace period outlasts a case's training."""
    cases: dict[str, SearchCase] = {t.case: t.search for t in trials if t.phase == "search"}
    notes: list[str] = []
    settings = next(iter(cases.values())).settings if cases else None
    if settings and settings.sampler == "tpe" and settings.startup_trials >= settings.trials:
        notes.append(
            f"search.startup_trials ({settings.startup_trials}) is not below search.trials "
            f"({settings.trials}): every trial is a random draw and TPE never chooses one; lower "
            "startup_trials or raise trials"
        )
    for label, case in cases.items():
        pruner, epochs = case.settings.pruner, case.probe.train.epochs
        searched = any(axis.path == "train.epochs" for axis in case.settings.axes)  # the probe: its low end
        if pruner.type != "none" and not searched and pruner.min_epochs >= epochs:
            notes.append(
                f"{label!r}: search.pruner.min_epochs ({pruner.min_epochs}) is not below its "
                f"train.epochs ({epochs}): no trial of it can be pruned; lower min_epochs or set "
                "pruner: none"
            )
    return notes
