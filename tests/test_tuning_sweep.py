"""A search sweep end to end, with real trials on digits: sampling, pruning, finals on fresh seeds,
continuing after Ctrl-C, and the grammar's mistakes."""

from __future__ import annotations

import json
import shutil
import signal

import pytest
from click.testing import CliRunner
from sweep_helpers import DIGITS_BASE, read_until, start_sweep, store, sweep_runs, write_sweep

from altlearn.cli import main

BASE = {
    **DIGITS_BASE,
    "data": {**DIGITS_BASE["data"], "val_size": 200},
    "train": {**DIGITS_BASE["train"], "epochs": 3},
}

#: One case, a learning rate that learns and one that cannot: the hopeless trials are pruned.
#: TPE's start-up draws depend only on the search seed and the trial number (this seed: good, good,
#: hopeless, good, hopeless), so whatever the timing a hopeless trial is judged against a good one.
SEARCH = {
    "name": "digits-search",
    "cases": [{"label": "bp", "rule.type": "bp"}],
    "search": {
        "space": {"optimizer.lr": {"choice": [0.01, 1.0e-9]}},
        "trials": 6,
        "seed": 1,
        "startup_trials": 5,
        "pruner": {"type": "median", "min_epochs": 1, "startup_trials": 1},
    },
    "final": {"seeds": 2},
}


def run_sweep(folder, sweep=SEARCH, *extra):
    path = write_sweep(folder, sweep, BASE)
    args = ["sweep", str(path), "--tracking-uri", store(folder), "-q", "--workers", "1", *extra]
    result = CliRunner().invoke(main, args)
    return result


def by_phase(children, phase):
    runs = [
        c
        for c in children
        if c.data.tags.get("altlearn.phase") == phase and "altlearn.superseded" not in c.data.tags
    ]
    return sorted(
        runs, key=lambda r: (int(r.data.tags.get("altlearn.search_trial", -1)), r.data.params["seed"])
    )


def chosen_values(children) -> set[str]:
    return {r.data.tags["altlearn.search_params"] for r in by_phase(children, "final")}


def test_a_search_prunes_what_cannot_win_and_reruns_its_choice_on_fresh_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the artifacts go to ./mlartifacts
    result = run_sweep(tmp_path)
    assert result.exit_code == 0, result.output
    parent, children = sweep_runs(store(tmp_path))
    search, finals = by_phase(children, "search"), by_phase(children, "final")
    assert [int(r.data.tags["altlearn.search_trial"]) for r in search] == [0, 1, 2, 3, 4, 5]
    for run in search:
        values = json.loads(run.data.tags["altlearn.search_params"])
        assert float(run.data.params["optimizer.lr"]) == values["optimizer.lr"]
        assert "test_accuracy" not in run.data.metrics  # the search never looks at the test set
        assert run.data.params["seed"] == "0"
    pruned = [r for r in search if "altlearn.pruned_epoch" in r.data.tags]
    assert pruned, "no hopeless trial was pruned"
    for run in pruned:
        assert json.loads(run.data.tags["altlearn.search_params"])["optimizer.lr"] == 1.0e-9
        assert run.info.status == "KILLED" and int(run.data.tags["altlearn.pruned_epoch"]) < 3
    assert chosen_values(children) == {json.dumps({"optimizer.lr": 0.01})}
    assert sorted(r.data.params["seed"] for r in finals) == ["1", "2"]  # fresh: the search ran seed 0
    assert all("test_accuracy" in r.data.metrics and r.info.status == "FINISHED" for r in finals)
    assert parent.info.status == "FINISHED"
    # The closing table's search line names the trial the finals re-ran and its objective.
    number = {r.data.tags["altlearn.chosen_trial"] for r in finals}.pop()
    val = next(r for r in search if r.data.tags["altlearn.search_trial"] == number).data.metrics[
        "val_accuracy"
    ]
    line = next(line for line in result.output.splitlines() if line.startswith("bp, search"))
    assert line.split()[2:] == [
        "6/6",
        "chose",
        "trial",
        number,
        "(lr",
        "0.01):",
        "val_accuracy",
        f"{val:.2%}",
    ], line
    # Running it again has nothing left to do: pruned trials are never resumed.
    again = run_sweep(tmp_path)
    assert again.exit_code == 0, again.output
    assert len(sweep_runs(store(tmp_path))[1]) == len(children)
    # A store kept without its artifacts (as results/ keeps them) still reports the search.
    shutil.rmtree(tmp_path / "mlartifacts")
    args = ["compare", "--sweep", "digits-search", "--tracking-uri", store(tmp_path), "--format", "json"]
    report = CliRunner().invoke(main, args)
    assert report.exit_code == 0, report.output
    assert '"optimizer.lr": "choice {0.01, 1e-9}"' in report.output  # its range, from the tag


