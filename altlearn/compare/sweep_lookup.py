"""``--sweep NAME``: a sweep by the name its file gives it (what the user wrote), or by its run id.

Sweeps are found by their parent run's tags (``altlearn.kind = sweep``, ``altlearn.sweep_name``),
across every experiment of the store; the names are compared here, not in an MLflow filter, so a
name with quotes or backticks needs no escaping.
"""

from __future__ import annotations

import datetime
import re

from altlearn.compare.selection import RUN_ID, SWEEP_KIND_TAG, search_runs
from altlearn.errors import CompareError

SWEEP_NAME_TAG = "altlearn.sweep_name"
HEX_RUN_ID = re.compile(r"[0-9a-f]{32}")  # the ids MLflow's stores make


def find_sweep(client, name_or_id: str) -> tuple[str, list[str]]:
    """The parent run of the sweep ``name_or_id`` names: a run id, or the sweep's name (the
    ``name:`` of its file). Of several sweeps of one name the latest is taken, and a note says so."""
    if HEX_RUN_ID.fullmatch(name_or_id) and _exists(client, name_or_id):
        return name_or_id, []
    named = sorted(
        (
            run
            for run in _sweeps(client)
            if name_or_id in (run.data.tags.get(SWEEP_NAME_TAG), run.info.run_name)
        ),
        key=lambda run: -(run.info.start_time or 0),
    )
    if not named:
        if RUN_ID.fullmatch(name_or_id) and _exists(client, name_or_id):
            return name_or_id, []  # an id of another store's form: select_sweep says what it is
        known = sorted({run.data.tags.get(SWEEP_NAME_TAG) or run.info.run_name for run in _sweeps(client)})
        listed = ", ".join(repr(name) for name in known[:10]) + (" ..." if len(known) > 10 else "")
        raise CompareError(
            f"--sweep {name_or_id!r}: no sweep of that name and no run of that id in this tracking "
            f"store; its sweeps: {listed or 'none'}"
        )
    if len(named) == 1:
        return named[0].info.run_id, []
    others = ", ".join(f"{run.info.run_id} (started {_when(run)})" for run in named[1:4])
    return named[0].info.run_id, [
        f"{len(named)} sweeps are named {name_or_id!r}: compared the latest, run {named[0].info.run_id} "
        f"(started {_when(named[0])}); the other{'s' if len(named) > 2 else ''}: {others}"
        f"{' ...' if len(named) > 4 else ''} (give a run id to compare another)"
    ]


def _sweeps(client) -> list:
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return search_runs(client, experiment_ids, f"tags.`{SWEEP_KIND_TAG}` = 'sweep'", None)


def _exists(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


def _when(run) -> str:
    started = datetime.datetime.fromtimestamp((run.info.start_time or 0) / 1000, datetime.timezone.utc)
    return started.strftime("%Y-%m-%d %H:%M:%S UTC")
