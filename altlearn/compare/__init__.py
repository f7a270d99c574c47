"""``altlearn compare``: which rule wins, by how much, with statistics and pictures.

Modules, in the order data flows through them: selection (runs from the tracking store; sweep_lookup
finds a sweep by name; search_file reads a search's settings from its sweep file), grouping (seeds of
one configuration), stats (mean, std, interval, the ranking), pairwise (every pair of groups tested,
paired by seed where it can be, Holm-corrected), search and best_of (each case at its best: a
search's choice or a grid's), comparison and at_best (the report), labels (readable names, colours),
table, table_best, table_pairs, latex, setup, figures, search_figures and html_report (its forms),
outputs (files and artifacts), export_study (an Optuna storage).

Nothing heavy is imported here: the command line imports this package only when compare runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from altlearn.errors import CompareError

if TYPE_CHECKING:
    from altlearn.compare.comparison import Report

__all__ = ["CompareError", "compare", "compare_sweep"]


def compare(
    uri: str,
    *,
    sweep: str | None = None,
    experiment: str | None = None,
    run_ids: list[str] | tuple[str, ...] = (),
    filter_string: str | None = None,
    by: list[str] | None = None,
    out_dir: Path | None = None,
    log: bool = True,
    select_by: str | None = None,
    per: list[str] | None = None,
    export_study: Path | None = None,
) -> Report:
    """Compare the runs chosen by exactly one of ``sweep`` (its name or its parent run's id),
    ``experiment`` or ``run_ids``.

    A sweep with a search reports each case at its best: the configuration its search chose, and
    that configuration's test accuracy over fresh seeds, with pairwise tests between the cases.
    ``select_by`` (a validation metric) with ``per`` (params, default rule.type) gives the same
    view of a grid: per value of ``per``, the configuration with the best mean ``select_by``.
    ``export_study``: also write a search's trials as an Optuna storage (SQLite) there.

    With ``out_dir`` the tables (md, csv, json, tex), the figures and report.html are written there.
    A sweep's outputs are also logged to its parent run (under compare/), with or without
    ``out_dir``, unless ``log`` is False: then nothing is written to the store.
    Raises CompareError with a message for the user when there is nothing sensible to compare, or
    when ``out_dir`` cannot be a folder or cannot be written to.
    """
    from altlearn.compare.at_best import build
    from altlearn.compare.selection import open_store

    _check_choice(sweep, experiment, run_ids, filter_string)
    _check_options(select_by, per, out_dir, export_study)
    client = open_store(uri)
    selection = _select(client, sweep, experiment, run_ids, filter_string, (select_by,) if select_by else ())
    # A sweep varies what it was told to vary: differing networks there are the experiment itself.
    report = build(selection, by, strict=sweep is None, select_by=select_by, per=per)
    if export_study is not None:
        from altlearn.compare.export_study import export_study as write_study

        write_study(report, Path(export_study), selection.sweep_name or selection.sweep_run_id or "sweep")
    return _deliver(client, report, selection.sweep_run_id if log else None, out_dir)


def _deliver(client, report: Report, parent: str | None, out_dir: Path | None) -> Report:
    """The files into ``out_dir``, and to the sweep's ``parent`` run (None: not logged)."""
    from altlearn.compare.outputs import log_to_run, write_outputs

    if out_dir is not None:
        write_outputs(report, Path(out_dir))
    if parent is None:
        return report
    if out_dir is not None:
        log_to_run(client, parent, report)
        return report
    with tempfile.TemporaryDirectory(prefix="altlearn-compare-") as tmp:
        write_outputs(report, Path(tmp))
        log_to_run(client, parent, report)
    report.files = {}  # they lived in the temporary folder; the run's artifacts hold them now
    return report


def compare_sweep(uri: str, sweep_run_id: str, out_dir: Path | None = None) -> Report:
    """The comparison `altlearn sweep` runs at its end: its trials, outputs logged to its parent."""
    return compare(uri, sweep=sweep_run_id, out_dir=out_dir)


def _check_options(select_by, per, out_dir, export_study) -> None:
    """What can be refused before the store is read: a test metric to choose by, an --out or an
    --export-study that cannot be written."""
    from altlearn.compare.best_of import check_select_by
    from altlearn.compare.outputs import check_folder

    check_select_by(select_by, per)
    if out_dir is not None:
        check_folder(Path(out_dir))
    if export_study is not None:
        from altlearn.compare.export_study import check_study_path

        check_study_path(Path(export_study))


def _check_choice(sweep, experiment, run_ids, filter_string) -> None:
    chosen = [
        name
        for name, given in (("--sweep", sweep), ("--experiment", experiment), ("RUN_ID", run_ids))
        if given
    ]
    if len(chosen) != 1:
        raise CompareError(
            "choose the runs with exactly one of --sweep NAME, --experiment NAME or run ids"
            + (f" (given: {' and '.join(chosen)})" if chosen else "")
        )
    if filter_string and run_ids:
        raise CompareError("--filter narrows --experiment or --sweep; it does not apply to run ids")


def _select(client, sweep, experiment, run_ids, filter_string, extra: tuple[str, ...]):
    from altlearn.compare import selection
    from altlearn.compare.sweep_lookup import find_sweep

    if sweep:
        run_id, notes = find_sweep(client, sweep)
        chosen = selection.select_sweep(client, run_id, filter_string, extra)
        chosen.notes[:0] = notes
        return chosen
    if experiment:
        return selection.select_experiment(client, experiment, filter_string, extra)
    return selection.select_run_ids(client, list(run_ids), extra)
