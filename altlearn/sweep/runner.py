"""``altlearn sweep``, start to end: resolve every trial, open (or continue) the sweep's MLflow
run, run the trials on an engine with a live table, then summarise and end the parent run.

It ends on :class:`altlearn.errors.ExitCode`'s codes; an interrupted sweep is continued by running
it again (finished trials are skipped, stopped ones resume after their last completed epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import click

from altlearn.errors import ExitCode
from altlearn.sweep.configurations import Trial
from altlearn.sweep.display import SweepDisplay, summary_lines, trial_lines
from altlearn.sweep.jobs import Event, Job, JobQueue
from altlearn.sweep.locks import retry_while_locked, wait_for_sqlite_locks
from altlearn.sweep.record import Plan, SweepRecord, mark_lost, open_sweep, plan_trials, trial_tags
from altlearn.sweep.search_trials import search_notes
from altlearn.sweep.summary import (
    DONE,
    NOT_STARTED,
    collect,
    end_parent,
    groups,
    log_summary,
    parent_status,
    search_choices,
)
from altlearn.sweep.trial_filter import final_only, select
from altlearn.sweep.trials import load_trials
from altlearn.text import printable, printable_message
from altlearn.tracking.signals import signals_deferred
from altlearn.tracking.store import DEFAULT_TRACKING_URI, program, tracking_uri


@dataclass(frozen=True)
class SweepOptions:
    path: str
    overrides: tuple[str, ...] = ()
    engine: str = "local"
    workers: int | None = None
    address: str | None = None
    tracking_uri: str | None = None  # as the user gave it (None: the default store)
    fresh: bool = False
    dry_run: bool = False
    quiet: bool = False
    cases: tuple[str, ...] = ()  # --case: run only the configurations matching these patterns
    seeds: tuple[int, ...] = ()  # --seed: run only these seeds
    final_only: bool = False  # a search: only the finals of cases whose search is done


def run_sweep(options: SweepOptions) -> int:
    """Raises an AltlearnError (SweepError, SweepUsageError, TrackingUnavailable...) for what stops
    the sweep before its trials run; its exit code says whether a mistake or a fault."""
    from altlearn.sweep.engines import make_engine, trial_resources

    sweep, trials = load_trials(options.path, list(options.overrides))
    selected = select(trials, options.cases, options.seeds) if options.cases or options.seeds else None
    if options.final_only:
        selected = final_only(sweep, trials, selected)
    chosen = trials if selected is None else [t for t in trials if t.index in selected]
    for note in search_notes(chosen):  # a search's settings that cannot do what they say
        _note(note)
    resources = trial_resources([t.spec for t in trials], sweep.resources, options.workers)
    if options.dry_run:
        _print_trials(trials, selected)
        return ExitCode.OK
    uri = tracking_uri(options.tracking_uri)
    wait_for_sqlite_locks()  # the sweep writes too (a lost trial's end) while trials log
    engine = make_engine(options.engine, resources, options.workers, options.address, _absolute(uri))
    options = _clamp_workers(options, len(getattr(engine, "slots", ())))
    engine.start(len(trials))
    try:
        record = open_sweep(_absolute(uri), sweep, trials, options.fresh)
        plans = plan_trials(record, trials, selected)
        if sweep.search is not None:
            from altlearn.sweep.tuning import defer_finals

            plans, notes = defer_finals(plans)
            for note in notes:
                _note(note)
        _say_plan(options, record, plans, engine.description)
        return _run(options, record, engine, plans, _queue(options, sweep, record, plans, resources), uri)
    finally:
        engine.close()


def _clamp_workers(options: SweepOptions, slots: int) -> SweepOptions:
    """The options as the sweep runs them: ``--workers`` above the engine's ``slots`` is noted and
    lowered, so the continue command printed later names the workers that really ran."""
    if options.workers and slots and options.workers > slots:
        _note(f"--workers {options.workers} is more than this machine can run side by side: using {slots}")
        return replace(options, workers=slots)
    return options


def _queue(options: SweepOptions, sweep, record: SweepRecord, plans: list[Plan], resources):
    """The jobs to run: a fixed list, or for a search a queue that builds each when it starts."""
    if sweep.search is not None:
        from altlearn.sweep.tuning import SearchQueue

        return SearchQueue(record, sweep, plans, list(options.overrides), resources.threads)
    runnable = [plan for plan in plans if plan.action in ("start", "resume")]
    return JobQueue([_job(record, plan, resources.threads) for plan in runnable])


def _absolute(uri: str) -> str:
    """Workers (and Ray tasks, whose working directory differs) must open the same SQLite file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri[len(prefix) :] != ":memory:":
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _job(record: SweepRecord, plan: Plan, threads: int) -> Job:
    trial = plan.trial
    return Job(
        index=trial.index,
        key=trial.key,
        spec_yaml=trial.spec.to_yaml(),
        uri=record.uri,
        parent_run_id=record.run_id,
        tags=trial_tags(record, trial),
        resume_run_id=plan.run_id if plan.action == "resume" else None,
        threads=threads,
        source=trial.spec.source or "",
    )


