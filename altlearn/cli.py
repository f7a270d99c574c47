"""The ``altlearn`` command. Heavy imports (torch, mlflow) happen inside the commands that need them.

Exit codes: 0 success; 1 training failed (diverged, or a bug: then a traceback); 2 a user mistake
(spec, missing data, unknown device): a message, never a traceback; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys

import click

from altlearn.plugins import KIND_NOUNS, KINDS
from altlearn.version import __version__

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SET_HELP = (
    "override a spec value: path=value, YAML-typed (optimizer.lr=0.01, train.device=cpu, "
    "network.layers.1.out_features=400); repeatable"
)


def _tracking_uri_option(of_what: str = ""):
    """The --tracking-uri option every command that reads or writes runs shares."""
    what = f" {of_what}" if of_what else ""
    return click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        default=None,
        help=f"MLflow tracking URI{what} [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]",
    )


def _error(message: str) -> None:
    from altlearn.printable import printable_message

    # Messages quote spec values: escape control characters (ESC sequences) on the way out.
    click.echo(click.style("error: ", fg="red", bold=True) + printable_message(message), err=True)


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    _error(message)
    sys.exit(code)


def _interruptible(command):
    """Ctrl-C or SIGTERM before training starts (imports, spec, data): exit 130 with a message,
    not click's 'Aborted!' (exit 1) or a silent kill. From then on train_spec handles them."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from altlearn.tracking.signals import install_sigterm

        # A scheduler's SIGTERM should end a run KILLED with its metrics, like Ctrl-C does.
        install_sigterm()
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            _fail("interrupted before training started", EXIT_INTERRUPTED)

    return wrapper


def _exit_with(outcome) -> None:
    """Print a run's outcome and exit with its code; a bug's traceback is shown, not hidden."""
    if outcome.exit_code == 0:
        click.echo(outcome.message)
        return
    if outcome.error is not None:
        _error(outcome.message)
        raise outcome.error
    _fail(outcome.message, outcome.exit_code)


def _load(spec_path: str, overrides: tuple[str, ...]):
    from altlearn.spec import SpecError, load_spec

    try:
        return load_spec(spec_path, list(overrides))
    except SpecError as exc:
        _fail(exc.report())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="altlearn")
def main() -> None:
    """Train networks with learning rules other than backprop, from one YAML spec.

    \b
    altlearn run specs/mnist_mlp_bp.yaml            train and log to MLflow
    altlearn run SPEC -s rule.type=fa -s optimizer.lr=0.001
    altlearn resume RUN_ID                          continue an interrupted run
    altlearn sweep specs/sweeps/mnist_rules.yaml    many runs: rules x settings x seeds
    altlearn validate SPEC                          report every mistake at once
    altlearn render SPEC                            print the spec with all defaults
    altlearn plugins                                every component and the package providing it
    altlearn options rule dfa                       one component's options
    altlearn compare --experiment digits --out cmp  rules side by side: table, figures, report
    mlflow ui                                       compare runs (in the folder you ran from)
    """


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@_tracking_uri_option()
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@_interruptible
def run(spec_path: str, overrides: tuple[str, ...], tracking_uri: str | None, quiet: bool) -> None:
    """Train the spec's network with its rule and log the run to MLflow."""
    from altlearn.runs import train_spec
    from altlearn.tracking.store import tracking_uri as resolve_uri

    spec = _load(spec_path, overrides)
    _exit_with(train_spec(spec, uri=resolve_uri(tracking_uri), quiet=quiet))


@main.command()
@click.argument("run_id")
@_tracking_uri_option("of the run")
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@_interruptible
def resume(run_id: str, tracking_uri: str | None, quiet: bool) -> None:
    """Continue an interrupted or failed run from its last checkpoint, in the same MLflow run.

    The run's logged spec is used as it is; training goes on from the last checkpointed epoch with
    the same data order and random streams, so the result equals an uninterrupted run's.
    """
    from altlearn.runs import train_spec
    from altlearn.spec import SpecError, load_spec_text
    from altlearn.tracking.resume import ResumeError, logged_spec
    from altlearn.tracking.store import TrackingUnavailable
    from altlearn.tracking.store import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    try:
        spec_text = logged_spec(uri, run_id)
    except (ResumeError, TrackingUnavailable) as exc:
        _fail(str(exc))
    try:
        spec = load_spec_text(spec_text, source=f"the spec logged in run {run_id}")
    except SpecError as exc:  # e.g. a plugin rule that is no longer installed
        _fail(exc.report())
    _exit_with(train_spec(spec, uri=uri, quiet=quiet, resume_run_id=run_id))


