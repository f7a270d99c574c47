"""The ``altlearn`` command line: click commands, wiring and exit codes only.

- ``commands``: the command group and the single-run commands (run, resume, validate, render,
  options, plugins);
- ``many_runs``: sweep and compare;
- ``support``: what they share (messages, common options, spec loading, interrupts).

Importing this package imports neither torch nor mlflow: each command imports what it needs.
"""

from altlearn.cli.commands import main

__all__ = ["main"]
