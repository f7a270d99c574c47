"""Many processes writing one SQLite tracking store: wait for the lock instead of failing.

SQLite lets one writer in at a time; Python's sqlite3 gives up after 5 s ("database is locked"),
which trials logging side by side on a busy machine do exceed, and MLflow then fails the trial's
run. Every SQLite connection a sweep process opens waits up to BUSY_TIMEOUT_MS instead. (A cluster
cannot share a SQLite file at all: it needs a tracking server, see docs/sweeps.md.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

BUSY_TIMEOUT_MS = 120_000
LOCKED_RETRY_SECONDS = 120  # the sweep's own writes retry this long after an immediate SQLITE_BUSY
_installed = False
T = TypeVar("T")


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


def retry_while_locked(write: Callable[[], T], seconds: float = LOCKED_RETRY_SECONDS) -> T:
    """``write()``, tried again while SQLite answers "database is locked".

    The busy timeout above does not cover every case: a connection that read first and then wants
    to write is refused at once while another process writes (waiting could deadlock both), which
    happens when trials end their runs at the moment the sweep logs its summary. Such a refusal is
    momentary, so the sweep's own bookkeeping (its summary, its parent's end) waits and tries
    again rather than ending in a traceback with the parent left RUNNING.
    """
    deadline = time.monotonic() + seconds
    pause = 0.5
    while True:
        try:
            return write()
        except Exception as exc:  # noqa: BLE001 - MLflow wraps the sqlite3 error in its own
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 8.0)
