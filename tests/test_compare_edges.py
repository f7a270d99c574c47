"""`altlearn compare`'s edge cases: each a message and exit code 2, or a note, never a traceback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import mlflow
import pytest
from compare_runs import compare, compare_json, train, write_spec

from altlearn.compare.comparison import build_report
from altlearn.compare.selection import open_store, select_run_ids
from altlearn.errors import CompareError

EXPERIMENT = "edges"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Real runs: bp with two seeds, bp on a narrower network, dfa with one seed; and, made with the
    client as other processes would leave them, a FAILED, a KILLED and a RUNNING run, and a sweep
    parent without trials."""
    folder = tmp_path_factory.mktemp("edges")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    spec_path = write_spec(folder)
    ids = {
        "bp0": train(uri, spec_path, EXPERIMENT, 0),
        "bp1": train(uri, spec_path, EXPERIMENT, 1),
        "narrow": train(uri, spec_path, EXPERIMENT, 0, "network.layers.1.out_features=16"),
        "dfa0": train(uri, spec_path, EXPERIMENT, 0, "rule.type=dfa"),
    }
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    other = client.create_experiment("elsewhere")
    params = client.get_run(ids["bp0"]).data.params
    for status in ("FAILED", "KILLED", "RUNNING"):
        run_id = client.create_run(other, run_name=status.lower()).info.run_id
        for key, value in params.items():
            client.log_param(run_id, key, value)
        client.log_metric(run_id, "test_accuracy", 0.4, step=1)
        if status == "FAILED":
            client.set_tag(run_id, "altlearn.error", "RuntimeError: out of memory")
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        ids[status] = run_id
    parent = client.create_run(other, run_name="empty-sweep", tags={"altlearn.kind": "sweep"})
    ids["parent"] = parent.info.run_id
    return {"uri": uri, "ids": ids, "folder": folder}


