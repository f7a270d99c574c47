"""The MLflow tracking store: which one, is it usable, and a client for it.

Checked before any data loads, so a wrong URI costs seconds, not a training run. A SQLite store is
created or repaired by one process at a time (``sqlite_store``); a server is asked to answer within
a bounded time instead of MLflow's retries of many minutes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from altlearn.errors import TrackingFault, TrackingUnavailable
from altlearn.text import printable

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"

#: MLflow's experiment tag for what an experiment holds: altlearn's hold model-training runs
#: ("custom_model_development", the UI's "Machine learning"), not GenAI traces. MLflow's UI picks an
#: experiment's view from this tag unless its sidebar switch (GenAI / Model training, kept per
#: browser) is enabled, which in MLflow 3.17 it always is: there the README's click still counts.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

#: MLflow's HTTP retries, bounded: a dead server is reported in about a minute, not after twelve.
#: A user's own settings of these variables win.
SERVER_PATIENCE = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def tracking_uri(cli_uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def ui_command(uri: str) -> str:
    """The command that opens MLflow's UI on ``uri``."""
    import shlex

    return f"{program('mlflow')} ui --backend-store-uri {shlex.quote(uri)}"


def program(name: str) -> str:
    """``name`` (altlearn, mlflow) as the commands printed for the user write it: by its full path
    when a shell would not find this environment's own (altlearn started from a venv that is not
    active), else the bare name; quoted for a shell."""
    import shlex
    import shutil
    import sys

    ours = Path(sys.executable).parent / name
    found = shutil.which(name)
    if ours.exists() and (found is None or Path(found).resolve() != ours.resolve()):
        return shlex.quote(str(ours))
    return name


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def connect(uri: str, experiment: str | None = None, reading: bool = False):
    """An MlflowClient for ``uri`` and the id of ``experiment`` (created if new; None if not
    asked for: then the store is only touched), or TrackingUnavailable with a one-line reason.
    ``reading``: an existing store that is only read, opened without the creation lock, so that
    no lock file appears beside a store kept for reference."""
    from contextlib import nullcontext

    from mlflow.tracking import MlflowClient

    from altlearn.tracking.sqlite_store import prepared_store

    # MLflow configures its logger on import; keep its database set-up chatter off the console.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # It also logs every database error with a traceback; altlearn reports them as one message.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    _check_server_reachable(uri)
    db_path = sqlite_path(uri)
    if db_path is not None:
        _check_sqlite_folder(uri, db_path)
    try:
        # one process creates or repairs a SQLite store at a time
        with nullcontext() if reading else prepared_store(db_path):
            client = MlflowClient(tracking_uri=uri)
            if experiment:
                return client, experiment_id(client, experiment, db_path)
            client.search_experiments(max_results=1)  # touch the store: fail now if it is unusable
            return client, None
    except TrackingUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any store failure becomes one clear message
        raise TrackingUnavailable(
            f"cannot use the MLflow tracking store {printable(uri)}: {describe(exc)}{_HINT}"
        ) from None


_HINT = f" (set --tracking-uri or MLFLOW_TRACKING_URI; the default is {DEFAULT_TRACKING_URI})"


def describe(exc: BaseException) -> str:
    """'Type: first line of the message' of the root cause (MLflow wraps SQLAlchemy, which wraps
    sqlite3: the innermost error says what happened), short enough for one line of a report."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else "(no message)"
    return printable(f"{type(exc).__name__}: {first}")


def _check_sqlite_folder(uri: str, db_path: Path) -> None:
    """MLflow would create a missing folder anywhere the URI points (a typo becomes a new tree)."""
    folder = db_path.absolute().parent
    if not folder.exists():
        raise TrackingUnavailable(
            f"cannot use the MLflow tracking store {printable(uri)}: the folder {printable(folder)} does "
            "not exist (create it first, or fix the path: sqlite:///relative.db, sqlite:////abs/path.db)"
        )
    if not folder.is_dir():
        raise TrackingUnavailable(
            f"cannot use the MLflow tracking store {printable(uri)}: {printable(folder)} is not a folder"
        )


def experiment_id(client, name: str, db_path: Path | None) -> str:
    """The id of experiment ``name``, created if new; either way marked as holding training runs
    (``EXPERIMENT_KIND``) unless it already says what it holds."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        _mark_kind(client, experiment)
        return experiment.experiment_id
    artifact_location = None
    if db_path is not None:
        # Keep artifacts beside the database, where `mlflow ui` started in this folder finds them.
        artifact_location = (db_path.resolve().parent / ARTIFACT_FOLDER).as_uri()
    try:
        return client.create_experiment(
            name, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except MlflowException:
        # Another run of a sweep created it between our look-up and now: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        _mark_kind(client, experiment)
        return experiment.experiment_id


def _mark_kind(client, experiment) -> None:
    """Tag an experiment that has no kind yet; a kind someone chose stays. A store that refuses the
    tag (a server's permissions) costs the UI's default view only, never the run."""
    if EXPERIMENT_KIND_TAG in experiment.tags:
        return
    try:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except Exception:  # noqa: BLE001 - any store's refusal; the run goes on untagged
        logging.getLogger(__name__).debug("could not tag the experiment's kind", exc_info=True)


def _check_server_reachable(uri: str) -> None:
    """Fail in seconds on an unreachable server, and bound MLflow's retries on a server that
    stops answering later."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    for name, value in SERVER_PATIENCE.items():
        os.environ.setdefault(name, value)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=5):
            pass
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking server {printable(uri)}: {exc.strerror or exc} (is "
            "`mlflow server` running there?)"
        ) from None


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn any failure of a store or artifact write inside the block into TrackingFault."""
    try:
        yield
    except TrackingFault:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlite, HTTP, OS and MLflow errors alike
        raise TrackingFault(what, exc, describe(exc)) from exc


#: How long the end of a run keeps trying a store that refuses writes (each SQLite attempt itself
#: waits up to 20 s for a lock). ALTLEARN_STORE_PATIENCE_SECONDS changes it.
def store_patience() -> float:
    try:
        return max(0.0, float(os.environ.get("ALTLEARN_STORE_PATIENCE_SECONDS", "60")))
    except ValueError:
        return 60.0


def patiently(write, what: str):
    """``write()``, retried every 2 s until it succeeds or the store's patience runs out."""
    deadline = time.monotonic() + store_patience()
    while True:
        try:
            return write()
        except Exception as exc:  # noqa: BLE001 - retried, then reported as TrackingFault
            if time.monotonic() + 2 > deadline:
                raise TrackingFault(what, exc, describe(exc)) from exc
            time.sleep(2)


def all_runs(
    client, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None
) -> list:
    """Every run the search finds, page by page (MLflow returns at most 1000 at a time)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string, order_by=order_by, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


#: MLflow draws a progress bar on stderr for every artifact download unless this says false
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """Artifact downloads without MLflow's progress bars: altlearn's stderr is for its own notes
    (a resumed trial's checkpoint download would otherwise draw one in the sweep's output)."""
    saved = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = saved
