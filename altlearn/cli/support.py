"""What every altlearn command shares: messages, exits, the common options, interrupts.

The exit codes are stated once, in :class:`altlearn.errors.ExitCode`.
"""

from __future__ import annotations

import functools
import sys
from typing import NoReturn

import click

from altlearn.errors import AltlearnError, ExitCode

SET_HELP = (
    "override a spec value: path=value, YAML-typed (optimizer.lr=0.01, train.device=cpu, "
    "network.layers.1.out_features=400, or network.layers[1].out_features=400); repeatable"
)


def tracking_uri_option(of_what: str = ""):
    """The --tracking-uri option every command that reads or writes runs shares."""
    what = f" {of_what}" if of_what else ""
    return click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        default=None,
        help=f"MLflow tracking URI{what} [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]",
    )


def error(message: str) -> None:
    from altlearn.text import printable_message

    # Messages quote spec values: escape control characters (ESC sequences) on the way out.
    click.echo(click.style("error: ", fg="red", bold=True) + printable_message(message), err=True)


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    error(message)
    sys.exit(code)


def reports_errors(command):
    """Every AltlearnError that reaches the command ends it the same way: its ``report()`` and
    its ``exit_code``, never a traceback. One clause for all of them, so that a new error class
    needs no new handling here."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AltlearnError as exc:
            fail(exc.report(), exc.exit_code)

    return wrapper


def interruptible(command):
    """Ctrl-C or SIGTERM before training starts (imports, spec, data): exit 130 with a message,
    not click's 'Aborted!' (exit 1) or a silent kill. From then on train_spec handles them."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from altlearn.tracking.signals import install_sigterm

        # A scheduler's SIGTERM should end a run KILLED with its metrics, like Ctrl-C does.
        install_sigterm()
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted before training started", ExitCode.INTERRUPTED)

    return wrapper


def exit_with(outcome) -> None:
    """Print a run's outcome and exit with its code; a bug's traceback is shown, not hidden."""
    if outcome.exit_code == ExitCode.OK:
        click.echo(outcome.message)
        return
    if outcome.error is not None:
        error(outcome.message)
        raise outcome.error
    fail(outcome.message, outcome.exit_code)
