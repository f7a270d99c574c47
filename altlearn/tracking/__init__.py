"""MLflow tracking, one module per responsibility:

- ``store``: which store, is it usable, a client; failures during a run as ``TrackingFault``
- ``sqlite_store``: a SQLite store created or repaired by one process at a time
- ``run``: ``RunRecorder``, which opens a run and is the one place that ends it
- ``tags``: the run's tags and params, and which process trains it
- ``metrics``: per-epoch metrics and alignment measurements
- ``checkpoints``: checkpoints that are never seen half-written, the final weights and model
- ``resume``: what `altlearn resume` continues from, or why it cannot
- ``signals``: Ctrl-C and SIGTERM, and where they must wait

Nothing here is imported until used (``altlearn plugins`` must not load MLflow); the names below
are re-exported lazily for callers that import them from ``altlearn.tracking``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DEFAULT_TRACKING_URI": "store",
    "TrackingUnavailable": "store",
    "TrackingFault": "store",
    "connect": "store",
    "tracking_uri": "store",
    "ResumeError": "resume",
    "Terminated": "signals",
    "signals_deferred": "signals",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"altlearn.tracking.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'altlearn.tracking' has no attribute {name!r}")