def test_ctrl_c_mid_search_then_continuing_chooses_what_an_uninterrupted_search_does(tmp_path):
    sweep = {
        **SEARCH,
        "search": {**SEARCH["search"], "space": {"optimizer.lr": {"log_uniform": [1.0e-4, 0.05]}}},
    }
    uninterrupted = tmp_path / "whole"
    uninterrupted.mkdir()
    assert run_sweep(uninterrupted, sweep).exit_code == 0
    expected = chosen_values(sweep_runs(store(uninterrupted))[1])

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    path = write_sweep(stopped, sweep, BASE)
    process = start_sweep([str(path), "--tracking-uri", store(stopped), "--workers", "1"], stopped)
    try:
        read_until(process, "bp, search 2")  # trials 0 and 1 have ended, trial 2 is starting
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert run_sweep(stopped, sweep).exit_code == 0
    _, children = sweep_runs(store(stopped))
    assert chosen_values(children) == expected
    finished = [r for r in by_phase(children, "search") if r.info.status in ("FINISHED", "KILLED")]
    assert len(finished) == 6  # no finished trial ran twice: one run per trial number


def test_final_only_runs_the_finals_of_a_finished_search(tmp_path):
    two_cases = {**SEARCH, "cases": [*SEARCH["cases"], {"label": "fa", "rule.type": "fa"}]}
    result = run_sweep(tmp_path, two_cases, "--final-only", "--case", "fa")
    assert result.exit_code == 0, result.output  # nothing searched: no finals
    _, children = sweep_runs(store(tmp_path))
    assert children == []
    # the note names the case asked for, not the one --case left out
    assert "'fa': its search is not done" in result.output
    assert "'bp'" not in result.output
    alone = run_sweep(tmp_path, two_cases, "--final-only")  # every case's finals were asked for
    assert "'bp': its search is not done" in alone.output and "'fa': its search" in alone.output


@pytest.mark.parametrize(
    "change, where",
    [
        ({"grid": {"optimizer.lr": [0.1, 0.2]}}, "grid"),
        ({"seeds": 3}, "seeds"),
        (
            {"search": {**SEARCH["search"], "space": {"optimizer.lr": {"log_uniform": [0, 0.1]}}}},
            "search.space.optimizer.lr",
        ),
        (
            {"search": {**SEARCH["search"], "space": {"optimizer.lr": {"uniform": [0.1, 0.01]}}}},
            "search.space.optimizer.lr",
        ),
        (
            {"search": {**SEARCH["search"], "space": {"optimizer.lr": {"choice": []}}}},
            "search.space.optimizer.lr",
        ),
        ({"search": {**SEARCH["search"], "trials": 0}}, "search.trials"),
        ({"search": {**SEARCH["search"], "trials": 10**6}}, "search.trials"),
        ({"search": {**SEARCH["search"], "objective": "test_accuracy"}}, "search.objective"),
        ({"search": {**SEARCH["search"], "objective": "energy"}}, "search.direction"),
        (
            {
                "search": {
                    **SEARCH["search"],
                    "sampler": "grid",
                    "space": {"optimizer.lr": {"log_uniform": [0.01, 0.1]}},
                }
            },
            "search.space.optimizer.lr",
        ),
        ({"search": {**SEARCH["search"], "pruner": {"type": "asha"}}}, "search.pruner.type"),
        (
            {"search": {**SEARCH["search"], "space": {"optimizer.lrr": {"choice": [0.1]}}}},
            "search.space.optimizer.lrr",
        ),
        ({"final": {"seeds": [0, 1]}}, "final.seeds"),
        ({"final": {"sets": {}}}, "final.sets"),
    ],
)
def test_a_mistake_in_a_search_is_named_at_its_path_exit_2(tmp_path, change, where):
    result = run_sweep(tmp_path, {**SEARCH, **change}, "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"{where}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_a_validation_objective_needs_a_validation_split(tmp_path):
    base = {**BASE, "data": DIGITS_BASE["data"]}  # no val_size
    path = write_sweep(tmp_path, SEARCH, base)
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and "data.val_size" in result.output, result.output


def test_final_without_search_is_refused(tmp_path):
    path = write_sweep(tmp_path, {"name": "x", "final": {"seeds": 2}}, BASE)
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and "final: " in result.output and "search:" in result.output, result.output


def test_the_dry_run_lists_each_cases_search_trials_and_finals(tmp_path):
    two = {**SEARCH, "cases": [{"label": "bp", "rule.type": "bp"}, {"label": "fa", "rule.type": "fa"}]}
    result = run_sweep(tmp_path, two, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count("bp, search ") == 6 and result.output.count("fa, search ") == 6
    lines = [line for line in result.output.splitlines() if line.rstrip().endswith(("  bp", "  fa"))]
    assert len(lines) == 4  # two finals per case
    again = run_sweep(tmp_path, two, "--dry-run")
    assert again.output == result.output


def test_a_search_that_cannot_do_what_it_says_is_noted_before_it_runs(tmp_path):
    quiet = run_sweep(tmp_path, SEARCH, "--dry-run")
    assert quiet.exit_code == 0, quiet.output
    assert "note:" not in quiet.output  # 5 start-up draws of 6 trials, pruning from epoch 1 of 3
    search = {**SEARCH["search"], "startup_trials": 6, "pruner": {"type": "median", "min_epochs": 3}}
    result = run_sweep(tmp_path, {**SEARCH, "search": search}, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "search.startup_trials (6) is not below search.trials (6)" in result.output
    assert "'bp': search.pruner.min_epochs (3) is not below its train.epochs (3)" in result.output
    two = {**SEARCH, "search": search, "cases": [*SEARCH["cases"], {"label": "fa", "rule.type": "fa"}]}
    result = run_sweep(tmp_path, two, "--dry-run", "--case", "fa")
    assert "'fa': search.pruner" in result.output and "'bp'" not in result.output  # --case's only
