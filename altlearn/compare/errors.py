"""The one exception a comparison raises for a user's mistake or an empty selection."""

from __future__ import annotations


class CompareError(Exception):
    """Nothing sensible can be compared; the message says why and what to do instead.

    ``altlearn compare`` prints it and exits 2; ``compare_sweep`` callers show it the same way."""
