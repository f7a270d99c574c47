"""The Ray engine: each trial one Ray task with declared resources (num_cpus, num_gpus; a
fraction of a GPU lets several small trials share one), on a cluster given by ``--address``
(``auto``, ``ray://host:port``) or on a Ray instance this sweep starts and stops.

Ray must not retry a trial (``max_retries=0``): a retried task would open a second run of the
trial; a crashed trial is reported as lost instead, and running the sweep again resumes it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from altlearn.errors import ExitCode, SweepUsageError
from altlearn.sweep.adapter import RunOutcome
from altlearn.sweep.jobs import Event, Job, JobQueue

POLL_SECONDS = 0.2
STOP_SECONDS = 120
LOCAL_STORES = ("sqlite:", "file:")


def _trial_task(job: Job, events) -> RunOutcome:
    """Runs on a Ray worker."""
    from altlearn.sweep.worker import run_job

    return run_job(job, events.put)


class RayEngine:
    def __init__(self, resources, address: str | None, uri: str) -> None:
        self.resources = resources
        self.address = address
        self.uri = uri
        self.ray: Any = None  # the ray module once started (Ray is an optional dependency)
        self.connected_here = False
        self.events: Any = None  # a ray.util.queue.Queue while the trials run

    @property
    def description(self) -> str:
        where = f"cluster {self.address}" if self.address else "a Ray instance on this machine"
        return f"ray, {where}, {self.resources.cpus:g} CPU and {self.resources.gpus:g} GPU per trial"

    def start(self, n_jobs: int) -> None:
        try:
            import ray
        except ImportError:
            raise SweepUsageError(
                "--engine ray needs Ray: pip install 'altlearn[ray]' (on every node of the cluster)"
            ) from None
        if (self.address or "").startswith("ray://"):
            self._check_store(nodes=None)  # before connecting: a wrong store costs no cluster time
        self.ray = ray
        self.connected_here = not ray.is_initialized()  # else the caller's Ray session is used
        try:
            if self.connected_here:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,  # trials report through events; their output would garble the table
                    logging_level=logging.WARNING,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepUsageError(
                f"cannot connect to Ray at {self.address or 'a new local instance'}: {exc}"
            ) from None
        self._check_store(nodes=len([n for n in ray.nodes() if n.get("Alive")]))

    def _check_store(self, nodes: int | None) -> None:
        """A SQLite file lives on one machine: trials on other nodes would each write their own."""
        if not self.uri.startswith(LOCAL_STORES) or nodes == 1:
            return
        self.close()
        where = f"{nodes} nodes" if nodes else f"reached over {self.address}"
        raise SweepUsageError(
            f"the tracking store {self.uri} is a file on this machine, but the Ray cluster ({where}) "
            "runs trials on other machines: start an MLflow tracking server that every node can "
            "reach (mlflow server --host 0.0.0.0 --port 5000) and pass --tracking-uri "
            "http://HOST:5000 (see docs/sweeps.md)"
        )

    def run(self, queue: JobQueue, on_event) -> None:
        from ray.util.queue import Queue

        self.events = Queue()
        task = self.ray.remote(_trial_task).options(
            num_cpus=self.resources.cpus, num_gpus=self.resources.gpus, max_retries=0
        )
        # As many tasks in flight as the cluster can run at once: a search's queue builds each job
        # when it is taken, from the trials finished by then.
        room = self._room()
        running: dict = {}
        started: set[int] = set()
        try:
            while not queue.exhausted() or running:
                while len(running) < room and (job := queue.take()) is not None:
                    running[task.remote(job, self.events)] = job
                if not running and not queue.exhausted():
                    raise RuntimeError("the sweep's queue holds jobs, but none can start")
                self._step(running, started, on_event, POLL_SECONDS)
        except KeyboardInterrupt:
            queue.clear()
            self._stop(running, started, on_event)
            raise

    def _room(self) -> int:
        """Trials the cluster can run side by side (at least one)."""
        total = self.ray.cluster_resources()
        room = int(total.get("CPU", 1) // max(self.resources.cpus, 1e-9)) if self.resources.cpus else 1
        if self.resources.gpus:
            room = min(room, int(total.get("GPU", 0) // self.resources.gpus))
        return max(1, room)

    def _step(self, running: dict, started: set[int], on_event, timeout: float) -> None:
        done, _ = self.ray.wait(list(running), num_returns=1, timeout=timeout)
        self._drain(started, on_event)
        for ref in done:
            job = running.pop(ref)
            event = self._ending(ref, job, job.index in started)
            if event is not None:
                on_event(event)

    def _drain(self, started: set[int], on_event) -> None:
        while not self.events.empty():
            event = self.events.get_nowait()
            if event.kind == "started":
                started.add(event.index)
            on_event(event)

    def _ending(self, ref, job: Job, started: bool) -> Event | None:
        from ray import exceptions

        try:
            return Event(job.index, "done", outcome=self.ray.get(ref))
        except exceptions.TaskCancelledError:
            if not started:
                return None  # cancelled before it began: not started
            outcome = RunOutcome(None, "KILLED", "interrupted (the Ray task was cancelled)", 130)
        except exceptions.RayError as exc:  # the worker or its node died
            outcome = RunOutcome(
                None, "FAILED", f"its Ray task died ({type(exc).__name__}: {exc})"[:2000], ExitCode.FAILED
            )
        return Event(job.index, "lost", outcome=outcome)

    def _stop(self, running: dict, started: set[int], on_event) -> None:
        """Cancel every task: waiting ones never start, running ones get a KeyboardInterrupt and
        end their runs KILLED; a second Ctrl-C or STOP_SECONDS force-kills them."""
        for ref in running:
            self.ray.cancel(ref, force=False)
        deadline = time.monotonic() + STOP_SECONDS
        try:
            while running and time.monotonic() < deadline:
                self._step(running, started, on_event, POLL_SECONDS)
        except KeyboardInterrupt:
            pass
        for ref, job in list(running.items()):
            self.ray.cancel(ref, force=True)
            if job.index in started:
                outcome = RunOutcome(None, "KILLED", "interrupted (its Ray task was force-cancelled)", 130)
                on_event(Event(job.index, "lost", outcome=outcome))
        running.clear()

    def close(self) -> None:
        if self.ray is not None and self.connected_here and self.ray.is_initialized():
            self.ray.shutdown()  # a Ray instance started here stops; a cluster only loses this driver
