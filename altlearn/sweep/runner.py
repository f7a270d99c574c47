"""``altlearn sweep``, start to end: resolve every trial, open (or continue) the sweep's MLflow
run, run the trials on an engine with a live table, then summarise and end the parent run.

Exit codes: 0 every trial finished; 1 a trial failed; 2 a user mistake (nothing ran, no MLflow run
opened); 130 interrupted (running trials KILLED, the rest not started; running it again continues).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import click

from altlearn.sweep.display import SweepDisplay, brief
from altlearn.sweep.jobs import Event, Job
from altlearn.sweep.record import Plan, SweepRecord, mark_lost, open_sweep, plan_trials, trial_tags
from altlearn.sweep.selection import select
from altlearn.sweep.store import retry_while_locked, wait_for_sqlite_locks
from altlearn.sweep.summary import LATER, NOT_STARTED, collect, end_parent, groups, log_summary, parent_status
from altlearn.sweep.trials import Trial, load_trials

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


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


def run_sweep(options: SweepOptions) -> int:
    """Raises SweepError, SweepUsageError or TrackingUnavailable for user mistakes (exit 2)."""
    from altlearn.sweep.engines import make_engine, trial_resources
    from altlearn.tracking import tracking_uri

    sweep, trials = load_trials(options.path, list(options.overrides))
    selected = select(trials, options.cases, options.seeds) if options.cases or options.seeds else None
    resources = trial_resources([t.spec for t in trials], sweep.resources, options.workers)
    if options.dry_run:
        _print_trials(trials, selected)
        return EXIT_OK
    uri = tracking_uri(options.tracking_uri)
    wait_for_sqlite_locks()  # the sweep writes too (a lost trial's end) while trials log
    engine = make_engine(options.engine, resources, options.workers, options.address, _absolute(uri))
    engine.start(len(trials))
    try:
        record = open_sweep(_absolute(uri), sweep, trials, options.fresh)
        plans = plan_trials(record, trials, selected)
        jobs = [_job(record, plan, resources.threads) for plan in plans if plan.action in ("start", "resume")]
        _say_plan(options, record, plans, engine.description)
        return _run(options, record, engine, plans, jobs, uri)
    finally:
        engine.close()


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
    options: SweepOptions, record: SweepRecord, engine, plans: list[Plan], jobs: list[Job], uri: str
) -> int:
    trials = {p.trial.index: p.trial for p in plans}
    outcomes: dict = {}
    display = SweepDisplay(plans, quiet=options.quiet)

    def on_event(event: Event) -> None:
        if event.kind == "lost":  # its process died: the sweep ends the trial's run for it
            lost = trials[event.index]
            run_id = retry_while_locked(
                lambda: mark_lost(record, lost, event.outcome.message, event.outcome.status)
            )
            event = replace(event, kind="done", outcome=replace(event.outcome, run_id=run_id))
        if event.kind == "done":
            outcomes[event.index] = event.outcome
        display.update(event)

    interrupted, fault = False, None
    display.start()
    try:
        engine.run(jobs, on_event)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - the engine itself broke: record it, then report
        fault = exc
    finally:
        display.stop()
    with _signals_ignored():  # the parent run's ending must not itself be cut short
        results = retry_while_locked(lambda: collect(record, plans, outcomes))
        summary = groups(results)
        retry_while_locked(lambda: log_summary(record, results, summary))
        status = "FAILED" if fault else parent_status(results, interrupted)
        retry_while_locked(lambda: end_parent(record, status))
    _print_summary(results, summary)
    if fault is not None:
        raise fault
    if interrupted:
        _say_interrupted(options, record, results, uri)
        return EXIT_INTERRUPTED
    compare_at_end(uri, record.run_id, options.quiet)
    _say_later(options, record, plans, status, uri)
    _say_where(record, uri)
    ran = [r for p, r in zip(plans, results) if p.action != "later"]
    return EXIT_OK if all(r.status == "FINISHED" for r in ran) else EXIT_FAILED


def compare_at_end(uri: str, sweep_run_id: str, quiet: bool) -> None:
    """THE call site of altlearn.compare.compare_sweep (issue 13): the comparison of a completed
    sweep's configurations (tables, figures, HTML report) logged to its parent run."""
    from altlearn.compare import CompareError, compare_sweep

    try:
        report = compare_sweep(uri, sweep_run_id)
    except CompareError as exc:
        _note(f"no comparison report for this sweep: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - the sweep's own results are logged; say why, go on
        _note(f"no comparison report for this sweep: {type(exc).__name__}: {exc}")
        return
    if not quiet and report.logged_to_run:
        click.echo(
            f"comparison (tables, figures, HTML) logged to the sweep run under compare/; again with: "
            f"altlearn compare --sweep {sweep_run_id} --out DIR{_uri_option(uri)}"
        )


@contextlib.contextmanager
def _signals_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------ what is printed


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_trials(trials: list[Trial], selected: set[int] | None) -> None:
    configurations = len({t.group_key for t in trials})
    seeds = len({t.seed for t in trials})
    click.echo(
        f"{_count(len(trials), 'trial')}: {_count(configurations, 'configuration')} x {_count(seeds, 'seed')}"
        + ("" if selected is None else f"; {len(selected)} selected by --case/--seed, listed below")
    )
    click.echo(f"{'#':>4}  {'trial key':<12}  {'group key':<12}  {'seed':>4}  configuration")
    for trial in trials if selected is None else [t for t in trials if t.index in selected]:
        click.echo(
            f"{trial.index + 1:>4}  {trial.key:<12}  {trial.group_key:<12}  {trial.seed:>4}  {trial.label}"
        )


def _say_plan(options: SweepOptions, record: SweepRecord, plans: list[Plan], engine: str) -> None:
    if record.dropped:  # even with --quiet: runs left the sweep
        which = ", ".join(record.dropped[:3]) + (" ..." if len(record.dropped) > 3 else "")
        _note(
            f"{_count(len(record.dropped), 'trial')} ({which}) no longer in the file and never "
            "finished: left out of the sweep, their runs tagged altlearn.superseded"
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


def _print_summary(results, summary) -> None:
    width = max((len(g.label) for g in summary), default=10)
    click.echo(f"{'configuration':<{width}}  finished  test accuracy (mean +- std)")
    for g in summary:
        value = "" if g.mean is None else f"{g.mean:.2%}" + (f" +- {g.std:.2%}" if g.std is not None else "")
        click.echo(f"{g.label:<{width}}  {g.finished:>3}/{g.trials:<4}  {value}")
    for r in results:
        if r.status not in ("FINISHED", NOT_STARTED, LATER):
            click.echo(
                f"trial {r.trial.index + 1} ({r.trial.label}, seed {r.trial.seed}) {r.status}: {brief(r.message)}"
            )


def _uri_option(uri: str) -> str:
    from altlearn.tracking import DEFAULT_TRACKING_URI

    return "" if uri == DEFAULT_TRACKING_URI else f" --tracking-uri {uri}"


def _say_interrupted(options: SweepOptions, record: SweepRecord, results, uri: str) -> None:
    killed = sum(r.status == "KILLED" for r in results)
    waiting = sum(r.status == NOT_STARTED for r in results)
    _note(
        f"interrupted: {_count(killed, 'running trial')} ended KILLED "
        f"({'its metrics are' if killed == 1 else 'their metrics are'} kept), {waiting} not started; "
        f"the sweep's run {record.run_id} is KILLED. Continue it "
        f"(finished trials are skipped, stopped ones resume from their checkpoints) with: "
        f"{_same_command(options, uri)}"
    )


def _say_later(options: SweepOptions, record: SweepRecord, plans: list[Plan], status: str, uri: str) -> None:
    later = sum(p.action == "later" for p in plans)
    if later:
        unselected = replace(options, cases=(), seeds=())
        state = "KILLED (incomplete)" if status == "KILLED" else f"{status} (a trial failed) and incomplete"
        _note(
            f"{_count(later, 'trial')} of {len(plans)} not selected by --case/--seed: the sweep's run "
            f"{record.run_id} is {state} until they run. Finish it with: "
            f"{_same_command(unselected, uri)}"
        )


def _same_command(options: SweepOptions, uri: str) -> str:
    words = ["altlearn sweep", options.path] + [f"-s {o}" for o in options.overrides]
    words += [f"--case {_quoted(c)}" for c in options.cases] + [f"--seed {s}" for s in options.seeds]
    if options.engine != "local":
        words.append(
            f"--engine {options.engine}" + (f" --address {options.address}" if options.address else "")
        )
    return " ".join(words) + _uri_option(uri)


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _say_where(record: SweepRecord, uri: str) -> None:
    from altlearn.printable import printable
    from altlearn.tracking.store import ui_command

    click.echo(
        f"MLflow sweep run {record.run_id} in {printable(uri)}; view with: {printable(ui_command(uri))}"
    )


def _note(message: str) -> None:
    click.echo(click.style("note: ", fg="yellow", bold=True) + message, err=True)
