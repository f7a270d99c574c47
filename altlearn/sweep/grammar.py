"""The sweep file's grammar (docs/sweeps.md) as pydantic models: each key, what it takes, its bounds.

``altlearn.sweep.sweep_file`` validates a file against :class:`SweepModel` and reports its errors
the way a spec's are reported (``components.validator.pydantic_problems``). Only the file's own
structure is checked here; what its overrides do to a trial's spec is checked by the spec
validator, trial by trial (``altlearn.sweep.trials``). Numbers use the bounded types of
``components.values`` (no true/false, no .inf/.nan); texts are bounded by what MLflow keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from altlearn.components.validator import WORDED
from altlearn.components.values import (
    MAX_EXPERIMENT_NAME,
    MAX_RUN_NAME,
    MAX_TAG_VALUE,
    MAX_THREADS,
    Count,
    Integer,
    NonNegativeReal,
    PositiveReal,
    Real,
    Seed,
)
from altlearn.text import short

#: The most trials (cases x grid points x random draws x seeds) a sweep makes unless its file
#: raises the bound with ``max_trials``: every trial's spec is resolved and validated before the
#: first one starts and kept in memory (measured for a small MLP on the 2-core development
#: machine: ~9 ms and ~10 kB each), so 100,000 trials already wait a quarter of an hour.
MAX_TRIALS = 100_000
#: How far ``max_trials`` may raise the bound: past it, validation alone takes hours.
MAX_TRIALS_CEILING = 1_000_000
#: GPUs of one trial: a share down to a hundredth (the local engine starts 1/gpus workers per
#: GPU), up to more than one machine has (a trial runs on one machine).
MIN_GPU_SHARE = 0.01
MAX_GPUS_PER_TRIAL = 64
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError(WORDED, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Section(BaseModel):
    """A mapping of fixed keys; any other value is refused showing the form the key takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    form: ClassVar[str] = "a mapping"

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, (dict, cls)):
            raise _refuse(f"expected {cls.form}, got {short(value)}")
        return value


# ------------------------------------------------------------------------------ values


def _spec_path(key: Any) -> Any:
    if not isinstance(key, str) or not all(part.strip() for part in key.split(".")):
        raise _refuse("a spec path is dotted names, e.g. optimizer.lr or network.layers.1.p")
    return key


#: a spec's dotted path, as for -s: optimizer.lr, network.layers[1].out_features
SpecPath = Annotated[str, BeforeValidator(_spec_path)]


def _mapping_of(form: str, non_empty: str | None = None) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _refuse(f"expected {form}, got {short(value)}")
        if non_empty and not value:
            raise _refuse(non_empty)
        return value

    return BeforeValidator(check)


def _values_to_try(values: Any) -> Any:
    if not isinstance(values, list) or not values:
        raise _refuse(f"expected a non-empty list of values to try, got {short(values)}")
    if len({repr(v) for v in values}) != len(values):
        raise _refuse(f"a value appears twice in {short(values)}")
    return values


