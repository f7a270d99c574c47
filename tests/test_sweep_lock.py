"""Two `altlearn sweep` commands of one sweep started at the same moment: the check "is it running
already?" and the start happen under one lock, so exactly one of them runs it."""

from __future__ import annotations

from sweep_helpers import DIGITS_BASE, start_sweep, store, sweep_runs, write_sweep


def test_two_commands_started_at_once_run_the_sweep_once(tmp_path):
    base = {**DIGITS_BASE, "train": {**DIGITS_BASE["train"], "epochs": 4}}
    path = write_sweep(tmp_path, {"name": "once", "cases": [{"label": "bp", "rule.type": "bp"}]}, base)
    args = [str(path), "--tracking-uri", store(tmp_path), "--workers", "1", "-q"]
    first, second = start_sweep(args, tmp_path), start_sweep(args, tmp_path)
    try:
        outputs = [first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]]
    finally:
        first.kill()
        second.kill()
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], outputs
    refused = outputs[[first.returncode, second.returncode].index(2)]
    assert "is running now" in refused and "Traceback" not in refused
    parent, children = sweep_runs(store(tmp_path))
    assert parent.info.status == "FINISHED" and len(children) == 1


def test_a_trial_whose_worker_died_before_opening_its_run_is_not_started(monkeypatch):
    """The engine reports the trial lost; the sweep finds no run of it to end: the summary says NOT
    STARTED (and the next run of the sweep starts it), not FAILED with no run behind it."""
    from altlearn.errors import ExitCode
    from altlearn.sweep import runner
    from altlearn.sweep.adapter import RunOutcome
    from altlearn.sweep.configurations import Configuration, Trial
    from altlearn.sweep.jobs import Event, JobQueue
    from altlearn.sweep.record import Plan
    from altlearn.sweep.summary import NOT_STARTED, _result

    monkeypatch.setattr(runner, "mark_lost", lambda *args: None)  # no run of it in the store
    trial = Trial(0, Configuration("cases[0]", "bp", None, ()), 0, None, "k", "g")
    plans = [Plan(trial, "start")]
    outcomes: dict = {}
    seen = []
    display = type("Display", (), {"update": lambda self, event: seen.append(event)})()
    on_event = runner._event_handler(None, plans, outcomes, JobQueue([]), display)
    lost = RunOutcome(None, "FAILED", "its worker process died (killed by SIGKILL)", ExitCode.FAILED)
    on_event(Event(0, "lost", outcome=lost))
    assert outcomes == {} and seen[0].kind == "done"
    assert _result(plans[0], outcomes.get(0), []).status == NOT_STARTED


def test_a_stopped_trial_the_sweep_did_not_reach_again_waits_rather_than_counting_as_stopped():
    """A trial stopped in an earlier sitting and queued to resume, but interrupted before a worker
    took it, keeps its old KILLED run: the summary counts it NOT STARTED (waiting), not among the
    trials this interruption stopped; once it ran, its own outcome decides."""
    from types import SimpleNamespace

    from altlearn.sweep.adapter import RunOutcome
    from altlearn.sweep.configurations import Configuration, Trial
    from altlearn.sweep.record import Plan
    from altlearn.sweep.summary import NOT_STARTED, _result

    trial = Trial(0, Configuration("cases[0]", "bp", None, ()), 0, None, "k", "g")
    old = SimpleNamespace(
        info=SimpleNamespace(status="KILLED", run_id="r1"),
        data=SimpleNamespace(tags={"altlearn.error": "interrupted (SIGTERM)"}, metrics={}),
    )
    waiting = _result(Plan(trial, "resume", "r1"), None, [old])
    assert (waiting.status, waiting.run_id, waiting.message) == (NOT_STARTED, "r1", None)
    stopped = _result(Plan(trial, "resume", "r1"), RunOutcome("r1", "KILLED", "interrupted", 130), [old])
    assert stopped.status == "KILLED"
    # interrupted while setting up, before its run (re)opened: it has not started either
    before = RunOutcome(None, "KILLED", "interrupted before training started", 130)
    assert _result(Plan(trial, "resume", "r1"), before, [old]).status == NOT_STARTED
    assert _result(Plan(trial, "start"), before, []).status == NOT_STARTED
    failed = RunOutcome(None, "FAILED", "the data set cannot be read", 1)  # a set-up failure stays one
    assert _result(Plan(trial, "start"), failed, []).status == "FAILED"
    # a signal that arrives after the trial's run finished: it finished
    done = SimpleNamespace(
        info=SimpleNamespace(status="FINISHED", run_id="r2"), data=SimpleNamespace(tags={}, metrics={})
    )
    late = RunOutcome(None, "KILLED", "interrupted", 130)
    assert _result(Plan(trial, "start"), late, [done]).status == "FINISHED"
