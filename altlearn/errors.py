"""Every error a user can cause or meet, with the exit code and the report the CLI gives it.

One base class, :class:`AltlearnError`: ``exit_code`` says how a command ends on it and
``report()`` is the text it prints (never a traceback: these are mistakes or faults a person can
act on). The CLI, a run and a sweep all end on these codes, defined once in :class:`ExitCode`.

A few exceptions stay beside the code that raises and catches them, because they are signals
inside one mechanism rather than errors a user meets: ``Terminated`` (SIGTERM as a
KeyboardInterrupt, tracking/signals.py), ``ProcessExitCalled`` (a plugin calling ``sys.exit`` at
import, registry/exit_guard.py), ``RefusedPickle`` (data/safe_pickle.py), ``YamlTooLarge``
(spec/files.py), ``NetworkError`` and ``NestedLayerError`` (nn/network.py; each becomes a spec
problem at its YAML path).

Nothing here imports anything of altlearn's: every room may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """How an altlearn command ends: the one statement of its exit codes (the CLI, a run's
    ``RunOutcome`` and a sweep all use these; the other modules refer here).

    - 0 ``OK``: success (a sweep: every selected trial finished).
    - 1 ``FAILED``: training failed: it diverged, broke the rule contract, or met a fault (the
      store, workers that cannot start); a message only. A bug (in altlearn or a plugin) also
      ends here, and then its traceback is shown. A sweep: some trial failed.
    - 2 ``USAGE``: a user mistake (spec, sweep file, missing data, unknown device, a run that
      cannot be resumed): a message, never a traceback. Normally found before training starts,
      so no MLflow run is opened for it (a sweep: nothing ran).
    - 130 ``INTERRUPTED``: Ctrl-C or SIGTERM; a run that had started ends KILLED with its
      metrics kept (a sweep's running trials likewise, the rest not started).

    An :class:`AltlearnError` carries the code it ends a command with (``exit_code``).
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130


class AltlearnError(Exception):
    """Base of every error a user can cause or meet; the message says what to do."""

    exit_code: ExitCode = ExitCode.USAGE

    def report(self) -> str:
        """The text the CLI prints for this error (after ``error: ``)."""
        return str(self)


@dataclass
class Problem:
    """One mistake in a file: its YAML path (empty for the file itself) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProblemsError(AltlearnError):
    """One or more mistakes in a file, each with its YAML path, reported all at once."""

    #: how the file is named in the report's head line ("in the spec", "in the sweep")
    kind = "file"
    #: whether each problem line repeats the file's name (a sweep's problems may come from its
    #: base spec, so each says which file it is in)
    name_each = False
    #: what was not checked because of these problems, said after them
    note = ""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1 and not self.problems[0].path:  # the file itself: unread, not YAML
            message = self.problems[0].message
            return message if self.source and self.source in message else f"{where}{message}"
        count = len(self.problems)
        head = f"{where}{count} problem{'s' if count != 1 else ''} {self._in_what()}"
        each = where if self.name_each else ""
        return "\n".join(
            [head] + [f"  - {each}{p}" for p in self.problems] + ([f"  ({self.note})"] if self.note else [])
        )

    def _in_what(self) -> str:
        return f"in the {self.kind}"


class SpecError(ProblemsError):
    """One or more user mistakes in a spec; ``problems`` lists each with its YAML path."""

    kind = "spec"

    def _in_what(self) -> str:
        in_spec = any(not p.path.startswith("--set ") for p in self.problems)
        return "in the spec" if in_spec else "in --set"


class SweepError(ProblemsError):
    """One or more user mistakes in a sweep file or in the trials it makes; each names the file."""

    kind = "sweep"
    name_each = True


class PluginError(AltlearnError):
    """A component cannot be used because of its plugin (broken import, duplicate name...)."""


class DataUnavailable(AltlearnError):
    """The data set's files are not where the spec says; the message tells the user what to do."""


class DeviceUnavailable(AltlearnError):
    """The spec asks for a device this machine does not have."""


class TrackingUnavailable(AltlearnError):
    """The MLflow tracking store cannot be used; the message names the URI and the cause."""


class StoreRepairFailed(AltlearnError):
    """A half-created store could not be completed; the message says what to do."""


class TrackingFault(AltlearnError):
    """Writing to the store failed during a run (locked, read-only, full, server gone).

    The one place store and file-system failures become an outcome: training stops, the run's
    end is recorded if the store takes it, and the message says what was and was not kept."""

    exit_code = ExitCode.FAILED

    def __init__(self, what: str, cause: BaseException, described: str) -> None:
        self.what = what
        self.cause = cause
        super().__init__(f"{what} failed: {described}")


class ResumeError(AltlearnError):
    """The run cannot be resumed; the message says why and what to do."""


class TrainingDiverged(AltlearnError):
    """Training produced a non-finite loss or the rule reported divergence; the message says why."""

    exit_code = ExitCode.FAILED


class RuleContractError(AltlearnError):
    """The rule broke the contract in docs/plugin-hooks.md; the message says how."""

    exit_code = ExitCode.FAILED


class StopMetricMissing(AltlearnError):
    """train.stop_when names a metric the run does not log (known only once an epoch has run:
    a rule's own metrics are whatever its steps return)."""

    exit_code = ExitCode.FAILED


class SweepUsageError(AltlearnError):
    """The sweep cannot run as asked; the message says why and what to do."""


class WorkersCannotStart(AltlearnError):
    """Worker processes die as they start (a broken installation): a fault, not one trial's."""

    exit_code = ExitCode.FAILED


class CompareError(AltlearnError):
    """Nothing sensible can be compared; the message says why and what to do instead."""
