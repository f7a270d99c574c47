"""A sweep file's top level and its cases, as pydantic models: the keys of ``altlearn.sweep.grammar``
(grids, random draws, resources) and of ``altlearn.sweep.search_grammar`` (a search and its finals)
put together, and how an unknown key is worded.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from altlearn.components.values import Count
from altlearn.sweep.grammar import (
    MAX_TRIALS,
    MAX_TRIALS_CEILING,
    BaseSpec,
    Description,
    Experiment,
    Grid,
    Label,
    Name,
    Overrides,
    RandomSearch,
    Resources,
    Seeds,
    SpecPath,
    _non_empty_list,
    _Section,
)
from altlearn.sweep.search_grammar import CaseSearch, Final, Search
from altlearn.text import did_you_mean


class CaseModel(_Section):
    """One configuration: spec paths to values, and optionally its label and its own base."""

    model_config = ConfigDict(extra="allow", frozen=True)
    form: ClassVar[str] = "a mapping of spec paths to values"
    label: Label | None = None
    base: BaseSpec | None = None
    search: CaseSearch | None = None  # the case's own axes, joining search.space
    __pydantic_extra__: dict[SpecPath, Any] = Field(init=False)  # the overrides


class SweepModel(_Section):
    """A sweep file. ``name`` is required and ``base`` required unless every case has its own:
    both checked with the rules across keys, in ``sweep_file``, so that a file with a mistake in
    one key still makes the trials of the others (and their problems are reported at once)."""

    form: ClassVar[str] = "a mapping of the sweep's keys"
    name: Name | None = None
    description: Description | None = None
    base: BaseSpec | None = None
    experiment: Experiment | None = None
    set: Overrides = {}
    cases: Annotated[list[CaseModel], _non_empty_list("cases (mappings of overrides)")] | None = None
    grid: Grid = {}
    random: RandomSearch | None = None
    seeds: Seeds | None = None
    resources: Resources = Resources()
    search: Search | None = None
    final: Final | None = None
    max_trials: Annotated[Count, Field(le=MAX_TRIALS_CEILING)] = MAX_TRIALS
    extends: str | None = None  # merged in before validation (altlearn.sweep.extends)


def unknown_key(loc: tuple) -> str:
    """What is wrong with the key at pydantic's ``loc``, which its section does not take: the
    section's keys, and the one the user probably meant."""
    model: type[BaseModel] = SweepModel
    for key in loc[:-1]:  # list indexes and a mapping's own keys leave the model as it is
        field = model.model_fields.get(key) if isinstance(key, str) else None
        model = (_model_in(field.annotation) if field else None) or model
    keys = list(model.model_fields)
    return f"unknown key; {did_you_mean(loc[-1], keys)}keys: {', '.join(keys)}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)
