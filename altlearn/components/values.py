"""Option types with real ranges, for the ``Params`` of any component (built-in or a plugin's).

Plain ``int`` and ``float`` let through values that validate and then crash or mislead later:
YAML's ``true`` is a Python bool and so an int (``epochs: true`` would train one epoch), and
``.inf``/``.nan`` are floats (``lr: .inf`` validates, then the first step is all NaN). These
types refuse such values where the spec is validated, at the option's YAML path::

    from altlearn.api import Count, PositiveReal, Probability

    class Params(api.Params):
        width: Count = 64
        lr: PositiveReal = 0.01
        keep: Probability = Field(0.5, lt=1.0)   # extra bounds combine with the type's

Nothing here imports torch (``altlearn plugins`` and ``--help`` must stay light).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import core_schema

#: torch takes seeds in [-2**63, 2**64 - 1], where -1 and 2**64 - 1 are the same seed, and GO-UP adds
#: an offset to its seed: signed 64-bit seeds are all distinct and leave that room.
MIN_SEED, MAX_SEED = -(2**63), 2**63 - 1
#: torch.set_num_threads takes far more, but each is an OS thread: more than any machine's cores.
MAX_THREADS = 1024
#: Layers a network may have: deeper than any sequential net these rules train, and it bounds
#: validation, which builds and probes every layer on the meta device (about 1 ms each).
MAX_LAYERS = 1000
#: What MLflow's SQL stores hold: the runs.name and tags.key columns are 250 characters,
#: experiments.name 256, tag values 8000 (longer ones are cut silently: the user would not know).
MAX_RUN_NAME = 250
MAX_EXPERIMENT_NAME = 256
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 8000


class _NotBoolean:
    """Annotated marker: refuse true/false before pydantic's int/float coercion sees them."""

    def __get_pydantic_core_schema__(self, source: Any, handler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_boolean, handler(source))

    def __repr__(self) -> str:  # shown in option listings: keep it short and stable
        return "NotBoolean"


def _refuse_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a yes/no value, not a number; write a number")
    return value


NotBoolean = _NotBoolean()


def _seed_in_range(seed: int) -> int:
    # A validator, not Field(ge=, le=): option listings would show two 19-digit numbers.
    if not MIN_SEED <= seed <= MAX_SEED:
        raise ValueError("a seed must fit in signed 64 bits (-2**63 .. 2**63 - 1), the seeds torch takes")
    return seed


Integer = Annotated[int, NotBoolean]
#: a whole number >= 1 (epochs, widths, batch sizes)
Count = Annotated[int, NotBoolean, Field(gt=0)]
#: a whole number >= 0 (sizes where 0 means "none" or "off")
NonNegativeCount = Annotated[int, NotBoolean, Field(ge=0)]
Seed = Annotated[int, NotBoolean, AfterValidator(_seed_in_range)]
ThreadCount = Annotated[int, NotBoolean, Field(gt=0, le=MAX_THREADS)]

#: a finite number (no .inf, no .nan)
Real = Annotated[float, NotBoolean, Field(allow_inf_nan=False)]
PositiveReal = Annotated[float, NotBoolean, Field(gt=0, allow_inf_nan=False)]
NonNegativeReal = Annotated[float, NotBoolean, Field(ge=0.0, allow_inf_nan=False)]
#: a number in [0, 1]
Probability = Annotated[float, NotBoolean, Field(ge=0.0, le=1.0)]
#: a share below one, in [0, 1): dropout, momentum, a moving average's decay rate
Fraction = Annotated[float, NotBoolean, Field(ge=0.0, lt=1.0)]


def _check_betas(betas: Any) -> Any:
    if isinstance(betas, (list, tuple)) and any(isinstance(b, bool) for b in betas):
        raise ValueError("betas are two numbers, not yes/no values")
    return betas


def _betas_in_range(betas: tuple[float, float]) -> tuple[float, float]:
    if not all(0.0 <= b < 1.0 for b in betas):  # NaN fails every comparison: refused too
        raise ValueError(f"each beta must be in [0, 1) (a decay rate; 1 never forgets), got {list(betas)}")
    return betas


#: Adam's two moment decay rates, each in [0, 1) (a plain tuple[float, float] in listings)
Betas = Annotated[tuple[float, float], BeforeValidator(_check_betas), AfterValidator(_betas_in_range)]

_TAG_KEY = re.compile(r"[\w.\- :]+")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key) or key in (".", ".."):
            raise ValueError(
                f"tag key {key!r}: use letters, digits, _ - . : and spaces only (no / or \\: some "
                "MLflow stores keep tags as files, so a key must not be a path)"
            )
        if len(key) > MAX_TAG_KEY:
            raise ValueError(f"tag key {key[:20]!r}... has {len(key)} characters; MLflow keeps {MAX_TAG_KEY}")
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(
                f"the value of tag {key!r} has {len(value)} characters; MLflow keeps {MAX_TAG_VALUE} "
                "and would cut the rest silently"
            )
    return tags


#: MLflow run tags set by the spec: keys that are names, not paths; values MLflow keeps whole
Tags = Annotated[dict[str, str], AfterValidator(_check_tags)]

__all__ = [
    "NotBoolean",
    "Integer",
    "Count",
    "NonNegativeCount",
    "Seed",
    "ThreadCount",
    "Real",
    "PositiveReal",
    "NonNegativeReal",
    "Probability",
    "Fraction",
    "Betas",
    "Tags",
]
