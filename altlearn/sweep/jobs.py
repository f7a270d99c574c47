"""What the sweep sends to where a trial runs (a ``Job``) and what comes back (``Event``s).

Plain data, importable without torch: a local worker reads its environment (CUDA_VISIBLE_DEVICES)
before it imports torch. A job carries the trial's resolved spec as YAML text, validated again
where it runs, so that a Ray node with other plugins fails with a spec message, not a pickling error.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from altlearn.sweep.adapter import RunOutcome
from altlearn.sweep.search_space import PruningPlan


@dataclass(frozen=True)
class Job:
    index: int  # the trial's index in the sweep
    key: str  # its trial key
    spec_yaml: str
    uri: str  # absolute: a Ray task's working directory is not the sweep's
    parent_run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    resume_run_id: str | None = None
    threads: int | None = None  # torch threads when the spec leaves train.threads unset
    source: str = ""  # the base spec it came from: the run's mlflow.source.name
    pruning: PruningPlan | None = None  # a search trial: judged after each epoch (sweep/pruning.py)


@dataclass(frozen=True)
class Event:
    """What a trial reports: 'started' (epoch, epochs), 'epoch' (epoch, test_accuracy), 'done'
    (outcome), or 'lost' (its process died; outcome says how), sent by the engine."""

    index: int
    kind: str
    epoch: int = 0
    epochs: int = 0
    test_accuracy: float | None = None  # or, for a search trial (no test set), its val_accuracy
    accuracy_of: str = "test"  # which split test_accuracy is of: "test" or "val"
    outcome: RunOutcome | None = None


class JobQueue:
    """The jobs of a sweep, handed to an engine one at a time as it has room for them.

    This one holds a fixed list; a search's queue (sweep/tuning.py) builds each job only when it is
    taken, so that its values are drawn from the trials finished by then. ``take`` returns None
    when no job is ready yet; ``exhausted`` says no job will come any more."""

    def __init__(self, jobs: list[Job]) -> None:
        self.pending = deque(jobs)
        self.notes: list[str] = []  # what the sweep says at its end

    def take(self) -> Job | None:
        return self.pending.popleft() if self.pending else None

    def put_back(self, job: Job) -> None:
        """A job an engine took but could not start (its worker died just then)."""
        self.pending.appendleft(job)

    def exhausted(self) -> bool:
        return not self.pending

    def clear(self) -> None:
        """Interrupted: nothing more is started."""
        self.pending.clear()

    def done(self, event: Event) -> None:
        """A trial ended (its 'done' event): a search's queue learns what it may build next."""