def user_error(result, *fragments: str) -> str:
    """Exit 2 with a message containing every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # _fail's exit, not an exception escaping
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_no_runs_match(store):
    user_error(
        compare(store["uri"], "--experiment", EXPERIMENT, "--filter", "params.`rule.type` = 'ff'"),
        "no runs in experiment 'edges' matching --filter \"params.`rule.type` = 'ff'\"",
    )
    user_error(
        compare(store["uri"], "--experiment", "nope"), "no experiment 'nope'", "'edges'", "'elsewhere'"
    )
    user_error(
        compare(store["uri"], "--experiment", EXPERIMENT, "--filter", "rule = bp"),
        "is not a valid MLflow search",
    )


def test_wrong_run_ids_and_sources(store):
    user_error(compare(store["uri"], "0" * 32), f"no run '{'0' * 32}' in this tracking store")
    user_error(compare(store["uri"], "not a run"), "is not a run id")
    user_error(compare(store["uri"]), "exactly one of --sweep NAME, --experiment NAME or run ids")
    user_error(
        compare(store["uri"], "--experiment", EXPERIMENT, "--sweep", store["ids"]["bp0"]),
        "given: --sweep and --experiment",
    )
    user_error(
        compare(store["uri"], store["ids"]["bp0"], "--filter", "metrics.test_accuracy > 0"),
        "--filter narrows",
    )
    user_error(
        compare(store["uri"], "--sweep", store["ids"]["bp0"]),
        "has no child runs, so it is not a sweep's parent",
    )
    user_error(
        compare(store["uri"], "--sweep", store["ids"]["parent"]),
        "(run " + store["ids"]["parent"] + ") has no trials yet",
    )
    user_error(
        compare(store["uri"], store["ids"]["parent"]),
        "is the parent of a sweep",
        f"--sweep {store['ids']['parent']}",
    )
    user_error(
        compare(store["uri"], "--experiment", EXPERIMENT, "--by", "rule.typ"), "did you mean rule.type"
    )


def test_a_missing_database_is_named_not_created(tmp_path):
    missing = tmp_path / "elsewhere.db"
    user_error(
        compare(f"sqlite:///{missing}", "--experiment", EXPERIMENT), f"there is no MLflow database {missing}"
    )
    assert not missing.exists()


def test_different_networks_are_compared_only_with_by(store):
    user_error(
        compare(store["uri"], "--experiment", EXPERIMENT),
        "different data sets or networks",
        "network.layers.1.out_features: 32 (3 runs), 16 (1 run)",
        "--filter \"params.`network.layers.1.out_features` = '32'\"",  # the filter that would help
        "--by",
    )
    document = compare_json(store["uri"], "--experiment", EXPERIMENT, "--by", "rule.type")
    assert {g["group"]: g["n"] for g in document["groups"]} == {"rule.type=bp": 3, "rule.type=dfa": 1}
    assert any(
        note.startswith("group 'rule.type=bp' mixes network.layers.1.out_features")
        for note in document["notes"]
    )


def test_different_data_sets_are_compared_only_with_by(store):
    selection = select_run_ids(open_store(store["uri"]), [store["ids"]["bp0"], store["ids"]["bp1"]])
    # The same run's record with another data set: what a run on MNIST in the selection looks like.
    run = selection.runs[1]
    selection.runs[1] = dataclasses.replace(run, params={**run.params, "data.type": "mnist"})
    with pytest.raises(CompareError, match=r"data.type: digits \(1 run\), mnist \(1 run\)"):
        build_report(selection)
    report = build_report(selection, by=["rule.type"])
    assert "group 'rule.type=bp' mixes data.type: digits (1 run), mnist (1 run)" in " ".join(report.notes)


def test_a_group_with_one_seed_has_no_std_and_no_test(store):
    ids = store["ids"]
    document = compare_json(store["uri"], ids["bp0"], ids["bp1"], ids["dfa0"])
    dfa = next(g for g in document["groups"] if g["group"] == "rule.type=dfa")
    assert (
        dfa["n"] == 1 and dfa["test_accuracy"]["std"] is None and dfa["test_accuracy"]["ci95"] == [None, None]
    )
    assert dfa["p_value_vs_best"] is None and dfa["p_value_note"] in ("one seed: no test", "best")
    assert any(note.startswith("1 group has one seed ('rule.type=dfa')") for note in document["notes"])
    markdown = compare(store["uri"], ids["bp0"], ids["dfa0"], "--format", "md").stdout
    assert markdown.count("one seed: no test") == 1  # the other row is the best: nothing to test


def test_runs_without_alignment_metrics_get_no_alignment_figure(store, tmp_path):
    ids = store["ids"]
    result = compare(store["uri"], ids["bp0"], ids["bp1"], "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "note: no run logged alignment metrics" in result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["learning_curves.png", "test_error.png"]
    assert (tmp_path / "report.html").read_text().count("<img ") == 2
    mixed = compare(store["uri"], ids["bp0"], ids["dfa0"], "--out", str(tmp_path))
    assert "no alignment metrics for rule bp, so no alignment panel for it" in mixed.stderr
    assert (tmp_path / "alignment.png").exists()


def test_unfinished_runs_are_listed_with_their_status(store):
    ids = store["ids"]
    document = compare_json(
        store["uri"], ids["bp0"], ids["bp1"], ids["FAILED"], ids["KILLED"], ids["RUNNING"]
    )
    reasons = {e["status"]: e["reason"] for e in document["not_counted"]}
    assert reasons == {
        "FAILED": "FAILED after 1 of 2 epochs (RuntimeError: out of memory)",
        "KILLED": f"KILLED after 1 of 2 epochs (continue it with: altlearn resume {ids['KILLED']})",
        "RUNNING": "is still RUNNING (1 of 2 epochs logged): left out until it finishes",
    }
    assert [g["n"] for g in document["groups"]] == [2]
    user_error(
        compare(store["uri"], ids["RUNNING"]),
        "none of the 1 run given by id can be compared yet",
        "still RUNNING",
    )


def test_help_imports_neither_torch_mlflow_nor_matplotlib():
    code = textwrap.dedent("""
        import sys
        from altlearn.cli.commands import main
        for args in (["--help"], ["compare", "--help"]):
            try:
                main(args)
            except SystemExit:
                pass
        heavy = ("torch", "mlflow", "matplotlib", "scipy")
        print("HEAVY:", sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY: []" in result.stdout and "--experiment NAME" in result.stdout


def test_alignment_angles_are_read_under_both_metric_name_forms():
    from altlearn.compare.selection import RunData

    curve = [(0, 80.0), (10, 60.0)]
    run = RunData(
        "r", "r", "FINISHED", {}, {}, {"alignment/angle_layer1": curve, "alignment/norm_ratio_layer1": curve}
    )
    assert run.alignment_curves() == {"layer1": curve}
    nested = RunData(
        "r", "r", "FINISHED", {}, {}, {"alignment/layer3/angle": curve, "alignment/layer3/norm_ratio": curve}
    )
    assert nested.alignment_curves() == {"layer3": curve}


def test_trials_of_one_sweep_configuration_stay_one_group_across_an_option_a_later_version_logs():
    """A sweep continued after an upgrade: seed 0 ran before rule.conv_feedback existed, seeds 1-2
    log its default. Their sweep configuration (altlearn.group_key, defaults left out) is the same,
    so they are three seeds of one group, labelled by the sweep, not split into two."""
    from altlearn.compare.grouping import group_runs
    from altlearn.compare.selection import RunData

    def trial(seed, label, key, **extra):
        params = {
            "seed": str(seed),
            "rule.type": label.split()[-1],
            "network.layers.1.out_features": "800",
            **extra,
        }
        tags = {"altlearn.group": label, "altlearn.group_key": key}
        return RunData(f"{label}{seed}", label, "FINISHED", params, tags)

    runs = [
        trial(0, "1x800 dfa", "k-dfa"),
        trial(0, "1x800 bp", "k-bp"),
        trial(1, "1x800 dfa", "k-dfa", **{"rule.conv_feedback": "dense"}),
        trial(2, "1x800 dfa", "k-dfa", **{"rule.conv_feedback": "dense"}),
        trial(1, "1x800 bp", "k-bp"),
    ]
    groups = group_runs(runs, None)
    assert [(g.label, sorted(r.seed for r in g.runs)) for g in groups] == [
        ("1x800 dfa", ["0", "1", "2"]),
        ("1x800 bp", ["0", "1"]),
    ]
    # runs outside a sweep record the same key: an old and a new run of one spec are one group
    old = RunData("a", "r", "FINISHED", {"seed": "0", "rule.type": "dfa"}, {"altlearn.group_key": "k"})
    new = RunData(
        "b",
        "r",
        "FINISHED",
        {"seed": "1", "rule.type": "dfa", "rule.conv_feedback": "dense"},
        {"altlearn.group_key": "k"},
    )
    assert [len(g.runs) for g in group_runs([old, new], None)] == [2]
    # runs without any key still group by their params alone
    plain = [RunData(str(s), "r", "FINISHED", {"seed": str(s), "rule.type": "fa"}, {}) for s in (0, 1)]
    assert [len(g.runs) for g in group_runs(plain + [runs[1]], None)] == [2, 1]


def test_the_alignment_note_gives_each_rule_without_a_panel_its_own_reason():
    from altlearn.compare.comparison import _alignment_notes
    from altlearn.compare.selection import RunData

    def run(rule: str, aligned: bool, every: str = "200") -> RunData:
        curves = {"alignment/angle_layer1": [(0, 88.0), (200, 40.0)]} if aligned else {}
        params = {"rule.type": rule, "tracking.alignment_every": every}
        return RunData(run_id=rule, name=rule, status="FINISHED", params=params, tags={}, curves=curves)

    (note,) = _alignment_notes(
        [run("fa", True), run("bp", False), run("goup", False), run("dfa", False, "0")]
    )
    assert note == (
        "no alignment metrics for rule bp, dfa, goup, so no alignment panel for them "
        "(bp's update is the BP gradient itself; dfa ran with tracking.alignment_every 0; "
        "goup's update has nothing to compare with the BP gradient)"
    )
    (note,) = _alignment_notes([run("fa", True), run("ff", False)])
    assert note.endswith(
        "no alignment panel for it (ff's update has nothing to compare with the BP gradient)"
    )
    # a run shorter than alignment_every measured once, before training: no panel, and a note
    once = run("dfa", True)
    once.curves["alignment/angle_layer1"] = [(0, 91.0)]
    assert not once.alignment_over_training() and run("fa", True).alignment_over_training()
    (note,) = _alignment_notes([run("fa", True), once])
    assert note.startswith("alignment of rule dfa was measured only once, at step 0 before any update")
    assert "tracking.alignment_every 200 is more than the runs' training steps, or they stopped" in note


def test_runs_that_trained_to_the_cap_without_meeting_their_stop_are_named_in_a_note():
    from altlearn.compare.comparison import build_report
    from altlearn.compare.selection import RunData, Selection

    unmet = "train.stop_when (train_accuracy >= 0.9999) not met in 299 epochs: ... ended at 0.9996"

    def run(seed: int, tags: dict[str, str]) -> RunData:
        params = {"seed": str(seed), "rule.type": "dfa", "train.epochs": "299"}
        curves = {"test_accuracy": [(299, 0.982 + seed / 1000)]}
        return RunData(f"run{seed}aaaaaa", "dfa", "FINISHED", params, tags, curves)

    stopped = {"altlearn.stopped": "stopped after epoch 261 of 299: ..."}
    report = build_report(
        Selection("3 runs", [run(0, stopped), run(1, {"altlearn.stop_unmet": unmet}), run(2, {})])
    )
    assert (
        "1 of 3 runs of 'rule.type=dfa' trained all 299 epochs without meeting their stop: their "
        f"figures are at the cap, not at the stop (run run1aaaa: {unmet})"
    ) in report.notes
    every_stop_met = build_report(Selection("2 runs", [run(0, stopped), run(2, {})]))
    assert not [note for note in every_stop_met.notes if "without meeting" in note]


def test_a_single_epoch_axis_shows_whole_ticks_around_it():
    from altlearn.compare.plotting import integer_ticks, new_figure

    figure, axes = new_figure(4.0, 3.0)
    one, many = axes[0][0], new_figure(4.0, 3.0)[1][0][0]
    one.plot([1], [0.9], marker="o")
    many.plot([1, 2, 3, 4], [0.5, 0.6, 0.7, 0.8])
    for ax in (one, many):
        integer_ticks(ax)
        low, high = ax.get_xlim()
        shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
        assert len(shown) >= 2 and all(float(tick).is_integer() for tick in shown), shown
    assert one.get_xlim() == (0, 2)  # the point in the middle, not at an edge


def test_seconds_keep_three_digits_with_their_zeros_and_no_exponent():
    from altlearn.compare.formatting import seconds_text

    shown = [seconds_text(s) for s in (0.3, 0.3051, 2.5, 12.0, 123.4, 4567.8, 0.0123, 9.996, 99.96, 0.0)]
    assert shown == ["0.300", "0.305", "2.50", "12.0", "123", "4,568", "0.0123", "10.0", "100", "0.000"]


def test_an_alignment_panel_drawn_from_a_rules_lower_group_says_so():
    """fa's best group (lr 0.01) measured alignment only at step 0; its lower group (lr 0.001) over
    training: the panel draws the lower group and its title says it is not the best one."""
    from altlearn.compare.comparison import build_report
    from altlearn.compare.figures import _alignment_panels, alignment
    from altlearn.compare.selection import RunData, Selection

    def run(seed: int, lr: str, accuracy: float, angles: list) -> RunData:
        params = {"seed": str(seed), "rule.type": "fa", "optimizer.lr": lr, "tracking.alignment_every": "50"}
        curves = {"test_accuracy": [(3, accuracy)], "alignment/angle_layer1": angles}
        return RunData(f"run{lr}{seed}aaaa", "fa", "FINISHED", params, {}, curves)

    over_training = [(0, 89.0), (50, 60.0), (100, 45.0)]
    runs = [run(s, "0.01", 0.95 + s / 100, [(0, 90.0)]) for s in (0, 1)]
    runs += [run(s, "0.001", 0.90 + s / 100, over_training) for s in (0, 1)]
    report = build_report(Selection("4 runs", runs), by=["optimizer.lr"])
    (panel,) = _alignment_panels(report)
    assert panel.below_best and {r.params["optimizer.lr"] for r in panel.stats.group.runs} == {"0.001"}
    (axes,) = [ax for ax in alignment(report).axes if ax.get_visible()]
    assert axes.get_title().startswith("fa\n") and "not its best group" in axes.get_title()
    assert "90°: orthogonal, no alignment" in [t.get_text() for t in axes.get_legend().get_texts()]
    best_measured = build_report(Selection("2 runs", runs[2:]), by=["optimizer.lr"])
    assert not _alignment_panels(best_measured)[0].below_best


def test_repeats_of_one_seed_are_one_sample_not_several():
    """Three runs of seed 0 (a spec run three times) and one of seed 1: n is 2 seeds, seed 0's value
    the mean of its runs, and a note says so; a zero-width interval from repeats would be false
    precision."""
    from altlearn.compare.grouping import Group
    from altlearn.compare.selection import RunData
    from altlearn.compare.stats import summarize

    def run(name: str, seed: str | None, accuracy: float) -> RunData:
        params = {"rule.type": "bp"} | ({"seed": seed} if seed is not None else {})
        return RunData(name, name, "FINISHED", params, {}, {"test_accuracy": [(3, accuracy)]})

    runs = [run("a", "0", 0.90), run("b", "0", 0.90), run("c", "0", 0.93), run("d", "1", 0.95)]
    stats = summarize(Group((("rule", "bp"),), runs, "bp"))
    assert stats.seeds == ["0", "1"] and stats.n == 2
    assert stats.test_accuracy.values == pytest.approx([0.91, 0.95])
    assert stats.test_accuracy.std is not None and stats.test_accuracy.std > 0
    assert (
        "with seed 0: each is one sample" in stats.notes[0] and "counts 2 samples of 4 runs" in stats.notes[0]
    )
    unknown = summarize(Group((("rule", "bp"),), [run("e", None, 0.9), run("f", None, 0.8)], "bp"))
    assert unknown.n == 2 and unknown.seeds == ["?", "?"] and not unknown.notes  # no seed: one each
    # grouped by rule alone over two learning rates: each configuration's seed 0 is its own sample
    other_lr = run("g", "0", 0.80)
    other_lr.params["optimizer.lr"] = "0.1"
    mixed = summarize(Group((("rule", "bp"),), [run("h", "0", 0.90), other_lr], "bp"))
    assert mixed.n == 2 and mixed.seeds == ["0", "0"] and not mixed.notes
