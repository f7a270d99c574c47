"""What every altlearn command shares: exit codes, messages, the common options, spec loading.

Exit codes: 0 success; 1 training failed (diverged, or a bug: then a traceback); 2 a user mistake
(spec, missing data, unknown device): a message, never a traceback; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys

import click

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SET_HELP = (
    "override a spec value: path=value, YAML-typed (optimizer.lr=0.01, train.device=cpu, "
    "network.layers.1.out_features=400); repeatable"
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
    from altlearn.printable import printable_message

    # Messages quote spec values: escape control characters (ESC sequences) on the way out.
    click.echo(click.style("error: ", fg="red", bold=True) + printable_message(message), err=True)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    error(message)
    sys.exit(code)


def interruptible(command):
    """Ctrl-C or SIGTERM before training starts (imports, spec, data): exit 130 with a message,
    not click's 'Aborted!' (exit 1) or a silent kill. From then on train_spec handles them."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from altlearn.tracking.signals import install_sigterm

        # A scheduler's SIGTERM should end a run KILLED with its metrics, like Ctrl-C does.
        install_sigterm()
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted before training started", EXIT_INTERRUPTED)

    return wrapper


def exit_with(outcome) -> None:
    """Print a run's outcome and exit with its code; a bug's traceback is shown, not hidden."""
    if outcome.exit_code == 0:
        click.echo(outcome.message)
        return
    if outcome.error is not None:
        error(outcome.message)
        raise outcome.error
    fail(outcome.message, outcome.exit_code)


def load_spec_or_fail(spec_path: str, overrides: tuple[str, ...]):
    from altlearn.spec import SpecError, load_spec

    try:
        return load_spec(spec_path, list(overrides))
    except SpecError as exc:
        fail(exc.report())
