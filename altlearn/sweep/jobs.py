"""What the sweep sends to where a trial runs (a ``Job``) and what comes back (``Event``s).

Plain data, importable without torch: a local worker reads its environment (CUDA_VISIBLE_DEVICES)
before it imports torch. A job carries the trial's resolved spec as YAML text, validated again
where it runs, so that a Ray node with other plugins fails with a spec message, not a pickling error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from altlearn.sweep.adapter import RunOutcome


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


@dataclass(frozen=True)
class Event:
    """What a trial reports: 'started' (epoch, epochs), 'epoch' (epoch, test_accuracy), 'done'
    (outcome), or 'lost' (its process died; outcome says how), sent by the engine."""

    index: int
    kind: str
    epoch: int = 0
    epochs: int = 0
    test_accuracy: float | None = None
    outcome: RunOutcome | None = None
