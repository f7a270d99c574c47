"""The commands over many runs: ``altlearn sweep`` (make them) and ``altlearn compare`` (read them)."""

from __future__ import annotations

import sys

import click

from altlearn.cli.support import interruptible, reports_errors, tracking_uri_option


@click.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option(
    "--sweep",
    metavar="NAME",
    help="the trials of this sweep: its name (the latest sweep of that name) or its parent run's id",
)
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
    "--select-by",
    metavar="METRIC",
    help="each at its best: per --per value, the configuration with the best mean METRIC at the last "
    "epoch (a validation metric, e.g. val_accuracy; never test_*), reported on test",
)
@click.option(
    "--per",
    metavar="PARAM,...",
    help="with --select-by: choose one configuration per value of these params [default: rule.type]",
)
@click.option(
    "--export-study",
    metavar="FILE",
    help="write a search's trials as an Optuna storage (SQLite), one study per case: "
    "optuna-dashboard sqlite:///FILE",
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
    "--out",
    "out_dir",
    metavar="DIR",
    help="write the tables (md, csv, json, tex), figures (png, svg, pdf), report.html and report.md here",
)
@click.option(
    "--no-log",
    is_flag=True,
    help="with --sweep: do not log the report to the sweep's run (read the store, write nothing there)",
)
@tracking_uri_option("of the runs")
@reports_errors
def compare(
    run_ids,
    sweep,
    experiment,
    filter_string,
    by,
    select_by,
    per,
    export_study,
    fmt,
    out_dir,
    no_log,
    tracking_uri,
) -> None:
    """Compare runs grouped over seeds: final accuracy mean ± std, 95% CI, pairwise tests, figures.

    \b
    altlearn compare --sweep SWEEP_NAME --out report/
    altlearn compare --experiment digits --filter "params.`rule.type` != 'ff'" --by rule.type
    altlearn compare --sweep GRID --select-by val_accuracy --per rule.type
    altlearn compare RUN_ID RUN_ID RUN_ID --format md

    A sweep with a search reports each case at its best: its chosen configuration and the
    evidence, the finals' test accuracy over fresh seeds, and pairwise tests between cases.
    Only FINISHED runs count; the others are listed with their status.
    """
    from pathlib import Path

    from altlearn.compare import compare as compare_runs
    from altlearn.compare.console import show
    from altlearn.tracking.store import tracking_uri as resolve_uri

    groups = _names(by)
    report = compare_runs(
        resolve_uri(tracking_uri),
        sweep=sweep,
        experiment=experiment,
        run_ids=run_ids,
        filter_string=filter_string,
        by=groups,
        out_dir=Path(out_dir) if out_dir else None,
        log=not no_log,
        select_by=select_by,
        per=_names(per),
        export_study=Path(export_study) if export_study else None,
    )
    show(report, fmt)


def _names(text: str | None) -> list[str] | None:
    """``rule.type, optimizer.lr`` -> ["rule.type", "optimizer.lr"]; None when none is given."""
    return [name.strip() for name in (text or "").split(",") if name.strip()] or None


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
@click.option(
    "--final-only",
    is_flag=True,
    help="a search sweep: run only the finals of cases whose search is done (docs/tuning.md)",
)
@interruptible
@reports_errors
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
    final_only: bool,
) -> None:
    """Run the trials of a sweep file (cases, grid, random draws, seeds, or a search per case and
    its finals) as runs of one MLflow sweep run; running it again continues it. See docs/sweeps.md
    and docs/tuning.md."""
    from altlearn.sweep.runner import SweepOptions, run_sweep

    options = SweepOptions(
        sweep_path,
        overrides,
        engine,
        workers,
        address,
        tracking_uri,
        fresh,
        dry_run,
        quiet,
        cases,
        seeds,
        final_only,
    )
    sys.exit(run_sweep(options))
