"""The kept stores of results/: copy a live sweep store in (snapshot) and back out to a working
folder (restore), with SQLite's own backup so that a store trials are writing to copies whole."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

ARTIFACTS = "mlartifacts"  # where altlearn puts a SQLite store's artifacts: beside the database


class StoreError(Exception):
    """A store cannot be kept or restored as asked; the message says why."""


def replace_block(text: str, start: str, end: str, content: str, where: str) -> str:
    """``text`` with what stands between the markers ``start`` and ``end`` replaced by ``content``:
    the generated blocks of the docs (``where`` names the file in the error)."""
    if start not in text:
        raise StoreError(f"{where} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content}\n{end}{tail}"


def store_commands(description: str, subject: tuple[str, str], snapshot_help: str, restore_help: str):
    """The parser of a results script with its ``snapshot SUBJECT LIVE`` and ``restore SUBJECT
    FOLDER`` commands (``subject``: its argument's name and help); and its subparsers, to add more."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    keep = commands.add_parser("snapshot", help=snapshot_help)
    keep.add_argument(subject[0], help=subject[1])
    keep.add_argument("live", help="the live store: a path or a sqlite:/// URI")
    work = commands.add_parser("restore", help=restore_help)
    work.add_argument(subject[0])
    work.add_argument("folder", type=Path)
    return parser, commands


def restore_kept(kept: Path, folder: Path, sweep_file: str) -> str:
    """Restore ``kept`` into ``folder``; the line that says how to continue its sweep there."""
    if not kept.exists():
        raise StoreError(f"no kept store {kept}")
    target = restore(kept, folder)
    return f"{target}: continue with altlearn sweep {sweep_file} --tracking-uri sqlite:///{target.resolve()}"


def latest_sweep(client: Any, name: str) -> Any:
    """The newest parent run of the sweeps called ``name`` in the MLflow ``client``'s store, or None."""
    parents = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`altlearn.kind` = 'sweep' and tags.`altlearn.sweep_name` = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return parents[0] if parents else None


def db_path(store: str | Path) -> Path:
    """A path, or a sqlite:/// tracking URI as altlearn and MLflow take it."""
    text = str(store)
    return Path(text[len("sqlite:///") :]) if text.startswith("sqlite:///") else Path(text)


def sweep_names(db: Path) -> set[str]:
    """The names of the sweeps whose parent runs the store holds."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT value FROM tags WHERE key = 'altlearn.sweep_name'").fetchall()
    return {value for (value,) in rows}


def snapshot(name: str, live: str | Path, folder: Path) -> Path:
    """Keep a consistent copy of the live store that holds sweep ``name`` as folder/<name>.db."""
    source_path = db_path(live)
    if not source_path.is_file():
        raise StoreError(f"there is no SQLite store at {source_path}")
    names = sweep_names(source_path)
    if name not in names:
        held = ", ".join(sorted(names)) or "no sweep"
        raise StoreError(f"{source_path} holds {held}, not sweep {name!r}")
    target = folder / f"{name}.db"
    _backup(source_path, target)
    with sqlite3.connect(target) as copy:
        copy.execute("VACUUM")  # no free pages in a file kept in git
    return target


def restore(kept: Path, folder: Path) -> Path:
    """Copy a kept store to folder/mlflow.db, its artifacts to go to folder/mlartifacts (the
    experiments and runs named the folder the store first ran in), to continue its sweep there."""
    target = folder / "mlflow.db"
    if target.exists():
        raise StoreError(f"{target} exists: restore into an empty folder (a live store is never overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    _backup(kept, target)
    artifacts = (folder.resolve() / ARTIFACTS).as_uri()
    with sqlite3.connect(target) as connection:
        experiments = connection.execute(
            "SELECT experiment_id, artifact_location FROM experiments"
        ).fetchall()
        for experiment_id, location in experiments:
            if not location.startswith("file:") or location == artifacts:
                continue  # another artifact store (a server's), or already here
            connection.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                (artifacts, len(location) + 1, experiment_id, len(location) + 1, location + "/"),
            )
            connection.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (artifacts, experiment_id),
            )
    return target


def _backup(source_path: Path, target: Path) -> None:
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
    finally:
        source.close()
        copy.close()
