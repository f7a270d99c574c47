"""``altlearn compare``: which rule wins, by how much, with statistics and pictures.

Modules, in the order data flows through them: selection (runs from the tracking store), grouping
(seeds of one configuration), stats (mean, std, interval, Welch's test), comparison (the report),
table, figures and html_report (its forms), outputs (files and artifacts).

Nothing heavy is imported here: the command line imports this package only when compare runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from altlearn.compare.errors import CompareError

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
) -> Report:
    """Compare the runs chosen by exactly one of ``sweep``, ``experiment`` or ``run_ids``.

    With ``out_dir`` the table (md, csv, json), the figures and report.html are written there. A
    sweep's outputs are also logged to its parent run (under compare/), with or without ``out_dir``,
    unless ``log`` is False: then nothing is written to the store.
    Raises CompareError with a message for the user when there is nothing sensible to compare.
    """
    from altlearn.compare.comparison import build_report
    from altlearn.compare.outputs import log_to_run, write_outputs
    from altlearn.compare.selection import open_store

    _check_choice(sweep, experiment, run_ids, filter_string)
    client = open_store(uri)
    selection = _select(client, sweep, experiment, run_ids, filter_string)
    # A sweep varies what it was told to vary: differing networks there are the experiment itself.
    report = build_report(selection, by, strict=sweep is None)
    if out_dir is not None:
        write_outputs(report, Path(out_dir))
    if sweep is None or not log:
        return report
    if out_dir is not None:
        log_to_run(client, sweep, report)
        return report
    with tempfile.TemporaryDirectory(prefix="altlearn-compare-") as tmp:
        write_outputs(report, Path(tmp))
        log_to_run(client, sweep, report)
    report.files = {}  # they lived in the temporary folder; the run's artifacts hold them now
    return report


def compare_sweep(uri: str, sweep_run_id: str, out_dir: Path | None = None) -> Report:
    """The comparison `altlearn sweep` runs at its end: its trials, outputs logged to its parent."""
    return compare(uri, sweep=sweep_run_id, out_dir=out_dir)


def _check_choice(sweep, experiment, run_ids, filter_string) -> None:
    chosen = [
        name
        for name, given in (("--sweep", sweep), ("--experiment", experiment), ("RUN_ID", run_ids))
        if given
    ]
    if len(chosen) != 1:
        raise CompareError(
            "choose the runs with exactly one of --sweep RUN_ID, --experiment NAME or run ids"
            + (f" (given: {' and '.join(chosen)})" if chosen else "")
        )
    if filter_string and run_ids:
        raise CompareError("--filter narrows --experiment or --sweep; it does not apply to run ids")


def _select(client, sweep, experiment, run_ids, filter_string):
    from altlearn.compare import selection

    if sweep:
        return selection.select_sweep(client, sweep, filter_string)
    if experiment:
        return selection.select_experiment(client, experiment, filter_string)
    return selection.select_run_ids(client, list(run_ids))
