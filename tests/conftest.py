"""Fixtures shared by altlearn's tests."""

import os
import signal

# Set before anything imports mlflow: tests must never phone home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# A test run started in the background of a non-interactive shell (`./.ci/run &`) inherits Ctrl-C
# ignored, and every process it starts would ignore it too, so the tests of what Ctrl-C does
# would fail for a reason that is not altlearn's: give the test process a terminal's handling.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402

from altlearn.registry import registry as plugins  # noqa: E402


@pytest.fixture
def fresh_registry():
    """For tests that change which plugins are installed or selected: no cached registry leaks
    into the test, and none built from the test's plugins leaks out of it."""
    plugins.reset_registry()
    yield
    plugins.reset_registry()


@pytest.fixture
def one_thread():
    """Rule tests use tiny tensors: a second thread only adds contention on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
