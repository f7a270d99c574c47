"""One training run, from a validated spec to a recorded outcome.

``train_spec`` is what `altlearn run` and `altlearn resume` call, and what a sweep calls per trial.
It never exits the process: it returns a ``RunOutcome`` with the exit code the CLI would use.
Set-up (store check, data, network, rule, checkpoint) happens before the MLflow run opens, so a
mistake found there opens no run; from ``fit()`` on, observers record everything and
``RunRecorder`` ends the run exactly once (see docs/architecture.md, "A run's lifecycle").
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from altlearn.errors import (
    AltlearnError,
    ExitCode,
    RuleContractError,
    SpecError,
    StopMetricMissing,
    TrackingFault,
    TrainingDiverged,
)
from altlearn.text import printable
from altlearn.tracking.store import ui_command
from altlearn.training.observers import Observer, Status, StopRun


@dataclass
class RunOutcome:
    """How a run ended. ``run_id`` is None when set-up failed or was interrupted before the run
    opened (then nothing is in the store). ``status`` is what the store holds; when the store could
    not take the run's end, the run stays RUNNING there and ``status`` is FAILED or KILLED, never
    FINISHED, with a message that says so."""

    run_id: str | None
    status: Status
    message: str | None
    exit_code: int  # as `altlearn run` would return it
    #: An unexpected exception (a bug, in altlearn or a plugin): the CLI shows its traceback.
    error: BaseException | None = None
    #: for a FINISHED run: how train.stop_when ended it (stopped early, or not met), else None
    stop_note: str | None = None


class _SetUpFailed(Exception):
    def __init__(self, message: str, code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.outcome = RunOutcome(None, "FAILED", message, code)


def train_spec(
    spec,
    *,
    uri: str,
    quiet: bool = False,
    resume_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    progress=None,
    observers=(),
) -> RunOutcome:
    """Train ``spec`` (or continue run ``resume_run_id``) and record it in the store at ``uri``.
    ``extra_tags`` and ``parent_run_id`` become tags when the run opens; ``progress`` replaces
    the default display (none if ``quiet``); ``observers`` come last, after every epoch is logged
    and checkpointed (a sweep's pruner)."""
    from altlearn.tracking.recorder import RunRecorder

    try:
        trainer, client = _set_up(spec, uri, resume_run_id, quiet)
    except _SetUpFailed as failed:
        return failed.outcome
    except KeyboardInterrupt:
        return RunOutcome(None, "KILLED", "interrupted before training started", ExitCode.INTERRUPTED)
    recorder = RunRecorder(
        client, uri, spec, resume_run_id=resume_run_id, extra_tags=extra_tags, parent_run_id=parent_run_id
    )
    _attach_observers(trainer, recorder, progress, quiet)
    trainer.observers += list(observers)
    try:
        final = trainer.fit()
    except BaseException as exc:  # noqa: BLE001 - every ending becomes an outcome
        return _stopped(exc, recorder, trainer, uri)
    return _finished(final, recorder, trainer, uri)


def _set_up(spec, uri: str, resume_run_id: str | None, quiet: bool):
    """Every AltlearnError of the set-up (store, checkpoint, data, device, a spec mistake found
    only with the data) ends the run before it opens, with its report and its exit code."""
    try:
        return _connect_and_build(spec, uri, resume_run_id, quiet)
    except AltlearnError as exc:
        if isinstance(exc, SpecError):  # found only once the data is loaded (e.g. val_size too large)
            exc.source = spec.source
        raise _SetUpFailed(exc.report(), exc.exit_code) from None


def _connect_and_build(spec, uri: str, resume_run_id: str | None, quiet: bool):
    import mlflow

    from altlearn.tracking.resume import load_checkpoint
    from altlearn.tracking.store import connect
    from altlearn.training.trainer import Trainer

    # The tracking store first: a wrong URI should cost seconds, not a loaded data set.
    client, _ = connect(uri)
    state = load_checkpoint(uri, resume_run_id) if resume_run_id else None
    mlflow.set_tracking_uri(uri)  # the model flavour and artifact stores resolve the store through it
    trainer = Trainer(spec)
    if state is not None and resume_run_id:  # a state is loaded only to resume a run
        _restore(trainer, state, resume_run_id, quiet)
        _record_kernels(client, resume_run_id)
    return trainer, client


def _record_kernels(client, run_id: str) -> None:
    """A run continued on other CPU kernels than it ran with says so, in its tag and to the user:
    resuming repeats an uninterrupted run exactly only on the same kernels."""
    from altlearn.tracking.store import store_errors
    from altlearn.tracking.tags import CPU_KERNELS_TAG, kernels_continued

    with store_errors("recording the CPU kernels the run continues with"):
        changed = kernels_continued(run_id, client.get_run(run_id).data.tags.get(CPU_KERNELS_TAG))
        if changed:
            client.set_tag(run_id, CPU_KERNELS_TAG, changed[0])
    if changed:
        click.echo(click.style("note: ", fg="yellow", bold=True) + changed[1], err=True)


def _restore(trainer, state: dict, run_id: str, quiet: bool) -> None:
    try:
        notes = trainer.restore(state)
    except Exception as exc:  # noqa: BLE001 - e.g. a checkpoint of an edited plugin rule
        raise _SetUpFailed(
            f"the checkpoint of run {run_id} does not fit its spec: {type(exc).__name__}: {printable(exc)}"
        ) from None
    for note in notes:
        click.echo(click.style("note: ", fg="yellow", bold=True) + note, err=True)
    if not quiet:
        click.echo(f"resuming run {run_id} after epoch {trainer.epoch} of {trainer.spec.train.epochs}")


def _attach_observers(trainer, recorder, progress, quiet: bool) -> None:
    from altlearn.tracking.checkpoints import CheckpointObserver, FinalArtifacts
    from altlearn.tracking.metrics import MetricsObserver
    from altlearn.training.progress import make_progress

    tracking = trainer.spec.tracking
    trainer.observers.insert(0, recorder)  # first: opens the run before, ends it before, the others
    trainer.observers += [
        MetricsObserver(recorder),
        CheckpointObserver(recorder, tracking.checkpoint_minutes),
        FinalArtifacts(recorder, tracking.log_model),
    ]
    if progress is None and not quiet:  # a sweep passes its own display and says where itself
        trainer.observers.insert(1, _RunAnnouncement(recorder, recorder.uri))
    progress = progress if progress is not None else make_progress(quiet)
    if progress is not None:
        trainer.observers.append(progress)


def _finished(final: dict, recorder, trainer, uri: str) -> RunOutcome:
    spec = trainer.spec
    if recorder.recorded != "FINISHED":
        trained = trainer.stopped or f"trained all {spec.train.epochs} epochs"
        message = f"{trained}, but {recorder.unrecorded}; " + _resume_hint(recorder, uri)
        return RunOutcome(recorder.run_id, "FAILED", _with_end_errors(message, trainer), ExitCode.FAILED)
    summary = f"test accuracy {final['test_accuracy']:.2%}" if "test_accuracy" in final else "done"
    if trainer.stop_note:
        summary = f"{trainer.stop_note}; {summary}"
    message = f"{summary}; {_where(recorder.run_id, uri, spec)}; view with: {printable(ui_command(uri))}"
    return RunOutcome(
        recorder.run_id,
        "FINISHED",
        _with_end_errors(message, trainer),
        ExitCode.OK,
        stop_note=trainer.stop_note,
    )


def _where(run_id: str, uri: str, spec) -> str:
    return f"MLflow run {run_id} in {printable(uri)} (experiment {printable(repr(spec.tracking.experiment))})"


class _RunAnnouncement(Observer):
    """Says which MLflow run a training logs to as soon as it is open, so that a long run can be
    watched in the UI, or found for `altlearn resume`, before it ends."""

    def __init__(self, recorder, uri: str) -> None:
        self.recorder, self.uri = recorder, uri

    def on_start(self, trainer) -> None:
        where = _where(self.recorder.run_id, self.uri, trainer.spec)
        click.echo(f"{where}; watch it with: {printable(ui_command(self.uri))}")


#: Errors of the run itself, not of its surroundings: resuming would meet them again.
_NOT_RESUMABLE = (TrainingDiverged, RuleContractError, StopMetricMissing)


def _stopped(error: BaseException, recorder, trainer, uri: str) -> RunOutcome:
    status: Status = "KILLED" if isinstance(error, (KeyboardInterrupt, StopRun)) else "FAILED"
    code, bug = ExitCode.FAILED, None
    if isinstance(error, KeyboardInterrupt):
        head, code = "interrupted", ExitCode.INTERRUPTED
    elif isinstance(error, StopRun):  # ended on purpose by an observer (a sweep's pruner): no failure
        return RunOutcome(recorder.run_id, status, _with_end_errors(str(error), trainer), ExitCode.OK)
    elif isinstance(error, AltlearnError):  # a known ending: its report and code, no traceback
        head, code = _stop_head(error, trainer), error.exit_code
    else:
        head, bug = f"training failed: {type(error).__name__}: {error}", error
    message = f"{head}\n{_what_is_recorded(recorder, status)}"
    if not isinstance(error, _NOT_RESUMABLE) and recorder.run_id:
        interrupted_after = trainer.epoch if isinstance(error, KeyboardInterrupt) else None
        message += "; " + _resume_hint(recorder, uri, interrupted_after)
    return RunOutcome(recorder.run_id, status, _with_end_errors(message, trainer), code, bug)


def _stop_head(error: AltlearnError, trainer) -> str:
    if isinstance(error, TrainingDiverged):
        return f"training stopped: {error.report()}"
    if isinstance(error, TrackingFault):  # which epochs are in the store
        return f"training stopped after epoch {trainer.epoch}: {error.report()}"
    return error.report()


def _what_is_recorded(recorder, status: str) -> str:
    if recorder.run_id is None:
        return "no MLflow run was opened"
    if recorder.recorded:
        return (
            f"the MLflow run {recorder.run_id} is marked {recorder.recorded} and keeps what was logged"
            if status == "KILLED"
            else f"the MLflow run {recorder.run_id} is marked {recorder.recorded}; its metrics so far are kept"
        )
    return (
        f"MLflow run {recorder.run_id}: {recorder.unrecorded}; the metrics written before the fault are kept"
    )


def _resume_hint(recorder, uri: str, interrupted_after: int | None = None) -> str:
    """How to continue the run; ``interrupted_after``: the epochs an interrupted run completed."""
    from altlearn.tracking.store import DEFAULT_TRACKING_URI, program

    if recorder.checkpoint_epoch is None:
        if interrupted_after == 0:  # an interrupt checkpoints the last completed epoch: there was none
            return "no epoch had completed, so there is no checkpoint to resume from: run it again"
        minutes = recorder.spec.tracking.checkpoint_minutes
        return (
            f"it has no checkpoint to resume from yet (one is written every "
            f"tracking.checkpoint_minutes={minutes:g}, at the end and on Ctrl-C or SIGTERM after "
            "a completed epoch; 0 writes one after every epoch)"
        )
    option = "" if uri == DEFAULT_TRACKING_URI else f" --tracking-uri {printable(uri)}"
    return (
        f"continue it after epoch {recorder.checkpoint_epoch} with: {program('altlearn')} resume "
        f"{recorder.run_id}{option}"
    )


def _with_end_errors(message: str, trainer) -> str:
    return message + "".join(f"\nalso failed while ending: {printable(e)}" for e in trainer.end_errors)
