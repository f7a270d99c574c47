"""Creating, migrating and repairing a SQLite tracking store, one process at a time.

MLflow creates a new store's schema in the first process that opens it, with migrations that are
not transactional on SQLite. Ten runs starting together on a new store raced on it and left it
half-migrated (``_alembic_tmp_*`` tables), so that every later run failed until the file was
deleted. Here a file lock beside the database makes one process create or migrate it while the
others wait, and a store left half-created by a crash is detected and completed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from altlearn.errors import StoreRepairFailed
from altlearn.text import printable

LOCK_SUFFIX = ".lock"
LOCK_WAIT_SECONDS = 180  # creating a store takes seconds; ten waiting processes, a minute at most
LEFTOVER_PREFIX = "_alembic_tmp_"  # alembic's copy of a table during a SQLite "batch" migration


@contextmanager
def prepared_store(db_path: Path | None) -> Iterator[None]:
    """Hold the store's creation lock while the block opens it, after repairing a half-created
    store. Nothing for a non-SQLite store, or where the folder cannot take the lock file (a
    read-only folder cannot hold a new store either, and reading needs no lock)."""
    if db_path is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(db_path) + LOCK_SUFFIX, timeout=LOCK_WAIT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        raise StoreRepairFailed(
            f"another process has held {printable(lock.lock_file)} for {LOCK_WAIT_SECONDS} s while "
            "creating the store; if no altlearn or mlflow process is running, delete that file"
        ) from None
    except OSError:
        yield
        return
    try:
        repair_half_created(db_path)
        yield
    finally:
        lock.release()


def leftover_tables(db_path: Path) -> list[str]:
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return []
    with _connection(db_path) as con:
        names = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return sorted(name for name in names if name.startswith(LEFTOVER_PREFIX))


def repair_half_created(db_path: Path) -> bool:
    """Complete a store whose creation or migration stopped half-way; True if it needed it.

    A leftover ``_alembic_tmp_X`` is dropped when ``X`` still exists (the migration's transaction
    did not get as far as replacing it) and renamed to ``X`` when it does not (the copy was
    complete); then the remaining migrations run, as ``mlflow db upgrade`` would."""
    leftovers = leftover_tables(db_path)
    if not leftovers:
        return False
    with _connection(db_path) as con:
        names = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in leftovers:
            original = table[len(LEFTOVER_PREFIX) :]
            if original in names:
                con.execute(f'DROP TABLE "{table}"')
            else:
                con.execute(f'ALTER TABLE "{table}" RENAME TO "{original}"')
    try:
        _upgrade(db_path)
    except Exception as exc:  # noqa: BLE001 - the user needs the way out, whatever failed
        raise StoreRepairFailed(
            f"the store {printable(db_path)} was left half-created (tables {', '.join(leftovers)}) and "
            f"completing it failed ({type(exc).__name__}: {exc}); move the file aside and run again"
        ) from None
    return True


@contextmanager
def _connection(db_path: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(db_path, timeout=30)
    try:
        with con:  # commits on success
            yield con
    finally:
        con.close()


def _upgrade(db_path: Path) -> None:
    import sqlalchemy
    from mlflow.store.db.utils import _upgrade_db

    engine = sqlalchemy.create_engine(f"sqlite:///{db_path.resolve()}")
    try:
        _upgrade_db(engine)
    finally:
        engine.dispose()
