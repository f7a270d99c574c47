"""The grammar of a search (docs/tuning.md): ``search:`` (what is searched, with which budget, by
which sampler and pruner, chosen by which objective), a case's own ``search: {space: ...}``, and
``final:`` (the chosen configuration of each case, re-run on fresh seeds).

Each key is a pydantic field validated like the rest of a sweep file (``altlearn.sweep.grammar``
holds the shared value types); the rules that span keys (``search`` beside ``grid``, an
objective the trials will log) are in ``altlearn.sweep.sweep_file``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, WrapValidator

from altlearn.components.values import Count, NonNegativeCount, Seed
from altlearn.errors import Problem
from altlearn.sweep.grammar import Distribution, Overrides, SpecPath, _mapping_of, _refuse, _Section, _seeds
from altlearn.text import short

#: Search trials one case may run: a search of more is a grid sweep's job.
MAX_SEARCH_TRIALS = 10_000
#: Fresh seeds the finals of one case may run.
MAX_FINAL_SEEDS = 1000
#: a metric's name, as runs log it
MAX_METRIC_NAME = 250

Space = Annotated[
    dict[SpecPath, Distribution],
    _mapping_of("a mapping of spec paths to distributions ({optimizer.lr: {log_uniform: [1.0e-5, 1.0e-2]}})"),
]


def _pruner_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class Pruner(_Section):
    """Which Optuna pruner stops hopeless trials, and after how many epochs at the earliest."""

    form: ClassVar[str] = "{type: median | successive_halving | hyperband | none, min_epochs: N}"
    type: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    min_epochs: Count = Field(default=1, description="the grace period: no trial is pruned before this epoch")
    reduction_factor: Annotated[int, Field(ge=2, le=16)] = 3
    startup_trials: NonNegativeCount = 5


class Search(_Section):
    form: ClassVar[str] = "{space: {...}, trials: N, sampler: tpe, objective: val_accuracy, ...}"
    space: Space = {}
    trials: Annotated[Count, Field(le=MAX_SEARCH_TRIALS)]
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    objective: Annotated[str, Field(min_length=1, max_length=MAX_METRIC_NAME)] = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = None
    objective_at: Literal["last", "best"] = "last"
    pruner: Annotated[Pruner, BeforeValidator(_pruner_shorthand)] = Pruner()
    seed: Seed = 0
    startup_trials: NonNegativeCount = 10


class CaseSearch(_Section):
    """A case's own axes (a rule's options: pc's inference_lr), joining the shared space."""

    form: ClassVar[str] = "{space: {spec.path: distribution}}"
    space: Space


def _final_seeds(value: Any, handler) -> int | list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_FINAL_SEEDS:
            raise _refuse(f"{value} is invalid: a count of fresh seeds from 1 to {MAX_FINAL_SEEDS}")
        return value
    if isinstance(value, list) and len(value) > MAX_FINAL_SEEDS:
        raise _refuse(f"{short(value)} is invalid: at most {MAX_FINAL_SEEDS} final seeds")
    return list(_seeds(value, handler))


class Final(_Section):
    form: ClassVar[str] = "{seeds: N, set: {spec.path: value}}"
    #: a count of fresh seeds (the search's seed + 1, + 2, ...) or the seeds themselves
    seeds: Annotated[int | list[Seed], WrapValidator(_final_seeds)] = 5
    set: Overrides = {}


def search_problems(raw: dict[str, Any], search: Search | None, case_spaces: list[dict]) -> list[Problem]:
    """The rules of a search that span keys, read from the file as written and its model."""
    from altlearn.spec.axes import direction_of

    if "search" not in raw:
        return [Problem("final", "re-runs the configuration a search chose: it needs search:")] * (
            "final" in raw
        )
    problems = [
        Problem(key, f"a search draws its own points: search: replaces {key}:, remove one of the two")
        for key in ("grid", "random")
        if key in raw
    ]
    if "seeds" in raw:
        problems.append(
            Problem(
                "seeds",
                "beside search:, the search runs with the base spec's seed and the finals "
                "with final.seeds: remove seeds",
            )
        )
    if search is None:
        return problems  # its own problems are reported already
    if not search.space and not (case_spaces and all(case_spaces)):
        problems.append(
            Problem(
                "search.space",
                "required: at least one spec path to search, unless every case has its own search.space",
            )
        )
    if search.direction is None and direction_of(search.objective) is None:
        problems.append(
            Problem(
                "search.direction",
                f"required: whether to maximize or minimize {search.objective!r} "
                "(only the names of accuracies, losses and errors say it themselves)",
            )
        )
    if search.objective.startswith("test_"):
        problems.append(
            Problem(
                "search.objective",
                f"{search.objective!r} is a test metric: a search chooses on "
                "validation (val_accuracy, val_loss) and never evaluates the test set",
            )
        )
    if search.sampler == "grid":
        problems += _grid_problems(search, case_spaces)
    return problems


def _grid_problems(search: Search, case_spaces: list[dict]) -> list[Problem]:
    problems = []
    spaces = [{**search.space, **own} for own in case_spaces] or [dict(search.space)]
    for where, space in [("search.space", search.space)] + [
        (f"cases[{i}].search.space", own) for i, own in enumerate(case_spaces)
    ]:
        for path, distribution in space.items():
            if distribution.kind not in ("choice", "int_uniform"):
                problems.append(
                    Problem(
                        f"{where}.{path}",
                        "the grid sampler takes {choice: [...]} or "
                        "{int_uniform: [low, high]}: a grid of a continuous range has no points",
                    )
                )
    sizes = [_grid_size(space) for space in spaces]
    if not problems and search.trials > min(sizes):
        problems.append(
            Problem(
                "search.trials",
                f"{search.trials} is more than the {min(sizes)} points of the grid; "
                "a grid search runs each point once",
            )
        )
    return problems


def _grid_size(space: dict) -> int:
    size = 1
    for distribution in space.values():
        low_high = distribution.values
        size *= len(low_high) if distribution.kind == "choice" else int(low_high[1] - low_high[0] + 1)
    return size