@main.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--sweep", metavar="RUN_ID", help="the trials of this sweep (the id of its parent run)")
@click.option("--experiment", metavar="NAME", help="the runs of this MLflow experiment")
@click.option(
    "--filter",
    "filter_string",
    metavar="QUERY",
    help="narrow --experiment or --sweep in MLflow's search syntax, e.g. \"params.`rule.type` = 'dfa'\"",
)
@click.option(
    "--by",
    metavar="PARAM,...",
    help="group by these params, e.g. rule.type,optimizer.lr [default: every param except the seed]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["rich", "md", "csv", "json"]),
    default="rich",
    show_default=True,
    help="the table on stdout",
)
@click.option(
    "--out", "out_dir", metavar="DIR", help="write the table (md, csv, json), figures and report.html here"
)
@_tracking_uri_option("of the runs")
def compare(run_ids, sweep, experiment, filter_string, by, fmt, out_dir, tracking_uri) -> None:
    """Compare runs grouped over seeds: final accuracy mean ± std, 95% CI, Welch's t-test, figures.

    \b
    altlearn compare --sweep SWEEP_RUN_ID --out report/
    altlearn compare --experiment digits --filter "params.`rule.type` != 'ff'" --by rule.type
    altlearn compare RUN_ID RUN_ID RUN_ID --format md

    Only FINISHED runs count; the others are listed with their status.
    """
    from pathlib import Path

    from altlearn.compare import CompareError
    from altlearn.compare import compare as compare_runs
    from altlearn.compare.console import show
    from altlearn.tracking import tracking_uri as resolve_uri

    groups = [name.strip() for name in (by or "").split(",") if name.strip()] or None
    try:
        report = compare_runs(
            resolve_uri(tracking_uri),
            sweep=sweep,
            experiment=experiment,
            run_ids=run_ids,
            filter_string=filter_string,
            by=groups,
            out_dir=Path(out_dir) if out_dir else None,
        )
    except CompareError as exc:
        _fail(str(exc))
    show(report, fmt)


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
def validate(spec_path: str, overrides: tuple[str, ...]) -> None:
    """Check a spec and report every problem at once (exit code 2 if any)."""
    from altlearn.printable import printable

    spec = _load(spec_path, overrides)
    layers = ", ".join(b.type for b in spec.layers)
    click.echo(
        f"{printable(spec_path)}: ok: {spec.data.type}, rule {spec.rule.type}, {len(spec.layers)} layers "
        f"({layers}), {spec.train.epochs} epochs"
    )


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
def render(spec_path: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved spec: every default filled in, overrides applied."""
    click.echo(_load(spec_path, overrides).to_yaml(), nl=False)


@main.command()
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("name")
def options(kind: str, name: str) -> None:
    """Show the options of one component: its spec keys, types, defaults and meaning.

    \b
    altlearn options rule dfa
    altlearn options layer conv2d
    altlearn options optimizer adam
    """
    from altlearn.options_text import default_value, type_text
    from altlearn.plugins import PluginError, get_registry

    registry = get_registry()
    try:
        entry = registry.get(kind, name)
        component = entry.load()
    except KeyError:
        _fail(f"no {kind} {name!r}; known: {', '.join(registry.names(kind))}{registry.broken_hint()}")
    except PluginError as exc:
        _fail(str(exc))
    params = getattr(component, "Params", None)
    if params is None:
        _fail(f"{kind} {name!r} from package {entry.package} {entry.version} has no Params model")
    fields = params.model_fields
    click.echo(
        f"{kind} {name} (from {entry.package} {entry.version}): "
        f"{len(fields)} option{'s' if len(fields) != 1 else ''}"
    )
    for key, info in fields.items():
        default = default_value(info)
        default = "required" if default == "required" else f"default {default!r}"
        click.echo(f"  {key}: {type_text(info)}, {default}")
        if info.description:
            click.echo(f"      {info.description}")


@main.command()
@click.option("-v", "--verbose", is_flag=True, help="show the tracebacks of broken plugins")
def plugins(verbose: bool) -> None:
    """List every component (rules, data sets, layers, optimizers, schedules, losses) with the
    package that provides it."""
    from altlearn.plugins import PLUGIN_SELECTION_ENV, get_registry

    registry = get_registry()
    # One column width for "package version" across all kinds, so third-party rows line up too.
    width = max(
        len(f"{c.package} {c.version}")
        for kind in registry.components
        for c in registry.components[kind].values()
    )
    conflicts = {(c.kind, c.name): c for c in registry.conflicts}
    for kind in KINDS:
        click.echo(click.style(_plural(KIND_NOUNS[kind]), bold=True))
        for name in registry.names(kind):
            c = registry.components[kind][name]
            clash = conflicts.get((kind, name))
            if clash:  # the first registrant is stored, but the name is unusable: do not show it as theirs
                click.echo(
                    f"  {name:<14} {'(conflict)':<{width}}  registered by "
                    f"{' and '.join(clash.packages)}: unusable, see below"
                )
                continue
            click.echo(f"  {name:<14} {c.package + ' ' + c.version:<{width}}  {c.summary}")
    for conflict in registry.conflicts:
        click.echo(click.style("conflict: ", fg="yellow", bold=True) + conflict.message())
    if registry.broken:
        click.echo(click.style("broken plugins", bold=True, fg="red"))
        for b in registry.broken:
            click.echo(f"  {b.package} {b.version} (entry point {b.name!r}): {b.error}")
            if verbose:
                click.echo("    " + b.details.replace("\n", "\n    "))
    if registry.left_out:
        click.echo(f"left out by {PLUGIN_SELECTION_ENV}: {', '.join(registry.left_out)}")
    if registry.unmatched_selection:
        click.echo(
            click.style("warning: ", fg="yellow", bold=True) + f"{PLUGIN_SELECTION_ENV} "
            f"names no installed plugin: {', '.join(registry.unmatched_selection)} (give "
            "an entry-point name or a package name)"
        )
    click.echo(f"(choose which plugins load with {PLUGIN_SELECTION_ENV}=name,name or none)")


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


@main.command()
@click.argument("sweep_path", metavar="SWEEP")
@click.option(
    "-s",
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="override a spec value in every trial, after the sweep file's own overrides; repeatable",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes here; ray: one Ray task per trial (pip install 'altlearn[ray]')",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="local engine: trials at once [default: CPU cores // a trial's threads, or one per GPU]",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDRESS",
    help="ray engine: the cluster to use (auto, ray://HOST:10001) [default: a Ray instance started here]",
)
@_tracking_uri_option()
@click.option(
    "--fresh", is_flag=True, help="a new sweep run, even if this sweep ran before [default: continue it]"
)
@click.option("--dry-run", is_flag=True, help="list the trials (configuration, seed, keys); run nothing")
@click.option("-q", "--quiet", is_flag=True, help="no progress table, only the summary")
@_interruptible
def sweep(
    sweep_path: str,
    overrides: tuple[str, ...],
    engine: str,
    workers: int | None,
    address: str | None,
    tracking_uri: str | None,
    fresh: bool,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Run the trials of a sweep file (cases, grid, random draws, seeds) as runs of one MLflow
    sweep run; running it again continues it. See docs/sweeps.md."""
    from altlearn.sweep.engines.local import WorkersCannotStart
    from altlearn.sweep.record import SweepUsageError
    from altlearn.sweep.runner import SweepOptions, run_sweep
    from altlearn.sweep.sweep_file import SweepError
    from altlearn.tracking import TrackingUnavailable

    options = SweepOptions(
        sweep_path, overrides, engine, workers, address, tracking_uri, fresh, dry_run, quiet
    )
    try:
        code = run_sweep(options)
    except SweepError as exc:
        _fail(exc.report())
    except (SweepUsageError, TrackingUnavailable) as exc:
        _fail(str(exc))
    except WorkersCannotStart as exc:
        _fail(str(exc), EXIT_FAILED)
    sys.exit(code)


if __name__ == "__main__":
    main()
