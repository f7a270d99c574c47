"""The one place a sweep trains a run: ``train_trial``.

A trial is an ordinary altlearn run: the same trainer, MLflow logging, checkpoints and resume as
``altlearn run``. ``altlearn.runs.train_spec`` (the run entry point, docs/architecture.md) is the
function that does that; until it exists, ``_train_with_todays_code`` follows today's path of
``altlearn run`` (cli._train) and returns the outcome instead of exiting. Switching is one line in
``train_trial``.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as ``altlearn.runs.RunOutcome`` describes it."""

    run_id: str | None
    status: str  # "FINISHED" | "FAILED" | "KILLED"
    message: str | None
    exit_code: int  # as `altlearn run` would return it


def train_trial(
    spec,
    *,
    uri: str,
    resume_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    progress=None,
) -> RunOutcome:
    """Train ``spec`` (or continue ``resume_run_id``) as a child run of ``parent_run_id``."""
    tags = dict(extra_tags or {})
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id  # what makes MLflow's UI nest the run
    # When altlearn.runs lands: return train_spec(spec, uri=uri, quiet=True, resume_run_id=...,
    # extra_tags=extra_tags, parent_run_id=parent_run_id, progress=progress)
    return _train_with_todays_code(spec, uri, resume_run_id, tags, progress)


def _train_with_todays_code(spec, uri: str, resume_run_id: str | None, tags: dict, progress) -> RunOutcome:
    from altlearn.components import DataUnavailable
    from altlearn.spec import SpecError
    from altlearn.tracking import ResumeError, TrackingUnavailable, connect, resumable_run
    from altlearn.train import DeviceUnavailable

    try:  # set-up: a mistake here opens no run (or leaves the resumed one as it was)
        connect(uri)
        state = resumable_run(uri, resume_run_id)[1] if resume_run_id else None
        trainer = _trainer(spec, state)
    except (TrackingUnavailable, ResumeError, DataUnavailable, DeviceUnavailable) as exc:
        return RunOutcome(resume_run_id, "FAILED", str(exc), EXIT_USAGE)
    except SpecError as exc:
        return RunOutcome(resume_run_id, "FAILED", exc.report(), EXIT_USAGE)
    return _fit_in_run(spec, uri, trainer, resume_run_id, tags, progress)


def _trainer(spec, state: dict | None):
    from altlearn.train import Trainer

    trainer = Trainer(spec)
    if state is not None:
        trainer.restore(state)
    return trainer


def _fit_in_run(spec, uri: str, trainer, resume_run_id, tags: dict, progress) -> RunOutcome:
    from altlearn.tracking import Terminated, TrackingUnavailable, mlflow_run
    from altlearn.train import RuleContractError, TrainingDiverged

    handle = None
    try:
        with mlflow_run(spec, uri, resume_run_id, extra_tags=tags) as handle:
            trainer.observers = handle.observers(spec) + ([progress] if progress else [])
            trainer.fit()
            handle.log_outcome(trainer, spec.tracking.log_model)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (Terminated): the run ended KILLED
        how = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        return RunOutcome(_run_id(handle), "KILLED", f"interrupted ({how})", EXIT_INTERRUPTED)
    except (TrainingDiverged, RuleContractError) as exc:
        return RunOutcome(_run_id(handle), "FAILED", str(exc), EXIT_FAILED)
    except TrackingUnavailable as exc:
        return RunOutcome(_run_id(handle), "FAILED", str(exc), EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - a bug in a rule: the run is FAILED, the sweep goes on
        return RunOutcome(_run_id(handle), "FAILED", f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    return RunOutcome(handle.run_id, "FINISHED", None, EXIT_OK)


def _run_id(handle) -> str | None:
    return handle.run_id if handle is not None else None
