"""MLflow tracking, one module per responsibility:

- ``store``: which store, is it usable, a client; failures during a run as ``TrackingFault``
- ``sqlite_store``: a SQLite store created or repaired by one process at a time
- ``recorder``: ``RunRecorder``, which opens a run and is the one place that ends it
- ``tags``: the run's tags and params, and which process trains it
- ``metrics``: per-epoch metrics and alignment measurements
- ``checkpoints``: checkpoints that are never seen half-written, the final weights and model
- ``resume``: what `altlearn resume` continues from, or why it cannot
- ``signals``: Ctrl-C and SIGTERM, and where they must wait

The errors of tracking (``TrackingUnavailable``, ``TrackingFault``, ``ResumeError``) are defined
in :mod:`altlearn.errors` with every other error.

Nothing here is imported until used (``altlearn plugins`` must not load MLflow). altlearn's own
modules import from the defining module; the names below are re-exported lazily, for callers
outside the package (plugins, scripts) that import them from ``altlearn.tracking``.
"""

from __future__ import annotations

import importlib

#: name -> the module that defines it
_EXPORTS = {
    "DEFAULT_TRACKING_URI": "altlearn.tracking.store",
    "connect": "altlearn.tracking.store",
    "tracking_uri": "altlearn.tracking.store",
    "TrackingUnavailable": "altlearn.errors",
    "TrackingFault": "altlearn.errors",
    "ResumeError": "altlearn.errors",
    "Terminated": "altlearn.tracking.signals",
    "signals_deferred": "altlearn.tracking.signals",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'altlearn.tracking' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
