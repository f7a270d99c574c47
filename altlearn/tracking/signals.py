"""Ctrl-C and SIGTERM, in one place: how they reach a run, and where they must wait.

From ``install_sigterm()`` on, SIGTERM (a job scheduler's stop) raises ``Terminated``, a
``KeyboardInterrupt``, so both end a run KILLED with its metrics. ``signals_deferred()`` holds them
while something must not be cut short (a checkpoint being written and recorded, a run being opened
or ended), then raises them; with ``drop=True`` a signal that arrives while the run is already
ending is absorbed, as the ending it asked for is under way.

Imports nothing heavy: the CLI installs the handler before torch or MLflow load.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop): handled like Ctrl-C, recorded as what it was."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def install_sigterm() -> None:
    """SIGTERM raises Terminated in the main thread from now on."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def interruption(error: BaseException) -> str:
    """How a KeyboardInterrupt came: 'SIGTERM' or 'Ctrl-C'."""
    return "SIGTERM" if isinstance(error, Terminated) else "Ctrl-C"


@contextmanager
def signals_deferred(drop: bool = False) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise them (SIGTERM as Terminated),
    unless ``drop``."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received and not drop:
            raise Terminated if signal.SIGTERM in received else KeyboardInterrupt
