"""The search's Optuna side, without a store: sampling from a history, pruning, choosing."""

from __future__ import annotations

import math

import pytest

from altlearn.spec.axes import direction_of
from altlearn.sweep.search_space import Axis, PrunerSettings, SearchSettings, fits, trial_seed
from altlearn.sweep.study import SearchTrial, chosen, judge, objective_value, propose, ranking

LR = Axis("optimizer.lr", "log_uniform", (1e-5, 1e-2))
WD = Axis("optimizer.weight_decay", "choice", (0, 1e-5, 1e-4))


def settings(**changes) -> SearchSettings:
    base = dict(axes=(LR, WD), trials=12, pruner=PrunerSettings("successive_halving", 2, 3))
    return SearchSettings(**{**base, **changes})


def complete(number: int, params: dict, value: float, epochs: int = 3) -> SearchTrial:
    curve = {epoch: value - 0.1 * (epochs - epoch) for epoch in range(1, epochs + 1)}
    return SearchTrial(number, f"run{number}", params, "complete", curve, {}, value, epochs)


def test_proposals_lie_in_the_space_and_repeat_for_the_same_history():
    history = []
    for number in range(6):
        params, _ = propose(settings(), history, number)
        assert fits(params, (LR, WD))
        assert params == propose(settings(), history, number)[0]  # seeded by (seed, number)
        history.append(complete(number, params, 0.5 + 0.05 * number))
    assert propose(settings(seed=1), history, 6)[0] != propose(settings(seed=2), history, 6)[0]


def test_tpe_moves_towards_the_good_region_after_its_random_start():
    """With a history where only large learning rates score well, TPE's proposals after the
    start-up trials favour the upper part of the range more than random draws do."""
    s = settings(axes=(LR,), startup_trials=5)
    history = []
    for number in range(5):
        lr = 10 ** (-5 + 0.75 * number)  # 1e-5 .. 1e-2
        history.append(complete(number, {"optimizer.lr": lr}, 0.1 + 0.2 * number))
    proposals = [propose(s, history, n)[0]["optimizer.lr"] for n in range(5, 25)]
    assert sum(lr > 1e-3 for lr in proposals) >= 12


def test_successive_halving_prunes_a_trial_behind_the_others_at_its_rung():
    history = [complete(n, {"optimizer.lr": 1e-3, "optimizer.weight_decay": 0}, 0.9) for n in range(4)]
    for n, trial in enumerate(history):
        history[n] = SearchTrial(**{**trial.__dict__, "attrs": {"completed_rung_0": 0.85}})
    behind = SearchTrial(4, "run4", None, "running", {1: 0.1, 2: 0.2})
    ahead = SearchTrial(4, "run4", None, "running", {1: 0.8, 2: 0.95})
    assert judge(settings(), history, behind, 10)[0] is True
    prune, attrs = judge(settings(), history, ahead, 10)
    assert prune is False and attrs["completed_rung_0"] == 0.95  # kept on the run for later rebuilds


def test_no_trial_is_pruned_within_its_grace_period():
    history = [complete(n, {"optimizer.lr": 1e-3, "optimizer.weight_decay": 0}, 0.9) for n in range(6)]
    s = settings(pruner=PrunerSettings("median", min_epochs=3, startup_trials=1))
    assert judge(s, history, SearchTrial(6, "r", None, "running", {1: 0.0, 2: 0.0}), 10)[0] is False
    assert judge(s, history, SearchTrial(6, "r", None, "running", {1: 0.0, 2: 0.0, 3: 0.0}), 10)[0] is True


def test_the_chosen_trial_is_the_best_completed_one_ties_to_the_earlier():
    trials = [
        complete(0, {}, 0.8),
        complete(1, {}, 0.9),
        complete(2, {}, 0.9),
        SearchTrial(3, "r3", {}, "pruned", {1: 0.99}),
        SearchTrial(4, "r4", {}, "failed"),
    ]
    assert chosen(trials, "maximize").number == 1
    assert [t.number for t in ranking(trials, "minimize")] == [0, 1, 2]
    assert chosen([], "maximize") is None


def test_the_objective_is_read_at_the_last_epoch_or_at_its_best():
    curve = {1: 0.5, 2: 0.9, 3: 0.7}
    assert objective_value(curve, settings()) == 0.7
    assert objective_value(curve, settings(objective_at="best")) == 0.9
    assert objective_value(curve, settings(objective_at="best", direction="minimize")) == 0.5
    assert objective_value({1: 0.5, 2: math.nan}, settings()) is None


@pytest.mark.parametrize(
    "metric, direction",
    [("val_accuracy", "maximize"), ("val_loss", "minimize"), ("test_error", "minimize"), ("energy", None)],
)
def test_the_direction_is_inferred_from_the_metric_name(metric, direction):
    assert direction_of(metric) == direction


def test_grid_sampling_visits_every_point_once_in_rebuilt_studies():
    s = SearchSettings(
        axes=(Axis("a", "choice", (1, 2, 3)), Axis("b", "int_uniform", (0, 1))), trials=6, sampler="grid"
    )
    history = []
    for number in range(6):
        params, attrs = propose(s, history, number)
        history.append(SearchTrial(number, "r", params, "complete", {1: 0.5}, attrs, 0.5, 1))
    assert sorted((t.params["a"], t.params["b"]) for t in history) == [
        (a, b) for a in (1, 2, 3) for b in (0, 1)
    ]


def test_trial_seeds_are_stable_and_distinct():
    assert trial_seed(0, 1) == trial_seed(0, 1)
    assert len({trial_seed(s, n) for s in range(3) for n in range(50)}) == 150


def test_a_value_at_the_edge_of_its_range_is_named():
    assert LR.at_edge(1e-2) == "high" and LR.at_edge(1.1e-5) == "low" and LR.at_edge(3e-4) is None
    assert WD.at_edge(0) is None
