"""The local engine: a pool of spawned worker processes on this machine, one trial at a time each.

Spawned, not forked: a fork would copy the sweep's MLflow connections, threads and torch state
into every worker. Workers live for the whole sweep (python, torch and MLflow are imported once
per worker, not once per trial), each in its own process group, so the terminal's Ctrl-C reaches
only the sweep, which then stops every running trial with exactly one signal. A worker that dies
(a segfault, the OOM killer) costs only its own trial: it is reported as lost and replaced.

Each worker has its own duplex pipe: jobs go out on it and the trial's events come back on it.
One queue shared by all workers would be simpler, but a worker killed while writing to it can
leave the queue's lock held, and then every other worker's events (their "done" too) wait forever:
with a pipe each, a dying worker can only break its own channel.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from altlearn.errors import ExitCode, WorkersCannotStart
from altlearn.sweep.adapter import RunOutcome
from altlearn.sweep.jobs import Event, Job, JobQueue
from altlearn.tracking.signals import Terminated, ignore_signals, raise_signals, signals_blocked

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnContext
    from multiprocessing.process import BaseProcess

POLL_SECONDS = 0.2
STOP_SECONDS = 120  # a stopped trial ends its run (and may finish a checkpoint) within this
EXIT_SECONDS = 2
MAX_START_FAILURES = 3  # workers dying before their first trial: a broken environment, not bad luck


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection  # the sweep's end of the worker's pipe: jobs out, events in
    env: dict[str, str]
    job: Job | None = None
    ran_a_trial: bool = False
    channel_open: bool = True  # until the worker's end closes (it exited or died)


class LocalEngine:
    def __init__(self, slots: list[dict[str, str]]) -> None:
        self.slots = slots  # one environment per worker
        self.workers: list[_Worker] = []
        self.context: SpawnContext | None = None
        self.start_failures = 0

    @property
    def description(self) -> str:
        return f"local, {len(self.slots)} worker process{'es' if len(self.slots) != 1 else ''}"

    def start(self, n_jobs: int) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        # Started now, so their imports overlap with the sweep opening its MLflow run.
        for env in self.slots[: max(1, min(len(self.slots), n_jobs))]:
            self.workers.append(self._spawn(env))

    def _spawn(self, env: dict[str, str]) -> _Worker:
        context = self.context
        assert context is not None  # made by start()
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker_main, args=(env, theirs), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours, env)

    def run(self, queue: JobQueue, on_event) -> None:
        try:
            while not queue.exhausted() or self._busy():
                if self._dispatch(queue) and not self._busy():
                    # Nothing runs and nothing is ready: no trial's end can make a job ready.
                    raise RuntimeError("the sweep's queue holds jobs, but none can start")
                self._pump(on_event, POLL_SECONDS)
        except KeyboardInterrupt as exc:
            queue.clear()  # pending trials are not started
            self._stop(on_event, signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            raise

    def _busy(self) -> list[_Worker]:
        return [w for w in self.workers if w.job is not None]

    def _dispatch(self, queue: JobQueue) -> bool:
        """Hand a job to each idle worker while the queue has one ready. True when an idle worker
        found no job ready although the queue is not exhausted (it waits for a trial's end)."""
        for worker in self.workers:
            if worker.job is not None or not worker.process.is_alive():
                continue
            job = queue.take()
            if job is None:
                return not queue.exhausted()
            try:
                worker.conn.send(job)
                worker.job = job
            except OSError:  # it died just now: the job waits for the replacement
                queue.put_back(job)
        return False

    def _pump(self, on_event, timeout: float) -> None:
        """Pass on the workers' events; report the trial of a worker that died, and replace it."""
        self._drain(on_event, timeout)
        for worker in list(self.workers):
            if worker.process.is_alive():
                continue
            self._drain(on_event, 0)  # its last events may still be in its pipe
            self.workers.remove(worker)
            how = _exit_description(worker.process.exitcode)
            if worker.job is not None:
                outcome = RunOutcome(None, "FAILED", f"its worker process died ({how})", ExitCode.FAILED)
                on_event(Event(worker.job.index, "lost", outcome=outcome))
            elif not worker.ran_a_trial:
                self.start_failures += 1
                if self.start_failures >= MAX_START_FAILURES:
                    raise WorkersCannotStart(
                        f"the sweep's worker processes die as they start ({how}); "
                        "run one trial with `altlearn run` to see why"
                    )
            self.workers.append(self._spawn(worker.env))

    def _drain(self, on_event, timeout: float) -> None:
        from multiprocessing.connection import wait

        wait_for = timeout  # for the first event; then only what is already there
        while True:
            channels = {w.conn: w for w in self.workers if w.channel_open}
            # wait() returns some of the objects it is given: here, connections
            ready = cast("list[Connection]", wait(list(channels), wait_for)) if channels else []
            if not ready:
                return
            wait_for = 0.0
            for conn in ready:
                self._receive(channels[conn], on_event)

    def _receive(self, worker: _Worker, on_event) -> None:
        try:
            event = worker.conn.recv()
        except (EOFError, OSError):  # the worker is gone (perhaps mid-message); _pump reports it
            worker.channel_open = False
            return
        if event.kind == "done" and worker.job is not None and worker.job.index == event.index:
            worker.job, worker.ran_a_trial = None, True
        on_event(event)

    def _stop(self, on_event, signum: int) -> None:
        """One signal to each running trial, then wait for their runs to end KILLED; a second
        Ctrl-C (or STOP_SECONDS) kills the workers, and the sweep marks their runs KILLED."""
        for worker in self._busy():
            _signal(worker.process, signum)
        deadline = time.monotonic() + STOP_SECONDS
        try:
            while self._busy() and time.monotonic() < deadline:
                self._pump(on_event, POLL_SECONDS)
        except KeyboardInterrupt:
            pass
        for worker in self._busy():
            assert worker.job is not None  # busy: it has a job
            worker.process.kill()
            worker.process.join(5)
            outcome = RunOutcome(None, "KILLED", "interrupted (its worker process was killed)", 130)
            on_event(Event(worker.job.index, "lost", outcome=outcome))
            worker.job = None

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)  # "no more jobs": the worker exits
            except OSError:
                pass
        for worker in self.workers:
            # Every trial has reported its end (its run is closed): what is left of a worker is
            # interpreter teardown, which takes seconds with torch loaded; it need not be waited for.
            worker.process.join(EXIT_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
        self.workers.clear()


def _signal(process, signum: int) -> None:
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (the out-of-memory killer?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


# ------------------------------------------------------------------------ in the worker process


def _worker_main(env: dict[str, str], conn) -> None:
    os.setpgrp()  # the terminal's Ctrl-C goes to the sweep alone; it forwards one signal
    os.environ.update(env)  # before torch is imported: CUDA_VISIBLE_DEVICES
    # Between trials there is nothing to stop: a late signal must not kill the worker while it
    # reports a trial's outcome.
    ignore_signals()
    from altlearn.sweep.worker import prepare, run_job

    prepare()  # while the sweep opens its MLflow run, not on the first trial's clock

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the sweep is gone
        if job is None:
            return
        raise_signals()  # a trial stops on Ctrl-C or SIGTERM like `altlearn run`
        try:
            outcome = run_job(job, lambda event: _send(conn, event))
        except KeyboardInterrupt:  # arrived after the trial's run had ended
            outcome = RunOutcome(None, "KILLED", "interrupted", ExitCode.INTERRUPTED)
        finally:
            ignore_signals()
        try:
            _send(conn, Event(job.index, "done", outcome=outcome))
        except OSError:
            return  # the sweep is gone


def _send(conn, event: Event) -> None:
    """Send one event whole: Ctrl-C or SIGTERM arriving mid-write would leave half a message in
    the pipe and the sweep could not read this worker's next one, so the two wait until it is out
    (a blocked signal stays pending and is handled right after)."""
    with signals_blocked():
        conn.send(event)
