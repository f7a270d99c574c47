"""A search's queue: each trial's job is built only when an engine has room for it.

A search trial's values are drawn then, by the sampler, from its case's trials as the store holds
them (an interrupted trial keeps the values its run was given); a case's finals wait until every
one of its search trials has ended, then re-run the configuration it chose on their fresh seeds.
See docs/tuning.md for the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from altlearn.errors import Problem
from altlearn.sweep.configurations import Trial, resolve
from altlearn.sweep.jobs import Event, Job
from altlearn.sweep.record import Plan, SweepRecord, children, trial_tags
from altlearn.sweep.search_space import PruningPlan, params_tag, read_params
from altlearn.sweep.search_trials import SearchCase, built_trial, final_configuration, with_values
from altlearn.sweep.study import case_key, chosen, propose, search_trials
from altlearn.sweep.sweep_file import SweepFile
from altlearn.text import short
from altlearn.tracking.sweep_tags import (
    CASE_LABEL_TAG,
    CASE_TAG,
    CHOSEN_TAG,
    NUMBER_TAG,
    PARAMS_TAG,
    PHASE_TAG,
)


@dataclass
class SearchQueue:
    """The jobs of a search sweep, in the order of its plans (search trials round-robin over the
    cases, then the finals), served as a :class:`~altlearn.sweep.jobs.JobQueue` is; ``notes``
    collects what the sweep should say at its end."""

    record: SweepRecord
    sweep: SweepFile
    plans: list[Plan]
    cli_overrides: list[str]
    threads: int | None
    notes: list[str] = field(default_factory=list)
    taken: dict[int, Plan] = field(default_factory=dict)  # a job's plan, should it be put back
    chosen_numbers: dict[str, int] = field(default_factory=dict)  # case label -> its chosen trial

    def __post_init__(self) -> None:
        runnable = ("start", "resume")
        self.waiting = [p for p in self.plans if p.action in runnable]
        # A search trial is settled once it has ended (this time, or before: skipped); a case's
        # finals are built when all of its search trials are settled.
        self.settled = {p.trial.index for p in self.plans if p.action == "skip"}
        self.earlier_runs = children(self.record) if self.record.continued else {}

    # ---------------------------------------------------------------- the engine's side
    def take(self) -> Job | None:
        for plan in list(self.waiting):
            if plan.trial.phase == "final" and not self._search_settled(plan.trial.case):
                continue
            self.waiting.remove(plan)
            job = self._job(plan)
            if job is not None:
                return job
        return None

    def put_back(self, job: Job) -> None:
        self.waiting.insert(0, self.taken[job.index])

    def exhausted(self) -> bool:
        return not self.waiting

    def clear(self) -> None:
        self.waiting.clear()

    def done(self, event: Event) -> None:
        self.settled.add(event.index)

    def _search_settled(self, case: str) -> bool:
        search = [p for p in self.plans if p.trial.case == case and p.trial.phase == "search"]
        return all(p.trial.index in self.settled for p in search)

    # ---------------------------------------------------------------- building a job
    def _job(self, plan: Plan) -> Job | None:
        trial, case = plan.trial, plan.trial.search
        values = self._earlier_values(plan)
        if values is None:
            values = self._search_values(trial, case) if trial.phase == "search" else self._choice(case)
        if values is None:
            return None
        built = self._built(trial, case, values)
        if built is None:
            return None
        job = Job(
            index=trial.index,
            key=trial.key,
            spec_yaml=built.spec.to_yaml(),
            uri=self.record.uri,
            parent_run_id=self.record.run_id,
            tags={**trial_tags(self.record, built), **self._tags(trial, case, values)},
            resume_run_id=plan.run_id if plan.action == "resume" else None,
            threads=self.threads,
            source=built.spec.source or "",
            pruning=self._pruning(trial, case, built),
        )
        self.taken[trial.index] = plan
        return job

    def _earlier_values(self, plan: Plan) -> dict | None:
        """The values an earlier run of this trial was given: an interrupted trial keeps them."""
        for run in self.earlier_runs.get(plan.trial.key, []):
            values = read_params(run.data.tags)
            if values is not None:
                return values
        return None

    def _search_values(self, trial: Trial, case: SearchCase) -> dict:
        history = self._history(case)
        values, _ = propose(case.settings, history, trial.number)
        return values

    def _choice(self, case: SearchCase) -> dict | None:
        best = chosen(self._history(case), case.settings.direction)
        if best is None:
            self._drop_finals(case, "no search trial of it completed, so there is no configuration to re-run")
            return None
        self.chosen_numbers[case.label] = best.number
        return best.params

    def _history(self, case: SearchCase):
        record = self.record
        return search_trials(record.client, record.experiment_id, record.run_id, case.label, case.settings)

    def _drop_finals(self, case: SearchCase, why: str) -> None:
        self.waiting = [p for p in self.waiting if p.trial.case != case.label]
        self.notes.append(f"{short(case.label)}: no finals: {why}")

    def _built(self, trial: Trial, case: SearchCase, values: dict) -> Trial | None:
        configuration = (
            with_values(trial.configuration, values)
            if trial.phase == "search"
            else final_configuration(self.sweep, case, values)
        )
        configuration = replace(configuration, label=_label(trial, values))  # its run's name says them
        problems: list[Problem] = []
        spec = resolve(self.sweep, configuration, trial.seed, self.cli_overrides, problems)
        if spec is None:  # values inside the ranges the probes checked: not expected, but said
            self.notes.append(f"{trial.label}: cannot start: " + "; ".join(map(str, problems)))
            if trial.phase == "final":
                self._drop_finals(case, "its chosen configuration is not a valid spec")
            return None
        return built_trial(trial, spec, _label(trial, values))

    def _tags(self, trial: Trial, case: SearchCase, values: dict) -> dict[str, str]:
        tags = {
            PHASE_TAG: trial.phase,
            CASE_TAG: case_key(case.label),
            CASE_LABEL_TAG: case.label[:5000],
            PARAMS_TAG: params_tag(values),
        }
        if trial.phase == "search":
            tags[NUMBER_TAG] = str(trial.number)
        elif case.label in self.chosen_numbers:
            tags[CHOSEN_TAG] = str(self.chosen_numbers[case.label])
        return tags

    def _pruning(self, trial: Trial, case: SearchCase, built: Trial) -> PruningPlan | None:
        if trial.phase != "search" or case.settings.pruner.type == "none":
            return None
        return PruningPlan(
            case.settings, case.label, trial.number, self.record.run_id, built.spec.train.epochs
        )


def defer_finals(plans: list[Plan]) -> tuple[list[Plan], list[str]]:
    """The finals of a case whose search waits for a later run of the sweep (--case, --final-only)
    wait with it; and what to say about them."""
    waiting = {p.trial.case for p in plans if p.trial.phase == "search" and p.action == "later"}
    deferred = [
        replace(p, action="later") if p.trial.case in waiting and p.trial.phase == "final" else p
        for p in plans
    ]
    # said only of a case whose finals this run would otherwise have started: a case that --case
    # left out waits by the user's choice, and fourteen notes about it would hide the one that counts
    held = {
        p.trial.case
        for p in plans
        if p.trial.phase == "final" and p.trial.case in waiting and p.action in ("start", "resume")
    }
    notes = [
        f"{short(case)}: its search is not done, so its finals wait; run the sweep without "
        "--final-only (or with a --case that selects it) to finish it"
        for case in sorted(held)
    ]
    return deferred, notes


def _label(trial: Trial, values: dict) -> str:
    """'fa, search 3: lr 0.0012, weight_decay 1e-05' or, for a final, 'fa: lr 0.0012, ...'."""
    shown = values_text(values)
    return f"{trial.label}: {shown}" if shown else trial.label


def values_text(values: dict) -> str:
    """A trial's searched values as its label shows them: 'lr 0.0012, weight_decay 1e-05'."""
    return ", ".join(f"{path.rsplit('.', 1)[-1]} {_short_value(v)}" for path, v in values.items())


def _short_value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
