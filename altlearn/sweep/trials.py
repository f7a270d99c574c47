"""A sweep file -> its trials: configurations (cases x grid x random draws, see
``altlearn.sweep.configurations``) times seeds, each resolved into a validated spec and given
stable keys, before any trial starts. A search's trials are made by ``altlearn.sweep.search_trials``.
"""

from __future__ import annotations

from collections.abc import Sequence

from altlearn.errors import Problem, SweepError
from altlearn.spec.keys import spec_keys
from altlearn.sweep.configurations import Configuration, Trial, configurations, resolve
from altlearn.sweep.search_trials import expand_search
from altlearn.sweep.sweep_file import SweepFile, read_sweep


def load_trials(path, cli_overrides: list[str] | None = None) -> tuple[SweepFile, list[Trial]]:
    """The sweep file and every trial in it, resolved and validated; SweepError lists every
    problem at once: those of the file's structure and those of each trial's spec."""
    sweep, problems = read_sweep(path)
    found: list[Problem] = []
    if sweep.search is not None:
        trials = expand_search(sweep, cli_overrides or [], found)
    else:
        trials = expand(sweep, cli_overrides or [], found)
    problems += _unique(found)  # the file's own problems are each at one place already
    if problems:
        raise SweepError(problems, str(sweep.path))
    return sweep, trials


def expand(sweep: SweepFile, cli_overrides: list[str], problems: list[Problem]) -> list[Trial]:
    """The trials of ``sweep``; their problems are appended to ``problems``."""
    made = configurations(sweep)
    trials: list[Trial] = []
    seeds: Sequence[int | None] = sweep.seeds or [None]
    # Seed-major: the first trials to finish cover every configuration once.
    order = [(c, s) for s in seeds for c in made]
    for configuration, seed in order:
        spec = resolve(sweep, configuration, seed, cli_overrides, problems)
        if spec is not None:
            trials.append(_trial(len(trials), configuration, spec))
    _check_distinct(trials, problems)
    return trials


def _trial(index: int, configuration: Configuration, spec) -> Trial:
    trial_key, group_key = spec_keys(spec)  # what differs from the defaults: see altlearn.spec.keys
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
