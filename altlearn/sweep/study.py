"""A case's search, rebuilt from the MLflow store whenever it is needed: the store is the single
truth, Optuna only the sampler and the pruner (an in-memory study, never a second database).

- :func:`search_trials` reads a case's search trials off their runs (values, state, the objective
  after each epoch, what the sampler and pruner kept on them);
- :func:`propose` asks the sampler for trial ``number``'s values, given that history;
- :func:`judge` asks the pruner, after an epoch, whether a running trial should stop;
- :func:`chosen` picks the configuration the finals re-run: the best objective among the
  completed trials (ties: the earlier trial).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from altlearn.sweep.search_space import SearchSettings, distributions, fits, read_attrs, read_params
from altlearn.tracking.sweep_tags import CASE_TAG, NUMBER_TAG, PHASE_TAG, PRUNED_TAG, SUPERSEDED_TAG


def case_key(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SearchTrial:
    """One search trial as its run holds it. ``state``: complete, pruned, failed or running (which
    includes interrupted); ``value`` is the objective as the search reads it, for complete trials."""

    number: int
    run_id: str
    params: dict[str, Any] | None
    state: str
    intermediate: dict[int, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    epochs: int = 0  # epochs trained (the last one logged)


def search_trials(client, experiment_id: str, sweep_run_id: str, case: str, settings: SearchSettings):
    """The case's search trials, one per number (its newest run that was not superseded)."""
    from altlearn.tracking.store import all_runs

    runs = all_runs(
        client,
        [experiment_id],
        f"tags.`altlearn.sweep` = '{sweep_run_id}' and tags.`{PHASE_TAG}` = 'search' "
        f"and tags.`{CASE_TAG}` = '{case_key(case)}'",
        order_by=["attributes.start_time DESC"],
    )
    newest: dict[int, Any] = {}
    for run in runs:  # newest first
        number = run.data.tags.get(NUMBER_TAG, "")
        if number.isdigit() and SUPERSEDED_TAG not in run.data.tags:
            newest.setdefault(int(number), run)
    return [_trial(client, number, run, settings) for number, run in sorted(newest.items())]


def _trial(client, number: int, run, settings: SearchSettings) -> SearchTrial:
    history = client.get_metric_history(run.info.run_id, settings.objective)
    intermediate = {m.step: m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))}
    tags = run.data.tags
    status = run.info.status
    state = "running"
    if status == "FINISHED":
        state = "complete" if intermediate else "failed"
    elif status == "FAILED":
        state = "failed"
    elif status == "KILLED" and PRUNED_TAG in tags:
        state = "pruned"
    value = objective_value(intermediate, settings) if state == "complete" else None
    if state == "complete" and value is None:
        state = "failed"  # a non-finite objective: the trial cannot be ranked
    return SearchTrial(
        number,
        run.info.run_id,
        read_params(tags),
        state,
        intermediate,
        read_attrs(tags),
        value,
        max(intermediate, default=0),
    )


def objective_value(intermediate: dict[int, float], settings: SearchSettings) -> float | None:
    """The objective as the search ranks it: its value after the last epoch (None if that is not
    finite), or with ``objective_at: best`` its best finite value over the epochs."""
    if not intermediate:
        return None
    if settings.objective_at == "best":
        finite = [v for v in intermediate.values() if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if settings.direction == "maximize" else min(finite)
    last = intermediate[max(intermediate)]
    return last if math.isfinite(last) else None


def _frozen(trial: SearchTrial, settings: SearchSettings, with_params: bool):
    from optuna.trial import TrialState, create_trial

    state = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "failed": TrialState.FAIL,
        "running": TrialState.RUNNING,
    }[trial.state]
    usable = with_params and trial.params is not None and fits(trial.params, settings.axes)
    return create_trial(
        state=state,
        value=trial.value if trial.state == "complete" else None,
        params=trial.params if usable else {},
        distributions=distributions(settings.axes) if usable else {},
        intermediate_values={step: v for step, v in trial.intermediate.items() if math.isfinite(v)},
        system_attrs=trial.attrs,
    )


def propose(settings: SearchSettings, history: list[SearchTrial], number: int) -> tuple[dict, dict]:
    """Trial ``number``'s values and what the sampler kept on it (its system attributes), from
    the case's other trials. Only trials whose values fit the space inform the sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=settings.direction, sampler=settings.sampler_for(number))
    for trial in history:
        if trial.number != number and trial.params is not None and fits(trial.params, settings.axes):
            study.add_trial(_frozen(trial, settings, with_params=True))
    asked = study.ask(distributions(settings.axes))
    attrs = study._storage.get_trial(asked._trial_id).system_attrs  # noqa: SLF001 - the sampler's notes
    return dict(asked.params), dict(attrs)


def judge(
    settings: SearchSettings,
    others: list[SearchTrial],
    me: SearchTrial,
    max_epochs: int,
) -> tuple[bool, dict]:
    """Whether the running trial ``me`` should stop now, by the pruner, against the case's other
    trials; and the attributes the pruner keeps on ``me`` (successive halving's rungs).

    Every trial sits at its own number in the study (the gaps filled with failed placeholders),
    since Hyperband assigns brackets by trial number."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=settings.direction, pruner=settings.pruner.pruner(max_epochs))
    by_number = {t.number: t for t in others if t.number != me.number}
    by_number[me.number] = me
    for number in range(max(by_number) + 1):
        trial = by_number.get(number)
        study.add_trial(
            _frozen(trial, settings, with_params=False) if trial else create_trial(state=TrialState.FAIL)
        )
    frozen = study.get_trials(deepcopy=False)[me.number]
    prune = study.pruner.prune(study, frozen)
    attrs = study._storage.get_trial(frozen._trial_id).system_attrs  # noqa: SLF001 - the pruner's notes
    return bool(prune), dict(attrs)


def chosen(trials: list[SearchTrial], direction: str) -> SearchTrial | None:
    ranked = ranking(trials, direction)
    return ranked[0] if ranked else None


def ranking(trials: list[SearchTrial], direction: str) -> list[SearchTrial]:
    """The completed trials, best first (ties: the earlier trial first)."""
    complete = [(t.value, t) for t in trials if t.state == "complete" and t.value is not None]
    sign = -1 if direction == "maximize" else 1
    return [t for _, t in sorted(complete, key=lambda pair: (sign * pair[0], pair[1].number))]
