"""A search's space as Optuna distributions, and how a trial's values are kept on its run.

The space is what a sweep file's ``search.space`` (and a case's own ``search.space``) say: spec
paths mapped to ``{log_uniform: [low, high]}``, ``{uniform: [...]}``, ``{int_uniform: [...]}``
or ``{choice: [...]}``. A trial's values are kept on its MLflow run as one JSON tag
(``altlearn.search_params``): exact, where the run's params hold only the text of the spec.

Optuna is imported inside the functions: ``altlearn --help`` must not load it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from altlearn.spec.axes import AxisRange
from altlearn.tracking.sweep_tags import ATTRS_TAG, PARAMS_TAG

#: which way a search's objective improves (Optuna's study direction)
Direction = Literal["maximize", "minimize"]

#: Optuna keeps these on a trial itself; they are not part of the search's history
_TRANSIENT_ATTRS = ("fixed_params",)


@dataclass(frozen=True)
class Axis(AxisRange):
    """One searched spec path (``altlearn.spec.axes``: its range, the edge warning), as Optuna
    samples it."""

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(self.values))
        low, high = self.values
        if self.kind == "int_uniform":
            return IntDistribution(int(low), int(high))
        return FloatDistribution(float(low), float(high), log=self.kind == "log_uniform")


def distributions(axes: tuple[Axis, ...]) -> dict:
    return {axis.path: axis.distribution() for axis in axes}


def grid_points(axes: tuple[Axis, ...]) -> dict[str, list]:
    """The grid sampler's points: each axis must be a choice (or an int range, every integer)."""
    return {
        axis.path: list(axis.values)
        if axis.kind == "choice"
        else list(range(int(axis.values[0]), int(axis.values[1]) + 1))
        for axis in axes
    }


def params_tag(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def read_params(tags: dict[str, str]) -> dict[str, Any] | None:
    text = tags.get(PARAMS_TAG)
    if text is None:
        return None
    try:
        params = json.loads(text)
    except ValueError:
        return None
    return params if isinstance(params, dict) else None


def attrs_tag(attrs: dict[str, Any]) -> str:
    kept = {k: v for k, v in attrs.items() if k not in _TRANSIENT_ATTRS}
    return json.dumps(kept, sort_keys=True, default=str)


def read_attrs(tags: dict[str, str]) -> dict[str, Any]:
    try:
        attrs = json.loads(tags.get(ATTRS_TAG, "{}"))
    except ValueError:
        return {}
    return attrs if isinstance(attrs, dict) else {}


def fits(params: dict[str, Any], axes: tuple[Axis, ...]) -> bool:
    """Whether a stored trial's values still lie in the space (a continued search whose space was
    edited keeps only the trials that fit it)."""
    if set(params) != {axis.path for axis in axes}:
        return False
    for axis in axes:
        value = params[axis.path]
        if axis.kind == "choice":
            if value not in axis.values:
                return False
        elif not isinstance(value, (int, float)) or not axis.values[0] <= value <= axis.values[1]:
            return False
    return True


@dataclass(frozen=True)
class PrunerSettings:
    """``search.pruner``: which Optuna pruner judges a trial after each epoch, and its grace."""

    type: str = "median"  # median | successive_halving | hyperband | none
    min_epochs: int = 1  # no trial is pruned before it has run this many epochs (the grace period)
    reduction_factor: int = 3  # successive_halving, hyperband: keep the best 1/rf at each rung
    startup_trials: int = 5  # median: judge no trial before this many have finished

    def pruner(self, max_epochs: int):
        import optuna

        if self.type == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=self.startup_trials,
                n_warmup_steps=self.min_epochs,  # epochs count from 1
            )
        if self.type == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_epochs, reduction_factor=self.reduction_factor
            )
        if self.type == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=self.min_epochs, max_resource=max_epochs, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class SearchSettings:
    """A case's search, as plain data (it travels to the worker that runs a trial)."""

    axes: tuple[Axis, ...]
    trials: int
    sampler: str = "tpe"  # tpe | random | grid
    objective: str = "val_accuracy"
    direction: Direction = "maximize"
    objective_at: str = "last"  # last | best: the objective's value at the last epoch, or its best
    pruner: PrunerSettings = PrunerSettings()
    seed: int = 0
    startup_trials: int = 10  # tpe: random draws before the model takes over

    def sampler_for(self, number: int):
        """The sampler that draws trial ``number``: seeded from (search seed, trial number), so a
        continued search draws what an uninterrupted one would from the same history."""
        import optuna

        seed = trial_seed(self.seed, number)
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler == "grid":
            # The grid's order is the search seed's alone: grid ids kept on earlier trials must
            # name the same points in every rebuilt study.
            return optuna.samplers.GridSampler(grid_points(self.axes), seed=self.seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.startup_trials)


def trial_seed(search_seed: int, number: int) -> int:
    """A 32-bit seed from the pair, the same in every process and Python version."""
    import hashlib

    digest = hashlib.sha256(f"{search_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class PruningPlan:
    """What a search trial's worker needs to judge it: plain data, sent with the job."""

    settings: SearchSettings
    case: str  # the case's label
    number: int  # the trial's number within its case
    sweep_run_id: str
    epochs: int  # the trial's train.epochs: Hyperband's largest budget
