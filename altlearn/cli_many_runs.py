"""The commands over many runs: ``altlearn sweep`` (make them) and ``altlearn compare`` (read them)."""

from __future__ import annotations

import sys

import click

from altlearn.cli_support import EXIT_FAILED, fail, interruptible, tracking_uri_option


@click.command()
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
@click.option(
    "--no-log",
    is_flag=True,
    help="with --sweep: do not log the report to the sweep's run (read the store, write nothing there)",
)
@tracking_uri_option("of the runs")
def compare(run_ids, sweep, experiment, filter_string, by, fmt, out_dir, no_log, tracking_uri) -> None:
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
            log=not no_log,
        )
    except CompareError as exc:
        fail(str(exc))
    show(report, fmt)


@click.command()
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
@tracking_uri_option()
@click.option(
    "--fresh", is_flag=True, help="a new sweep run, even if this sweep ran before [default: continue it]"
)
@click.option(
    "--case",
    "cases",
    multiple=True,
    metavar="PATTERN",
    help="run only the configurations whose label matches (the label, a case's label in a cases x "
    "grid sweep, or a case-sensitive shell-style pattern: '3x800 *'); repeatable; the other trials "
    "wait for a later run of the sweep",
)
@click.option(
    "--seed", "seeds", multiple=True, type=int, metavar="N", help="run only this seed's trials; repeatable"
)
@click.option("--dry-run", is_flag=True, help="list the trials (configuration, seed, keys); run nothing")
@click.option("-q", "--quiet", is_flag=True, help="no progress table, only the summary")
@interruptible
def sweep(
    sweep_path: str,
    overrides: tuple[str, ...],
    engine: str,
    workers: int | None,
    address: str | None,
    tracking_uri: str | None,
    fresh: bool,
    cases: tuple[str, ...],
    seeds: tuple[int, ...],
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
        sweep_path, overrides, engine, workers, address, tracking_uri, fresh, dry_run, quiet, cases, seeds
    )
    try:
        code = run_sweep(options)
    except SweepError as exc:
        fail(exc.report())
    except (SweepUsageError, TrackingUnavailable) as exc:
        fail(str(exc))
    except WorkersCannotStart as exc:
        fail(str(exc), EXIT_FAILED)
    sys.exit(code)
