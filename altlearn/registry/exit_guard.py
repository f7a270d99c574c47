"""Keep plugin code from ending altlearn through ``os._exit``.

``sys.exit`` raises SystemExit, which the plugin loader catches like any error; ``os._exit`` ends
the process at once, with no exception to catch, so a plugin calling it on import would end
``altlearn plugins`` or a run with no word of why. While plugin code is imported or registers,
:func:`guard_process_exit` makes ``os._exit`` raise :class:`ProcessExitCalled` in that thread
instead, and the plugin is reported as broken. Other threads and forked children are untouched:
the guard is keyed by (process id, thread), so a child forked meanwhile still exits for real.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

_real_exit = os._exit
_lock = threading.Lock()
_guarded: dict[tuple[int, int], int] = {}  # (pid, thread id) -> nesting depth


class ProcessExitCalled(BaseException):
    """Raised in place of os._exit while plugin code runs (a BaseException, like SystemExit, so
    that a plugin's own ``except Exception`` does not swallow it)."""


def _guarded_exit(status: int) -> NoReturn:  # os._exit's signature: a caller may pass status=
    if (os.getpid(), threading.get_ident()) in _guarded:
        raise ProcessExitCalled(f"the plugin called os._exit({status}), which would have ended altlearn")
    _real_exit(status)


@contextmanager
def guard_process_exit() -> Iterator[None]:
    me = (os.getpid(), threading.get_ident())
    with _lock:
        if not _guarded:
            os._exit = _guarded_exit
        _guarded[me] = _guarded.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _guarded[me] -= 1
            if not _guarded[me]:
                del _guarded[me]
            if not _guarded:
                os._exit = _real_exit