def _run(
    options: SweepOptions, record: SweepRecord, engine, plans: list[Plan], queue: JobQueue, uri: str
) -> int:
    outcomes: dict = {}
    display = SweepDisplay(plans, quiet=options.quiet)
    on_event = _event_handler(record, plans, outcomes, queue, display)
    interrupted, fault = False, None
    display.start()
    try:
        engine.run(queue, on_event)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - the engine itself broke: record it, then report
        fault = exc
    finally:
        display.stop()
    # The parent run's ending must not itself be cut short; a signal meanwhile asks for the
    # ending already under way, so it is absorbed.
    with signals_deferred(drop=True):
        results = retry_while_locked(lambda: collect(record, plans, outcomes))
        choices = _search_choices(record, results)
        summary = groups(results, choices)
        retry_while_locked(lambda: log_summary(record, results, summary))
        status = "FAILED" if fault else parent_status(results, interrupted)
        retry_while_locked(lambda: end_parent(record, status))
    _print_summary(results, summary)
    if fault is not None:
        raise fault
    if interrupted:
        _say_interrupted(options, record, results, uri)
        return ExitCode.INTERRUPTED
    for note in queue.notes:
        _note(note)
    compare_at_end(uri, record.run_id, options.quiet)
    _say_later(options, record, plans, status, uri)
    _say_where(record, uri)
    ran = [r for p, r in zip(plans, results) if p.action != "later"]
    return ExitCode.OK if all(r.status in DONE for r in ran) else ExitCode.FAILED


def _event_handler(record: SweepRecord, plans: list[Plan], outcomes: dict, queue, display):
    """What the sweep does with each event of a trial: a lost trial's run is ended here (one that
    died before opening its run stays out of ``outcomes``: NOT STARTED, and started next time)."""
    trials = {p.trial.index: p.trial for p in plans}

    def on_event(event: Event) -> None:
        never_opened = False
        if event.kind == "lost":  # its process died: the sweep ends the trial's run for it
            lost, outcome = trials[event.index], event.outcome
            assert outcome is not None and outcome.message is not None  # an engine says how it was lost
            message, status = outcome.message, outcome.status
            run_id = retry_while_locked(lambda: mark_lost(record, lost, message, status))
            never_opened = run_id is None
            event = replace(event, kind="done", outcome=replace(outcome, run_id=run_id))
        if event.kind == "done":
            if not never_opened:
                outcomes[event.index] = event.outcome
            queue.done(event)
        display.update(event)

    return on_event


def compare_at_end(uri: str, sweep_run_id: str, quiet: bool) -> None:
    """The one call site of altlearn.compare.compare_sweep: the comparison of a completed
    sweep's configurations (tables, figures, HTML report) logged to its parent run."""
    from altlearn.compare import compare_sweep
    from altlearn.errors import AltlearnError

    try:
        report = compare_sweep(uri, sweep_run_id)
    except AltlearnError as exc:  # one that says itself why (nothing to compare, the store...)
        _note(f"no comparison report for this sweep: {exc.report()}")
        return
    except Exception as exc:  # noqa: BLE001 - the sweep's own results are logged; say why, go on
        _note(f"no comparison report for this sweep: {type(exc).__name__}: {exc}")
        return
    if not quiet and report.logged_to_run:
        click.echo(
            f"comparison (tables, figures, HTML) logged to the sweep run under compare/; again with: "
            f"{program('altlearn')} compare --sweep {sweep_run_id} --out DIR{_uri_option(uri)}"
        )


# ------------------------------------------------------------------------------ what is printed


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_trials(trials: list[Trial], selected: set[int] | None) -> None:
    for line in trial_lines(trials, selected):
        click.echo(line)


