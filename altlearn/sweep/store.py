"""Many processes writing one SQLite tracking store: wait for the lock instead of failing.

SQLite lets one writer in at a time; Python's sqlite3 gives up after 5 s ("database is locked"),
which trials logging side by side on a busy machine do exceed, and MLflow then fails the trial's
run. Every SQLite connection a sweep process opens waits up to BUSY_TIMEOUT_MS instead. (A cluster
cannot share a SQLite file at all: it needs a tracking server, see docs/sweeps.md.)
"""

from __future__ import annotations

BUSY_TIMEOUT_MS = 120_000
_installed = False


def wait_for_sqlite_locks() -> None:
    """Install once per process, before MLflow opens its first connection."""
    global _installed
    if _installed:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _busy_timeout(connection, record) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    _installed = True
