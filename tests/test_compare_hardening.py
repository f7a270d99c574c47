"""`altlearn compare` and the sweep's display against a store someone else wrote: names full of
terminal control sequences, nan and inf metrics, an --out that cannot be written, and runs that
differ in settings no label shows. Each ends in escaped text, a note or an exit-2 message.

The runs are made with MLflow's client (no training): what another tool, or a hand-edited store,
leaves there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess

import pytest
from compare_runs import compare
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from altlearn.compare.comparison import build_report
from altlearn.compare.outputs import write_outputs
from altlearn.compare.selection import RunData, Selection
from altlearn.errors import CompareError

# OSC (retitle the terminal) ended by BEL, CSI 2J (clear the screen), the one-byte C1 CSI, NEL, NUL,
# DEL, CR and LF, and rich markup: each must reach the terminal as visible text, or not at all.
NASTY = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\x85\x00\x7f\r\n[red]x[/]"
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # a newline of altlearn's own is fine
FORMATS = ("rich", "md", "csv", "json")


def assert_printable(*texts: str) -> None:
    for text in texts:
        found = CONTROL.search(text)
        assert found is None, (
            f"raw {found.group()!r} in {text[max(0, found.start() - 60) : found.end() + 60]!r}"
        )


def log_run(client, experiment_id, name, params, curves, tags=None, status="FINISHED") -> str:
    """One run as a store holds it: ``curves`` maps a metric to its values at steps 1, 2, ..."""
    run_id = client.create_run(experiment_id, run_name=name, tags=tags or {}).info.run_id
    metrics = [Metric(k, v, 0, step) for k, values in curves.items() for step, v in enumerate(values, 1)]
    params = [Param(k, str(v)) for k, v in params.items()]
    client.log_batch(run_id, metrics=metrics, params=params, tags=[])
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def sweep_parent(client, experiment_id, name) -> str:
    tags = {"altlearn.kind": "sweep", "altlearn.sweep_name": name}
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def trial_tags(parent: str, label: str) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent,
        "altlearn.kind": "trial",
        "altlearn.sweep": parent,
        "altlearn.group": label,
        "altlearn.group_key": f"{parent[:6]}-{label}",
    }


def params(rule: str, seed: int, **more) -> dict:
    return {"seed": seed, "rule.type": rule, "data.type": "digits", "train.epochs": 2, **more}


def good(accuracy: float) -> dict[str, list[float]]:
    return {
        "test_accuracy": [accuracy - 0.1, accuracy],
        "val_accuracy": [accuracy - 0.1, accuracy],
        "epoch_seconds": [1.0, 1.2],
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    ids = {}
    hostile_sweep(client, ids)
    broken_metrics(client, ids)
    hidden_settings(client, ids)
    return {"uri": uri, "ids": ids, "folder": folder}


def hostile_sweep(client, ids) -> None:
    """A sweep whose name, labels, run names, params and error tag are all hostile."""
    experiment = client.create_experiment("hostile")
    parent = ids["hostile_sweep"] = sweep_parent(client, experiment, NASTY)
    for rule, base in (("bp", 0.9), ("dfa" + NASTY, 0.8)):
        for seed in (0, 1):
            tags = trial_tags(parent, f"{NASTY} {rule[:3]}")
            log_run(client, experiment, NASTY, params(rule, seed), good(base + seed / 100), tags)
    failed = log_run(client, experiment, NASTY, params("bp", 2), {"test_accuracy": [0.5]}, status="FAILED")
    for key, value in {**trial_tags(parent, f"{NASTY} bp"), "altlearn.error": NASTY}.items():
        client.set_tag(failed, key, value)


def broken_metrics(client, ids) -> None:
    """nan and inf where the numbers come from: a final nan, a final inf (which MLflow's SQL store
    keeps as the largest float), a nan mid-curve and epoch times that are all infinite."""
    experiment = client.create_experiment("broken")
    for seed in (0, 1):
        log_run(client, experiment, f"bp-{seed}", params("bp", seed), good(0.9 + seed / 100))
    for name, seed, final in (("nan", 0, float("nan")), ("inf", 1, float("inf"))):
        ids[name] = log_run(
            client, experiment, f"dfa-{name}", params("dfa", seed), {"test_accuracy": [0.5, final]}
        )
    for seed in (2, 3):
        curves = {
            "test_accuracy": [0.7, 0.8 + seed / 100],
            "val_accuracy": [float("nan"), 0.8],
            "epoch_seconds": [float("inf"), float("-inf")],
        }
        ids[f"dfa{seed}"] = log_run(client, experiment, f"dfa-{seed}", params("dfa", seed), curves)


def hidden_settings(client, ids) -> None:
    """Runs of 5 epochs on 25k images beside runs of 20 epochs on all 60k: in one experiment, and
    as two sweeps that each label their trials by rule alone."""
    short = {"train.epochs": 5, "data.train_subset": 25000}
    long = {"train.epochs": 20}
    experiment = client.create_experiment("settings")
    for seed in (0, 1):
        log_run(client, experiment, "bp-short", params("bp", seed, **short), good(0.9))
        log_run(client, experiment, "bp-long", params("bp", seed, **long), good(0.95))
        dfa = params("dfa", seed, **long, **{"rule.feedback_init": "kaiming"})
        log_run(client, experiment, "dfa-long", dfa, good(0.93))
    two = client.create_experiment("two-sweeps")
    quick, full = sweep_parent(client, two, "quick"), sweep_parent(client, two, "full")
    ids["quick"] = quick
    for seed in (0, 1):
        log_run(client, two, "q", params("dfa", seed, **short), good(0.9), trial_tags(quick, "dfa"))
        log_run(client, two, "q", params("fa", seed, **short), good(0.88), trial_tags(quick, "fa"))
        log_run(client, two, "f", params("bp", seed, **long), good(0.97), trial_tags(full, "bp"))


def user_error(result, *fragments: str) -> str:
    """Exit 2 with a message containing every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def strict_json(text: str):
    """json.loads as a strict parser (jq, JavaScript) reads it: a bare NaN or Infinity is no JSON."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------ control characters


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_names_reach_the_terminal_escaped_in_every_format(store, fmt):
    for args in (
        ["--sweep", store["ids"]["hostile_sweep"], "--no-log"],  # labels from the sweep's tags
        ["--experiment", "hostile", "--by", "rule.type"],  # labels from the params
    ):
        result = compare(store["uri"], *args, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert_printable(result.stdout, result.stderr)
        assert "\\x1b]0;pwned\\x07" in result.stdout + result.stderr  # shown, as text
        assert (
            "not counted: run " in result.stderr and "FAILED after 1 of 2 epochs (evil\\x1b" in result.stderr
        )
    if fmt == "rich":  # "[red]x[/]" in a label is the store's text, not markup
        assert "[red]x[/]" in result.stdout
    if fmt == "json":  # structured data keeps the exact strings: json escapes them itself
        document = strict_json(result.stdout)
        assert {group["group"] for group in document["groups"]} == {"rule.type=bp", f"rule.type=dfa{NASTY}"}
        assert document["not_counted"][0]["name"] == NASTY


def test_hostile_names_are_escaped_in_the_files_too(store, tmp_path):
    result = compare(
        store["uri"], "--sweep", store["ids"]["hostile_sweep"], "--no-log", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert_printable(result.stdout, result.stderr)
    for name in ("table.md", "table.csv", "table.json"):  # `cat table.md` must be as safe
        assert_printable((tmp_path / name).read_text())
    assert strict_json((tmp_path / "table.json").read_text())["groups"][0]["group"].startswith(NASTY)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["learning_curves.png", "test_error.png"]


def test_a_label_with_dollar_signs_is_drawn_as_text_not_as_tex(tmp_path):
    def run(label, seed):
        curves = {"test_accuracy": [(1, 0.5), (2, 0.8 + seed / 100)]}
        return RunData(
            f"{label}{seed}", label, "FINISHED", {"seed": str(seed), "rule.type": label}, {}, curves
        )

    runs = [run("$\\frac{", 0), run("$\\frac{", 1), run("bp", 0)]
    report = build_report(Selection("3 runs", runs))
    write_outputs(report, tmp_path)  # unescaped, matplotlib's TeX parser fails on "$\frac{"
    assert (tmp_path / "test_error.png").exists()


def test_the_sweeps_progress_listing_and_summary_escape_labels_and_notes():
    from rich.console import Console

    from altlearn.runs import RunOutcome
    from altlearn.sweep.configurations import Configuration, Trial
    from altlearn.sweep.display import SweepDisplay, summary_lines, trial_lines
    from altlearn.sweep.jobs import Event
    from altlearn.sweep.record import Plan
    from altlearn.sweep.summary import GroupResult, TrialResult

    trials = [
        Trial(i, Configuration(f"cases[{i}]", f"{NASTY} {i}", None, ()), 0, None, f"key{i}", f"group{i}")
        for i in range(2)
    ]
    plans = [Plan(trial, "start") for trial in trials]
    failure = RunOutcome(None, "FAILED", f"spec problem\n  - name: {NASTY}", 2)
    events = [
        Event(0, "started", epochs=2),
        Event(0, "epoch", epoch=1, epochs=2, test_accuracy=0.5),
        Event(1, "done", outcome=failure),
    ]
    plain = io.StringIO()
    display = SweepDisplay(plans, stream=plain)
    for event in events:
        display.update(event)
    screen = io.StringIO()
    Console(file=screen, width=300, force_terminal=False).print(display._table())
    results = [
        TrialResult(trials[0], "FINISHED", "r0", 0.5, None, False),
        TrialResult(trials[1], "FAILED", None, None, failure.message, False),
    ]
    groups = [
        GroupResult("group0", trials[0].label, 1, 1, 0.5, None),
        GroupResult("group1", trials[1].label, 1, 0, None, None),
    ]
    lines = trial_lines(trials, None) + summary_lines(results, groups)
    assert_printable(plain.getvalue(), screen.getvalue(), "\n".join(lines))
    assert "evil\\x1b]0;pwned\\x07" in plain.getvalue() and "[red]x[/]" in screen.getvalue()
    assert len(plain.getvalue().splitlines()) == 3  # one line per event: the label's \r\n is text
    assert (
        lines[-1].startswith("trial 2 (evil\\x1b") and "FAILED: spec problem: name: evil\\x1b]0" in lines[-1]
    )


# ------------------------------------------------------------------------------ where --out points


def test_out_at_a_file_a_device_or_through_a_file_is_a_message(store, tmp_path):
    a_file = tmp_path / "table.md"
    a_file.write_text("not a folder")
    user_error(
        compare(store["uri"], "--experiment", "broken", "--out", str(a_file)), f"--out {a_file} is a file"
    )
    user_error(
        compare(store["uri"], "--experiment", "broken", "--out", "/dev/null"), "--out /dev/null is a device"
    )
    below = a_file / "report"
    user_error(
        compare(store["uri"], "--experiment", "broken", "--out", str(below)),
        f"--out {below} cannot be created: {a_file} is a file",
    )
    assert a_file.read_text() == "not a folder"


@contextlib.contextmanager
def read_only_folder(folder):
    """A folder this process cannot write in. Root writes through a chmod, so as root the folder
    is a read-only tmpfs, where this machine allows mounting one."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    mount = shutil.which("mount")
    done = mount and subprocess.run(
        [mount, "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if not done or done.returncode != 0:
        pytest.skip("running as root without a way to mount a read-only folder")
    try:
        yield folder
    finally:
        subprocess.run([shutil.which("umount"), str(folder)], check=True)


def test_out_in_a_read_only_folder_is_a_message(store, tmp_path):
    with read_only_folder(tmp_path / "read-only") as folder:
        for out in (folder, folder / "report"):
            user_error(
                compare(store["uri"], "--experiment", "broken", "--out", str(out)),
                f"cannot write the report into {out}: {out}",
            )


def test_a_write_that_fails_midway_names_the_file(tmp_path):
    (tmp_path / "table.csv").mkdir()  # a folder where a file goes: the write fails, whoever we are
    run = RunData("r0", "r", "FINISHED", {"seed": "0"}, {}, {"test_accuracy": [(1, 0.5)]})
    with pytest.raises(
        CompareError, match=f"cannot write the report into {tmp_path}: {tmp_path / 'table.csv'}: "
    ):
        write_outputs(build_report(Selection("1 run", [run])), tmp_path)


# ------------------------------------------------------------------------------ nan and inf


def test_runs_with_a_non_finite_final_value_are_not_counted_and_nan_never_reaches_the_table(store):
    ids = store["ids"]
    result = compare(store["uri"], "--experiment", "broken", "--format", "json")
    assert result.exit_code == 0, result.output
    document = strict_json(result.stdout)
    reasons = {entry["run_id"]: entry["reason"] for entry in document["not_counted"]}
    assert reasons[ids["nan"]].startswith("FINISHED but its final test_accuracy is nan")
    assert reasons[ids["inf"]].startswith("FINISHED but its final test_accuracy is inf")
    dfa = next(group for group in document["groups"] if group["group"] == "rule.type=dfa")
    assert dfa["n"] == 2 and dfa["test_accuracy"]["mean"] == pytest.approx(0.825)
    assert dfa["seconds_per_epoch"] is None  # every epoch time was inf: no number, null
    assert '"seconds_per_epoch": null' in result.stdout
    assert dfa["best_val_accuracy"]["values"] == [0.8, 0.8]  # the nan epoch left out
    (note,) = [n for n in document["notes"] if n.startswith("non-finite metric values left out")]
    for seed in (2, 3):
        assert f"run {ids[f'dfa{seed}'][:8]} (dfa-{seed}): val_accuracy nan at step 1" in note
    assert "epoch_seconds inf at step 1, -inf at step 2" in note
    for fmt in ("rich", "md", "csv"):
        shown = compare(store["uri"], "--experiment", "broken", "--format", fmt)
        assert shown.exit_code == 0 and "nan" not in shown.stdout.lower() and "inf" not in shown.stdout
        assert (
            f"not counted: run {ids['nan']} (dfa-nan) FINISHED but its final test_accuracy is nan"
            in shown.stderr
        )


def test_json_has_null_for_every_number_that_is_not_finite():
    def run(seed, accuracy, seconds):
        curves = {"test_accuracy": [(1, accuracy)], "epoch_seconds": [(1, seconds)]}
        return RunData(f"r{seed}", "r", "FINISHED", {"seed": str(seed)}, {}, curves)

    from altlearn.compare.table import to_csv, to_json

    # Epoch times too large to add up: the mean overflows to inf instead of raising.
    report = build_report(Selection("2 runs", [run(0, 0.5, 1e308), run(1, 0.6, 1e308)]))
    document = strict_json(to_json(report))
    assert document["groups"][0]["seconds_per_epoch"] is None
    assert "inf" not in to_csv(report) and "nan" not in to_csv(report)


# ------------------------------------------------------------------------------ hidden settings


def test_by_names_the_settings_it_leaves_out(store):
    document = strict_json(
        compare(store["uri"], "--experiment", "settings", "--by", "rule.type", "--format", "json").stdout
    )
    notes = document["notes"]
    across = [n for n in notes if n.startswith("the compared runs also differ in params --by leaves out")]
    assert across == [
        "the compared runs also differ in params --by leaves out: data.train_subset: (unset) (4 runs), "
        "25000 (2 runs); train.epochs: 20 (4 runs), 5 (2 runs); the groups may differ in more than "
        "their labels say, and the p-values measure that difference too"
    ]
    (mixed,) = [n for n in notes if n.startswith("group 'rule.type=bp' mixes data.train_subset: ")]
    assert "25000 (2 runs)" in mixed and "; train.epochs: " in mixed and "5 (2 runs)" in mixed
    assert not any(n.startswith("group 'rule.type=dfa' mixes") for n in notes)
    assert "rule.feedback_init" not in " ".join(notes)  # dfa's own option: rule.type already says so
    # grouped by every setting, the labels show each one: nothing hidden to note
    plain = strict_json(compare(store["uri"], "--experiment", "settings", "--format", "json").stdout)
    assert "train.epochs=5" in " ".join(g["group"] for g in plain["groups"])
    assert not any("also differ" in n or "mixes" in n for n in plain["notes"])


def test_sweep_labels_that_hide_what_sets_two_sweeps_apart_get_a_note(store):
    document = strict_json(compare(store["uri"], "--experiment", "two-sweeps", "--format", "json").stdout)
    assert sorted(g["group"] for g in document["groups"]) == ["bp", "dfa", "fa"]
    (note,) = [n for n in document["notes"] if "also differ" in n]
    assert note.startswith(
        "the compared runs also differ in settings their sweeps' labels leave out (the groups come from "
        "2 sweeps): data.train_subset: 25000 (4 runs), (unset) (2 runs); train.epochs: 5 (4 runs), 20 (2 runs)"
    )
    assert "rule.type" not in note  # what each sweep varies is what its labels name
    one = compare(store["uri"], "--sweep", store["ids"]["quick"], "--no-log", "--format", "json")
    assert not any("also differ" in n for n in strict_json(one.stdout)["notes"])
