"""Ctrl-C and SIGTERM, in one place: how they reach a run, and where they must wait.

From ``install_sigterm()`` on, SIGTERM (a job scheduler's stop) raises ``Terminated``, a
``KeyboardInterrupt``, so both end a run KILLED with its metrics. ``signals_deferred()`` holds them
while something must not be cut short (a checkpoint being written and recorded, a run being opened
or ended, a sweep's parent run being ended), then raises them; with ``drop=True`` a signal that
arrives while the run is already ending is absorbed, as the ending it asked for is under way.

A sweep's worker process switches between two states: ``raise_signals()`` while it trains a trial
(both signals stop it, as in `altlearn run`) and ``ignore_signals()`` between trials (a late signal
must not kill it while it reports an outcome); ``signals_blocked()`` keeps them pending while it
writes a message that must go out whole.

Imports nothing heavy: the CLI installs the handler before torch or MLflow load.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: the signals that stop altlearn: Ctrl-C and a job scheduler's stop
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop): handled like Ctrl-C, recorded as what it was."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def install_sigterm() -> None:
    """SIGTERM raises Terminated in the main thread from now on."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def raise_signals() -> None:
    """From now on Ctrl-C raises KeyboardInterrupt and SIGTERM Terminated (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        install_sigterm()


def ignore_signals() -> None:
    """From now on Ctrl-C and SIGTERM do nothing (main thread only), until ``raise_signals()``."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


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
        sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received and not drop:
            raise Terminated if signal.SIGTERM in received else KeyboardInterrupt


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Keep Ctrl-C and SIGTERM pending (blocked by the OS) until the block ends; then they are
    handled by whatever handler is in place. Leaves the handlers alone (unlike
    ``signals_deferred``), so it also works where they are being switched, as in a sweep's worker."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