def _say_plan(options: SweepOptions, record: SweepRecord, plans: list[Plan], engine: str) -> None:
    if record.dropped:  # even with --quiet: runs left the sweep
        which = ", ".join(record.dropped[:3]) + (" ..." if len(record.dropped) > 3 else "")
        _note(
            f"{_count(len(record.dropped), 'trial')} ({which}) no longer in the file and never "
            "finished: left out of the sweep, their runs tagged altlearn.superseded"
        )
    # even with --quiet: work a user thought was kept is done again
    gone = [p.trial for p in plans if p.checkpoint_gone]
    if gone:
        which = ", ".join(f"{t.label} seed {t.seed}" for t in gone[:3]) + (" ..." if len(gone) > 3 else "")
        _note(
            f"{_count(len(gone), 'unfinished trial')} ({which}) {'starts' if len(gone) == 1 else 'start'} "
            f"again from the first epoch: "
            f"the checkpoint files their runs name are gone from the artifact store (a store copied "
            f"without its mlartifacts folder, or the folder deleted); the old runs are tagged "
            f"altlearn.superseded"
        )
    if options.quiet:
        return
    counts = {a: sum(p.action == a for p in plans) for a in ("start", "resume", "skip", "later")}
    how = "continuing" if record.continued else "starting"
    later = f", {counts['later']} not selected" if counts["later"] else ""
    click.echo(
        f"{how} sweep run {record.run_id}: {len(plans)} trials ({counts['start']} to start, "
        f"{counts['resume']} to resume, {counts['skip']} finished before{later}); {engine}"
    )


def _search_choices(record: SweepRecord, results) -> dict[str, str]:
    """What each search chose, for the closing table: a nicety, so a store that fails to answer
    costs its line, never the parent run's ending."""
    try:
        return retry_while_locked(lambda: search_choices(record, results))
    except Exception:  # noqa: BLE001 - the table is shown without the choices
        return {}


def _print_summary(results, summary) -> None:
    for line in summary_lines(results, summary):
        click.echo(line)


def _uri_option(uri: str) -> str:
    return "" if uri == DEFAULT_TRACKING_URI else f" --tracking-uri {_quoted(printable(uri))}"


def _say_interrupted(options: SweepOptions, record: SweepRecord, results, uri: str) -> None:
    killed = sum(r.status == "KILLED" for r in results)
    waiting = sum(r.status == NOT_STARTED for r in results)
    _note(
        f"interrupted: {_count(killed, 'running trial')} ended KILLED "
        f"({'its metrics are' if killed == 1 else 'their metrics are'} kept), {waiting} not started; "
        f"the sweep's run {record.run_id} is KILLED. Continue it "
        f"(finished trials are skipped; stopped ones resume in their own runs after their last "
        f"completed epoch, and one stopped in its first epoch starts again) with: "
        f"{_same_command(options, uri)}"
    )


def _say_later(options: SweepOptions, record: SweepRecord, plans: list[Plan], status: str, uri: str) -> None:
    later = sum(p.action == "later" for p in plans)
    if later:
        unselected = replace(options, cases=(), seeds=(), final_only=False)
        state = "KILLED (incomplete)" if status == "KILLED" else f"{status} (a trial failed) and incomplete"
        _note(
            f"{_count(later, 'trial')} of {len(plans)} not selected by --case/--seed: the sweep's run "
            f"{record.run_id} is {state} until they run. Finish it with: "
            f"{_same_command(unselected, uri)}"
        )


def _same_command(options: SweepOptions, uri: str) -> str:
    """The command that continues this sweep as it ran: the same overrides, selection and workers
    (a search continued on other workers would draw other values than an uninterrupted one), each
    word quoted for a shell."""
    words = [f"{program('altlearn')} sweep", _quoted(options.path)] + [
        f"-s {_quoted(o)}" for o in options.overrides
    ]
    words += [f"--case {_quoted(c)}" for c in options.cases] + [f"--seed {s}" for s in options.seeds]
    words += ["--final-only"] if options.final_only else []
    if options.engine != "local":
        words.append(
            f"--engine {options.engine}"
            + (f" --address {_quoted(options.address)}" if options.address else "")
        )
    words += [f"--workers {options.workers}"] if options.workers is not None else []
    return " ".join(words) + _uri_option(uri)


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _say_where(record: SweepRecord, uri: str) -> None:
    from altlearn.text import printable
    from altlearn.tracking.store import ui_command

    click.echo(
        f"MLflow sweep run {record.run_id} in {printable(uri)}; view with: {printable(ui_command(uri))}"
    )


def _note(message: str) -> None:
    # Notes quote labels and errors read from the store: escaped on the way out.
    click.echo(click.style("note: ", fg="yellow", bold=True) + printable_message(message), err=True)
