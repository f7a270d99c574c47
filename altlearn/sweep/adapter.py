"""The one place a sweep trains a run: ``train_trial``.

A trial is an ordinary altlearn run: ``altlearn.runs.train_spec``, the same entry point as
``altlearn run`` and ``altlearn resume`` (trainer, MLflow logging, checkpoints, resume), with the
sweep's tags set as the run opens and the sweep's observer in place of the progress bar.
"""

from __future__ import annotations

import dataclasses

from altlearn.runs import RunOutcome

__all__ = ["RunOutcome", "train_trial"]


def train_trial(spec, **options) -> RunOutcome:
    """Train ``spec`` (or continue ``resume_run_id``) as a child run of ``parent_run_id``.

    ``options`` are :func:`altlearn.runs.train_spec`'s: ``uri``, ``resume_run_id``, ``extra_tags``,
    ``parent_run_id`` and ``progress``; a trial never draws its own progress bar.
    """
    from altlearn.runs import train_spec

    outcome = train_spec(spec, quiet=True, **options)
    if outcome.error is not None:  # a bug: its traceback goes to the worker's stderr, not back
        import traceback

        traceback.print_exception(outcome.error)
        outcome = dataclasses.replace(outcome, error=None)  # exceptions may not pickle
    return outcome
