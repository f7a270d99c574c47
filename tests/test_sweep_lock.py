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
