"""Pruning where a search trial runs: after each epoch the trial is judged against the other
trials of its case, as the store holds them, and stops if it cannot win.

The judgement needs nothing but the store, so it works the same in a local worker process and in a
Ray task on another machine (sharing a tracking server). A pruned trial ends KILLED with the tag
``altlearn.pruned_epoch``; the sweep never resumes it and compare never counts it.
"""

from __future__ import annotations

from dataclasses import replace

from altlearn.sweep.search_space import PruningPlan, attrs_tag
from altlearn.sweep.study import SearchTrial, judge, search_trials
from altlearn.tracking.sweep_tags import ATTRS_TAG, PRUNED_TAG
from altlearn.training.observers import Observer, StopRun


class PruningObserver(Observer):
    """Judges the trial after each epoch is logged (it comes after the metrics observer)."""

    def __init__(self, plan: PruningPlan, client) -> None:
        self.plan, self.client = plan, client
        self.attrs: dict = {}
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    def on_start(self, trainer) -> None:
        # The trial's own run is the newest running one of its number: it has just been opened.
        mine = self._mine()
        if mine is not None:
            self.run_id, self.attrs = mine.run_id, dict(mine.attrs)  # a resumed trial keeps its rungs

    def _mine(self) -> SearchTrial | None:
        return next((t for t in self._trials() if t.number == self.plan.number), None)

    def _trials(self) -> list[SearchTrial]:
        if self.experiment_id is None:
            parent = self.client.get_run(self.plan.sweep_run_id)
            self.experiment_id = parent.info.experiment_id
        plan = self.plan
        return search_trials(self.client, self.experiment_id, plan.sweep_run_id, plan.case, plan.settings)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        objective = self.plan.settings.objective
        if objective not in metrics or self.run_id is None:
            return  # validation made sure the objective is logged; a rule's own may be missing
        curve = {e: m[objective] for e, m in enumerate(trainer.history, 1) if objective in m}
        trials = self._trials()
        me = SearchTrial(self.plan.number, self.run_id, None, "running", curve, self.attrs)
        others = [t for t in trials if t.number != self.plan.number]
        prune, attrs = judge(self.plan.settings, others, replace(me), self.plan.epochs)
        if attrs != self.attrs:
            self.attrs = attrs
            self.client.set_tag(self.run_id, ATTRS_TAG, attrs_tag(attrs))
        if prune and epoch < self.plan.epochs:
            raise StopRun(
                f"pruned after epoch {epoch}: {objective} {metrics[objective]:.4g} cannot win its case "
                f"({self.plan.settings.pruner.type} pruner)",
                tags={PRUNED_TAG: str(epoch)},
            )