def _non_empty_list(what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise _refuse(f"expected a non-empty list of {what}, got {short(value)}")
        return value

    return BeforeValidator(check)


def _low_high(numbers: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not (isinstance(value, list) and len(value) == 2):
            raise _refuse(f"expected [low, high] ({numbers}), got {short(value)}")
        return value

    return BeforeValidator(check)


def _ordered(pair: tuple) -> tuple:
    if pair[0] > pair[1]:
        raise _refuse(f"{short(list(pair))} is invalid: needs low <= high")
    return pair


def _seeds(value: Any, handler) -> Sequence[int]:
    if _is_int(value) and value >= 1:
        return range(value)  # seeds: 3 means [0, 1, 2]; a range: a huge count costs nothing here
    if not (isinstance(value, list) and value and all(map(_is_int, value))):
        raise _refuse(f"expected a list of integer seeds ([0, 1, 2]) or a count (3), got {short(value)}")
    seeds = handler(value)  # each seed's own range, reported at its index
    if len(set(seeds)) != len(seeds):
        raise _refuse(f"a seed appears twice in {short(value)}")
    return seeds


def _not_blank(text: str) -> str:
    if not text.strip():
        raise _refuse(f"expected a name with a character other than spaces, got {short(text)}")
    return text


def _spec_or_mapping(value: Any) -> Any:
    if not isinstance(value, (str, dict)):
        raise _refuse(f"expected a spec file (a path) or an inline spec (a mapping), got {short(value)}")
    return value


def _gpu_share(gpus: float) -> float:
    if 0 < gpus < MIN_GPU_SHARE:
        raise _refuse(f"{gpus:g} is invalid: a trial takes 0 GPUs or at least {MIN_GPU_SHARE:g} of one")
    return gpus


Overrides = Annotated[
    dict[SpecPath, Any], _mapping_of("a mapping of spec paths to values (optimizer.lr: 0.001)")
]
Grid = Annotated[
    dict[SpecPath, Annotated[list[Any], BeforeValidator(_values_to_try)]],
    _mapping_of("a mapping of spec paths to lists of values (optimizer.lr: [0.001, 0.01])"),
]
#: the parent run's name (an MLflow run name) and how a later sweep finds it
Name = Annotated[str, Field(max_length=MAX_RUN_NAME), AfterValidator(_not_blank)]
#: a configuration's name in tables and run names
Label = Annotated[str, Field(min_length=1, max_length=MAX_RUN_NAME)]
#: the parent run's note, an MLflow tag value
Description = Annotated[str, Field(max_length=MAX_TAG_VALUE)]
Experiment = Annotated[str, Field(min_length=1, max_length=MAX_EXPERIMENT_NAME)]
BaseSpec = Annotated[str | dict, BeforeValidator(_spec_or_mapping)]
Seeds = Annotated[Sequence[Seed], WrapValidator(_seeds)]
Cpus = Annotated[PositiveReal, Field(le=MAX_THREADS)]
Gpus = Annotated[NonNegativeReal, Field(le=MAX_GPUS_PER_TRIAL), AfterValidator(_gpu_share)]


# ------------------------------------------------------------------------------ sections


class Distribution(_Section):
    """One spec path's random distribution: exactly one of its keys."""

    form: ClassVar[str] = (
        "one of {uniform: [low, high]}, {log_uniform: [low, high]}, {int_uniform: [low, high]} "
        "or {choice: [a, b, ...]}"
    )
    uniform: Annotated[tuple[Real, Real], _low_high("numbers"), AfterValidator(_ordered)] | None = None
    log_uniform: (
        Annotated[tuple[PositiveReal, PositiveReal], _low_high("numbers > 0"), AfterValidator(_ordered)]
        | None
    ) = None
    int_uniform: (
        Annotated[tuple[Integer, Integer], _low_high("integers"), AfterValidator(_ordered)] | None
    ) = None
    choice: Annotated[list[Any], _non_empty_list("choices")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, value: Any) -> Any:
        if isinstance(value, dict) and (len(value) != 1 or None in value.values()):
            raise _refuse(f"expected {cls.form}, got {short(value)}")
        return value

    @property
    def kind(self) -> str:
        return next(kind for kind in DISTRIBUTIONS if getattr(self, kind) is not None)

    @property
    def values(self) -> tuple:
        """[low, high], or the choices."""
        return tuple(getattr(self, self.kind))


class RandomSearch(_Section):
    form: ClassVar[str] = "{trials: N, seed: S, space: {spec.path: distribution}}"
    trials: Count  # bounded with the other factors of the trials (sweep_file)
    seed: Seed = 0
    space: Annotated[
        dict[SpecPath, Distribution],
        _mapping_of(
            "a mapping of spec paths to distributions",
            non_empty="required: at least one spec path with a distribution",
        ),
    ]


class Resources(_Section):
    """What one trial needs; None: decided from the trial's spec (see altlearn.sweep.engines)."""

    form: ClassVar[str] = "{cpus: N, gpus: G}"
    cpus: Cpus | None = None
    gpus: Gpus | None = None
