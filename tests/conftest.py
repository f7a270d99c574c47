"""Fixtures shared by altlearn's tests."""

import os

# Set before anything imports mlflow: tests must never phone home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pytest  # noqa: E402

from altlearn import plugins  # noqa: E402


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
