"""`altlearn compare` on a sweep with a search, and on a grid read with --select-by: each case at its
best, the evidence for each choice, the finals' statistics and the pairwise tests, checked against
numbers computed here straight from the MLflow metrics; the files a paper needs (LaTeX, SVG, PDF,
a set-up block); the Optuna export; and --sweep by name.

The runs are written straight into MLflow with the tags `altlearn sweep` puts on a search's runs
(altlearn.tracking.sweep_tags): no training, so the store is made in seconds.
"""

from __future__ import annotations

import json
import math
import re
import statistics

import pytest
import yaml
from compare_runs import compare, compare_json, holm_by_hand
from matplotlib.colors import to_hex
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from altlearn.compare.comparison import Report
from altlearn.compare.labels import layer_names, readable, rule_colour, value_text, values_text
from altlearn.compare.latex import escape
from altlearn.compare.pairwise import holm
from altlearn.tracking.sweep_tags import (
    CASE_LABEL_TAG,
    CASE_TAG,
    CHOSEN_TAG,
    NUMBER_TAG,
    PARAMS_TAG,
    PHASE_TAG,
    PRUNED_TAG,
    SUPERSEDED_TAG,
)

SWEEP_FILE = {
    "name": "tune-rules",
    "base": "specs/digits_mlp_bp.yaml",
    "set": {"data.val_size": 100, "train.epochs": 3},
    "cases": [{"rule.type": "bp"}, {"rule.type": "fa"}, {"rule.type": "dfa"}],
    "search": {
        "space": {
            "optimizer.lr": {"log_uniform": [1.0e-4, 1.0e-1]},
            "optimizer.weight_decay": {"choice": [0, 1.0e-5, 1.0e-4]},
        },
        "trials": 5,
        "pruner": {"type": "median", "min_epochs": 1},
    },
    "final": {"seeds": 6},
}
# case -> search trials: (number, lr, weight decay, state, val_accuracy per epoch)
SEARCH = {
    "fa": [
        (0, 0.001, 0, "FINISHED", [0.80, 0.85, 0.88]),
        (1, 0.095, 0, "FINISHED", [0.85, 0.90, 0.93]),  # the best: at the high edge of lr's range
        (2, 0.01, 1e-05, "PRUNED", [0.50]),
        (3, 0.003, 0.0001, "FAILED", [0.60]),
        (4, 0.02, 0, "FINISHED", [0.84, 0.89, 0.92]),
    ],
    "dfa": [
        (0, 0.003, 0, "FINISHED", [0.85, 0.89, 0.91]),  # the best, inside its range
        (1, 0.0005, 0, "FINISHED", [0.80, 0.83, 0.85]),
        (2, 0.05, 1e-05, "FINISHED", [0.83, 0.86, 0.88]),
        (3, 0.0002, 0, "PRUNED", [0.40]),
        (4, 0.001, 0.0001, "FINISHED", [0.86, 0.89, 0.90]),
    ],
    "bp": [
        (0, 0.001, 0.0001, "FINISHED", [0.90, 0.93, 0.95]),  # the best
        (1, 0.0003, 0, "FINISHED", [0.88, 0.92, 0.94]),
        (2, 0.03, 0, "PRUNED", [0.30]),
        (3, 0.0001, 1e-05, "PRUNED", [0.35]),
        (4, 0.006, 0, "FINISHED", [0.89, 0.92, 0.93]),
    ],
}
CHOSEN = {"fa": 1, "dfa": 0, "bp": 0}
# case -> final test accuracies per seed: fa and dfa share seeds 1-6 (paired, Wilcoxon), bp ran 11-14
FINALS = {
    "fa": dict(zip(range(1, 7), [0.930, 0.925, 0.940, 0.935, 0.928, 0.933])),
    "dfa": dict(zip(range(1, 7), [0.910, 0.915, 0.905, 0.920, 0.912, 0.908])),
    "bp": dict(zip(range(11, 15), [0.960, 0.955, 0.965, 0.958])),
}
GRID = {  # rule -> lr -> (val_accuracy, test_accuracy) before each seed's noise
    "fa": {0.001: (0.90, 0.93), 0.003: (0.94, 0.92), 0.01: (0.92, 0.96)},  # best val 3e-3, best test 1e-2
    "dfa": {0.001: (0.85, 0.86), 0.003: (0.88, 0.88), 0.01: (0.91, 0.90)},  # best val: the largest lr
}
NOISE = {"fa": (0.001, -0.003, 0.004), "dfa": (0.002, 0.001, -0.004)}


def log_run(client, experiment, name, params, curves, tags, status="FINISHED", start=None) -> str:
    """One run as a store holds it; ``curves`` maps a metric to its values at epochs 1, 2, ..."""
    run_id = client.create_run(experiment, run_name=name, tags=tags, start_time=start).info.run_id
    metrics = [Metric(k, v, 0, step) for k, values in curves.items() for step, v in enumerate(values, 1)]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def parent_run(client, experiment, name, sweep_file=None, start=None) -> str:
    tags = {"altlearn.kind": "sweep", "altlearn.sweep_name": name}
    run_id = client.create_run(experiment, run_name=name, tags=tags, start_time=start).info.run_id
    if sweep_file is not None:
        client.log_text(run_id, yaml.safe_dump(sweep_file), "sweep.yaml")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def params_of(rule, seed, lr, wd=0) -> dict:
    return {
        "seed": seed,
        "rule.type": rule,
        "data.type": "digits",
        "data.val_size": 100,
        "train.epochs": 3,
        "optimizer.type": "adam",
        "optimizer.lr": lr,
        "optimizer.weight_decay": wd,
        "network.layers.1.type": "linear",
        "network.layers.3.type": "linear",
    }


def run_tags(parent, case, phase, values, **more) -> dict:
    return {
        "mlflow.parentRunId": parent,
        "altlearn.kind": "trial",
        "altlearn.sweep": parent,
        "altlearn.rule": case,
        "altlearn.version": "0.1.0",
        "torch.version": "2.3.0",
        PHASE_TAG: phase,
        CASE_TAG: f"key-{case}",
        CASE_LABEL_TAG: f"rule.type={case}",
        PARAMS_TAG: json.dumps({"optimizer.lr": values[0], "optimizer.weight_decay": values[1]}),
        **more,
    }


def search_sweep(client, experiment, ids) -> None:
    parent = ids["search"] = parent_run(client, experiment, "tune-rules", SWEEP_FILE, start=1000)
    for case, trials in SEARCH.items():
        for number, lr, wd, state, vals in trials:
            tags = run_tags(parent, case, "search", (lr, wd), **{NUMBER_TAG: str(number)})
            status = "KILLED" if state == "PRUNED" else state
            if state == "PRUNED":
                tags[PRUNED_TAG] = str(len(vals))
            curves = {"val_accuracy": vals, "epoch_seconds": [0.5] * len(vals)}
            ids[f"{case}-search-{number}"] = log_run(
                client,
                experiment,
                f"{case} search {number}",
                params_of(case, 0, lr, wd),
                curves,
                tags,
                status,
            )
        # a search trial started again: its first run no longer counts, however good it looks
        tags = run_tags(parent, case, "search", (0.05, 0), **{NUMBER_TAG: "4", SUPERSEDED_TAG: "true"})
        ids[f"{case}-superseded-search"] = log_run(
            client, experiment, "old", params_of(case, 0, 0.05), {"val_accuracy": [0.99]}, tags
        )
        number = CHOSEN[case]
        _, lr, wd, _, _ = next(t for t in trials if t[0] == number)
        for seed, accuracy in FINALS[case].items():
            tags = run_tags(parent, case, "final", (lr, wd), **{CHOSEN_TAG: str(number)})
            curves = {
                "test_accuracy": [accuracy - 0.05, accuracy - 0.01, accuracy],
                "val_accuracy": [accuracy - 0.06, accuracy - 0.02, accuracy - 0.01],
                "epoch_seconds": [0.4, 0.5, 0.6],
            }
            ids.setdefault(f"{case}-finals", []).append(
                log_run(
                    client, experiment, f"{case} seed {seed}", params_of(case, seed, lr, wd), curves, tags
                )
            )
    _runs_that_never_count(client, experiment, parent, ids)


def _runs_that_never_count(client, experiment, parent, ids) -> None:
    """A superseded final, a KILLED one and a (hand-made) pruned one: none may enter the numbers."""
    bad = {"test_accuracy": [0.1, 0.1, 0.1], "val_accuracy": [0.1, 0.1, 0.1]}
    tags = run_tags(parent, "fa", "final", (0.095, 0), **{CHOSEN_TAG: "1", SUPERSEDED_TAG: "true"})
    ids["superseded-final"] = log_run(client, experiment, "x", params_of("fa", 7, 0.095), bad, tags)
    tags = run_tags(parent, "dfa", "final", (0.003, 0), **{CHOSEN_TAG: "0"})
    ids["killed-final"] = log_run(client, experiment, "x", params_of("dfa", 7, 0.003), bad, tags, "KILLED")
    tags = run_tags(parent, "bp", "final", (0.001, 0.0001), **{CHOSEN_TAG: "0", PRUNED_TAG: "2"})
    ids["pruned-final"] = log_run(client, experiment, "x", params_of("bp", 15, 0.001, 0.0001), bad, tags)


def second_sweep_of_the_same_name(client, experiment, ids) -> None:
    """A later sweep named tune-rules: two cases, three shared seeds (a paired t-test, no Holm)."""
    parent = ids["search2"] = parent_run(client, experiment, "tune-rules", SWEEP_FILE, start=5000)
    for case, accuracies in (("fa", [0.90, 0.92, 0.91]), ("dfa", [0.88, 0.89, 0.885])):
        tags = run_tags(parent, case, "search", (0.01, 0), **{NUMBER_TAG: "0"})
        log_run(client, experiment, "s", params_of(case, 0, 0.01), {"val_accuracy": [0.9]}, tags)
        for seed, accuracy in enumerate(accuracies, 1):
            tags = run_tags(parent, case, "final", (0.01, 0), **{CHOSEN_TAG: "0"})
            log_run(client, experiment, "f", params_of(case, seed, 0.01), {"test_accuracy": [accuracy]}, tags)


def grid_sweep(client, experiment, ids) -> None:
    parent = ids["grid"] = parent_run(client, experiment, "grid-rules")
    for rule, by_lr in GRID.items():
        for lr, (val, test) in by_lr.items():
            label = f"rule.type={rule}, optimizer.lr={lr}"
            for seed, noise in enumerate(NOISE[rule]):
                tags = {
                    "mlflow.parentRunId": parent,
                    "altlearn.kind": "trial",
                    "altlearn.sweep": parent,
                    "altlearn.group": label,
                    "altlearn.group_key": label,
                }
                curves = {
                    "val_accuracy": [val - 0.1, val + noise],
                    "test_accuracy": [test - 0.1, test - noise],
                }
                ids.setdefault(label, []).append(
                    log_run(client, experiment, label, params_of(rule, seed, lr), curves, tags)
                )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuning")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("tuning", artifact_location=(folder / "artifacts").as_uri())
    ids: dict = {}
    search_sweep(client, experiment, ids)
    grid_sweep(client, experiment, ids)
    second_sweep_of_the_same_name(client, experiment, ids)
    return {"uri": uri, "client": client, "ids": ids, "folder": folder}


@pytest.fixture(scope="module")
def document(store):
    return compare_json(store["uri"], "--sweep", store["ids"]["search"], "--no-log")


def last(client, run_id: str, key: str) -> float:
    return max(client.get_metric_history(run_id, key), key=lambda m: m.step).value


# ------------------------------------------------------------------------------ the search's choice


def test_the_chosen_configuration_is_the_best_objective_among_complete_search_trials(store, document):
    client, ids = store["client"], store["ids"]
    cases = {case["case"]: case for case in document["tuning"]["cases"]}
    assert set(cases) == {"rule.type=fa", "rule.type=dfa", "rule.type=bp"}
    for rule, trials in SEARCH.items():
        # straight from MLflow: the FINISHED search runs of the case that were not superseded
        complete = {
            number: last(client, ids[f"{rule}-search-{number}"], "val_accuracy")
            for number, *_, state, _ in trials
            if state == "FINISHED"
        }
        best = max(complete, key=lambda n: (complete[n], -n))
        case = cases[f"rule.type={rule}"]
        assert case["chosen_trial"] == best == CHOSEN[rule]
        assert case["objective_value"] == pytest.approx(complete[best])
        assert case["objective_rank"] == 1
        assert (case["candidates"], case["complete"]) == (5, len(complete))
        assert case["pruned"] == sum(t[3] == "PRUNED" for t in trials)
        assert case["failed"] == sum(t[3] == "FAILED" for t in trials)
        # the cost: every search trial's epochs and epoch seconds (the superseded run is not one)
        assert case["trial_epochs"] == sum(len(t[4]) for t in trials)
        assert case["cpu_seconds"] == pytest.approx(0.5 * case["trial_epochs"])
        assert {t["number"] for t in case["trials"]} == set(range(5))
    # the superseded search trial (val_accuracy 0.99) was never a candidate
    assert all(ids[f"{r}-superseded-search"] not in json.dumps(document) for r in SEARCH)


def test_json_gives_the_chosen_values_under_their_spec_paths(document):
    cases = {case["case"]: case for case in document["tuning"]["cases"]}
    assert cases["rule.type=fa"]["chosen"] == {"optimizer.lr": 0.095, "optimizer.weight_decay": 0}
    assert cases["rule.type=dfa"]["chosen"] == {"optimizer.lr": 0.003, "optimizer.weight_decay": 0}
    assert cases["rule.type=bp"]["chosen"] == {"optimizer.lr": 0.001, "optimizer.weight_decay": 0.0001}
    assert document["tuning"]["objective"] == "val_accuracy"
    assert cases["rule.type=fa"]["ranges"]["optimizer.lr"] == "log-uniform [1e-4, 0.1]"


def test_a_chosen_value_at_the_edge_of_its_range_is_warned_about(store, document):
    cases = {case["case"]: case for case in document["tuning"]["cases"]}
    assert list(cases["rule.type=fa"]["edges"]) == ["optimizer.lr"]
    assert "high edge of its range log-uniform [1e-4, 0.1]" in cases["rule.type=fa"]["edges"]["optimizer.lr"]
    assert cases["rule.type=dfa"]["edges"] == {} and cases["rule.type=bp"]["edges"] == {}  # choices: no edge
    result = compare(store["uri"], "--sweep", store["ids"]["search"], "--no-log", "--format", "md")
    assert result.exit_code == 0, result.output
    assert "warning: fa: optimizer.lr = 0.095 lies at the high edge" in result.stderr
    assert "| fa | lr 0.095 (at edge), weight_decay 0 |" in result.stdout


# ------------------------------------------------------------------------------ the finals' numbers


def finals_of(store, rule) -> list[float]:
    return [last(store["client"], run_id, "test_accuracy") for run_id in store["ids"][f"{rule}-finals"]]


def test_the_finals_statistics_match_mlflow_and_leave_out_every_run_that_does_not_count(store, document):
    ids = store["ids"]
    groups = {group["group"]: group for group in document["groups"]}
    assert [g["group"] for g in document["groups"]] == ["rule.type=bp", "rule.type=fa", "rule.type=dfa"]
    for rule in SEARCH:
        values = finals_of(store, rule)
        group = groups[f"rule.type={rule}"]
        assert sorted(group["run_ids"]) == sorted(ids[f"{rule}-finals"])  # the finals only
        n, mean, std = len(values), statistics.fmean(values), statistics.stdev(values)
        low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=std / math.sqrt(n))
        assert group["test_accuracy"]["mean"] == pytest.approx(mean)
        assert group["test_accuracy"]["std"] == pytest.approx(std)
        assert group["test_accuracy"]["ci95"] == pytest.approx([low, high])
    counted = {run_id for group in document["groups"] for run_id in group["run_ids"]}
    never = [ids["superseded-final"], ids["killed-final"], ids["pruned-final"]]
    never += [ids[f"{rule}-search-{t[0]}"] for rule, trials in SEARCH.items() for t in trials]
    assert counted.isdisjoint(never)
    not_counted = {entry["run_id"]: entry["reason"] for entry in document["not_counted"]}
    assert set(not_counted) == {ids["killed-final"], ids["pruned-final"]}  # search trials are evidence
    assert "pruned" in not_counted[ids["pruned-final"]]


def test_pairwise_tests_are_paired_by_seed_wilcoxon_or_welch_and_holm_corrected(store, document):
    pairs = {(p["a"], p["b"]): p for p in document["pairwise"]}
    fa, dfa, bp = (finals_of(store, rule) for rule in ("fa", "dfa", "bp"))
    # fa and dfa ran seeds 1-6: six pairs, so the Wilcoxon signed-rank test on the differences
    paired = pairs[("rule.type=fa", "rule.type=dfa")]
    differences = [a - b for a, b in zip(fa, dfa)]  # both listed in seed order
    assert (paired["pairs"], paired["test"]) == (6, "Wilcoxon signed-rank")
    assert paired["p_value"] == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert paired["difference"] == pytest.approx(statistics.fmean(differences))
    ci = stats.ttest_rel(fa, dfa).confidence_interval(0.95)
    assert paired["ci95"] == pytest.approx([ci.low, ci.high])
    # bp ran other seeds: Welch's t-test, and its interval with Welch-Satterthwaite's df
    for other, values in (("rule.type=fa", fa), ("rule.type=dfa", dfa)):
        welch = pairs[("rule.type=bp", other)]
        expected = stats.ttest_ind(bp, values, equal_var=False)
        assert (welch["pairs"], welch["test"]) == (0, "Welch t")
        assert welch["p_value"] == pytest.approx(expected.pvalue)
        assert welch["ci95"] == pytest.approx(list(expected.confidence_interval(0.95)))
        assert welch["difference"] == pytest.approx(statistics.fmean(bp) - statistics.fmean(values))
    # three cases: Holm over the three pairs
    assert document["correction"] == "holm"
    raw = [p["p_value"] for p in document["pairwise"]]
    assert [p["p_value_holm"] for p in document["pairwise"]] == pytest.approx(holm_by_hand(raw))
    groups = {g["group"]: g for g in document["groups"]}
    assert groups["rule.type=fa"]["p_value_vs_best"] == pytest.approx(
        pairs[("rule.type=bp", "rule.type=fa")]["p_value_holm"]
    )
    assert groups["rule.type=bp"]["p_value_note"] == "best"


def test_holm_on_a_textbook_example():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.01]) == pytest.approx([0.5, None, 0.02])


# ------------------------------------------------------------------------------ --sweep by name


def test_sweep_by_name_takes_the_latest_of_two_with_a_note(store):
    result = compare(store["uri"], "--sweep", "tune-rules", "--no-log", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["sweep_run_id"] == store["ids"]["search2"]
    assert (
        "2 sweeps are named 'tune-rules': compared the latest, run " + store["ids"]["search2"]
        in result.stderr
    )
    assert store["ids"]["search"] in result.stderr  # the other one, to compare it by its id
    # two cases with three shared seeds: a paired t-test, and nothing to correct
    (pair,) = document["pairwise"]
    fa, dfa = [0.90, 0.92, 0.91], [0.88, 0.89, 0.885]
    assert (pair["test"], pair["pairs"]) == ("paired t", 3)
    assert pair["p_value"] == pytest.approx(stats.ttest_rel(fa, dfa).pvalue)
    assert document["correction"] is None
    text = compare(store["uri"], "--sweep", "tune-rules", "--no-log", "--format", "md")
    assert "one test needs no correction for many comparisons (p (Holm): -)" in " ".join(text.stdout.split())
    grid = compare_json(store["uri"], "--sweep", "grid-rules", "--no-log")  # one of that name: no note
    assert grid["sweep_run_id"] == store["ids"]["grid"]
    assert not any("sweeps are named" in note for note in grid["notes"])


def test_an_unknown_sweep_name_lists_the_sweeps(store):
    result = compare(store["uri"], "--sweep", "tune-rulez")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no sweep of that name" in result.stderr and "'grid-rules', 'tune-rules'" in result.stderr


# ------------------------------------------------------------------------------ a grid, each at its best


def test_select_by_chooses_per_rule_on_validation_and_reports_test(store):
    document = compare_json(
        store["uri"], "--sweep", store["ids"]["grid"], "--no-log", "--select-by", "val_accuracy"
    )
    cases = {case["case"]: case for case in document["tuning"]["cases"]}
    assert set(cases) == {"rule.type=fa", "rule.type=dfa"}
    client = store["client"]
    for rule, by_lr in GRID.items():
        means = {
            lr: statistics.fmean(
                last(client, r, "val_accuracy") for r in store["ids"][f"rule.type={rule}, optimizer.lr={lr}"]
            )
            for lr in by_lr
        }
        best = max(means, key=means.get)
        case = cases[f"rule.type={rule}"]
        assert case["chosen"] == {"optimizer.lr": best}
        assert case["objective_value"] == pytest.approx(means[best])
        group = next(g for g in document["groups"] if g["group"] == case["group"])
        runs = store["ids"][f"rule.type={rule}, optimizer.lr={best}"]
        assert sorted(group["run_ids"]) == sorted(runs)
        tests = [last(client, r, "test_accuracy") for r in runs]
        assert group["test_accuracy"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert cases["rule.type=fa"]["chosen"] == {"optimizer.lr": 0.003}  # not 0.01, the best on test
    assert list(cases["rule.type=dfa"]["edges"]) == ["optimizer.lr"]  # the largest lr tried
    assert len(document["groups"]) == 2  # the chosen configurations only
    (pair,) = document["pairwise"]
    assert (pair["test"], pair["pairs"]) == ("paired t", 3)  # both rules ran seeds 0, 1, 2


def test_select_by_refuses_test_metrics_and_per_without_it(store):
    for args, message in (
        (["--select-by", "test_accuracy"], "choosing on the test set"),
        (["--per", "rule.type"], "give the metric with --select-by"),
        (["--select-by", "val_thing"], "does not say whether higher or lower is better"),
    ):
        result = compare(store["uri"], "--sweep", store["ids"]["grid"], "--no-log", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert message in result.stderr
    search = compare(
        store["uri"], "--sweep", store["ids"]["search"], "--no-log", "--select-by", "val_accuracy"
    )
    assert search.exit_code == 2 and "is a search" in search.stderr


# ------------------------------------------------------------------------------ the Optuna export


def test_the_exported_study_loads_in_optuna(store, tmp_path):
    optuna = pytest.importorskip("optuna")
    path = tmp_path / "study.db"
    for _ in range(2):  # written again: each study replaced, not doubled
        result = compare(
            store["uri"], "--sweep", store["ids"]["search"], "--no-log", "--export-study", str(path)
        )
        assert result.exit_code == 0, result.output
    assert f"optuna-dashboard sqlite:///{path}" in result.stderr
    storage = f"sqlite:///{path}"
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert names == [f"tune-rules: rule.type={rule}" for rule in ("bp", "dfa", "fa")]
    study = optuna.load_study(study_name="tune-rules: rule.type=fa", storage=storage)
    states = [trial.state.name for trial in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert study.direction.name == "MAXIMIZE"
    assert study.best_trial.params == {"optimizer.lr": 0.095, "optimizer.weight_decay": 0}
    assert study.best_trial.value == pytest.approx(0.93)
    assert study.best_trial.intermediate_values == pytest.approx({1: 0.85, 2: 0.90, 3: 0.93})
    assert study.best_trial.user_attrs["mlflow_run_id"] == store["ids"]["fa-search-1"]
    lr = study.best_trial.distributions["optimizer.lr"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
    assert study.trials[2].intermediate_values == {1: 0.5}  # the pruned trial's last report


def test_export_study_needs_a_search(store, tmp_path):
    result = compare(
        store["uri"], "--sweep", store["ids"]["grid"], "--no-log", "--export-study", str(tmp_path / "s.db")
    )
    assert result.exit_code == 2 and "a sweep with a search" in result.stderr
    result = compare(store["uri"], "--sweep", store["ids"]["search"], "--export-study", str(tmp_path))
    assert result.exit_code == 2 and "give a file in an existing folder" in result.stderr


# ------------------------------------------------------------------------------ files for a paper


@pytest.fixture(scope="module")
def written(store):
    out = store["folder"] / "report"
    result = compare(store["uri"], "--sweep", store["ids"]["search"], "--no-log", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_figures_are_written_as_png_svg_and_pdf(written):
    names = ["learning_curves", "test_error", "search_landscape", "optimisation_history"]
    for name in names:
        assert (written / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
        svg = (written / f"{name}.svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg, name
        assert (written / f"{name}.pdf").read_bytes().startswith(b"%PDF-"), name
    assert not (written / "accuracy_vs_lr.png").exists()  # one configuration per case
    html = (written / "report.html").read_text()
    assert html.count("<img ") == len(names)
    assert 'id="at-best"' in html and 'id="pairwise"' in html and 'id="setup"' in html


def tabulars(tex: str) -> list[tuple[str, list[str]]]:
    """(column spec, rows) of each tabular, rows split at \\\\ between the rules."""
    found = []
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}(.*?)\\end\{tabular\}", tex, re.DOTALL):
        assert body.strip().startswith(r"\toprule") and body.strip().endswith(r"\bottomrule")
        assert body.count(r"\midrule") == 1
        rows = [
            r.strip()
            for r in re.split(
                r"\\\\", body.replace(r"\toprule", "").replace(r"\midrule", "").replace(r"\bottomrule", "")
            )
            if r.strip()
        ]
        found.append((spec, rows))
    return found


def unescaped(tex: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), tex))


def test_the_latex_table_is_booktabs_with_a_column_per_cell(written):
    tex = (written / "table.tex").read_text()
    assert r"\usepackage{booktabs}" in tex
    found = tabulars(tex)
    assert len(found) == 2  # each at its best, and the pairwise tests
    for spec, rows in found:
        for row in rows:
            assert unescaped(row, "&") == len(spec) - 1, row
    assert unescaped(tex, "{") == unescaped(tex, "}")
    assert "fa & lr 0.095 (at edge), weight\\_decay 0" in tex
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 2


def test_latex_escapes_special_characters():
    assert escape("lr_1e-3 & 50% ~{x}^$#\\") == (
        r"lr\_1e-3 \& 50\% \textasciitilde{}\{x\}\textasciicircum{}\$\#\textbackslash{}"
    )
    assert escape("evil\x1b[2J") == r"evil\textbackslash{}x1b[2J"  # a control character, shown


def test_the_report_has_a_set_up_block_read_from_the_runs(written):
    markdown = (written / "report.md").read_text()
    setup = dict(re.findall(r"^- \*\*(.+?)\*\*: (.*)$", markdown, re.MULTILINE))
    assert setup["data"].startswith("digits")
    assert setup["split"] == "val_size 100"
    assert setup["training"] == "epochs 3"
    assert "lr searched: log-uniform [1e-4, 0.1]" in setup["optimizer"]
    assert "optimizer.weight_decay choice {0, 1e-5, 1e-4}" in setup["search space"]
    assert setup["budget"].startswith("search trials per case: bp 5 (2 pruned, ")
    assert setup["seeds"] == "search 0; finals (fresh) 1, 2, 3, 4, 5, 6, 11, 12, 13, 14"
    assert setup["software"] == "altlearn 0.1.0; torch 2.3.0"
    assert "![The search: objective against each searched value](search_landscape.png)" in markdown


# ------------------------------------------------------------------------------ names and colours


def test_labels_read_as_a_paper_writes_them():
    assert readable("rule.type=fa, optimizer.lr=0.001") == "fa, lr 1e-3"
    assert readable("rule.type=dfa, optimizer.betas=[0.9, 0.999]") == "dfa, betas [0.9, 0.999]"
    assert readable("rule.lr=0.5, optimizer.lr=0.0012") == "rule.lr 0.5, optimizer.lr 1.2e-3"
    assert readable("my own label") == "my own label"


def test_booleans_and_none_read_as_yaml_spells_them_as_a_user_wrote_them():
    # MLflow keeps str(True); a reader wrote `fused: true` and passes -s optimizer.fused=true
    assert (
        readable("rule.type=bp, optimizer.fused=True, data.normalize=False")
        == "bp, fused true, normalize false"
    )
    assert values_text({"optimizer.fused": False, "train.clip_grad_norm": None, "optimizer.lr": 0.0012}) == (
        "fused false, clip_grad_norm null, lr 1.2e-3"
    )
    assert value_text("None") == "null" and value_text("Truest") == "Truest"


def test_every_rule_keeps_one_colour_in_every_figure(store):
    from altlearn.compare import compare as compare_runs
    from altlearn.compare.figures import error_bars, learning_curves
    from altlearn.compare.search_figures import optimisation_history, search_landscape

    assert rule_colour("bp") == "#1f77b4" and rule_colour("fa") == "#ff7f0e"
    assert rule_colour("my-plugin-rule") == rule_colour("my-plugin-rule")
    report: Report = compare_runs(store["uri"], sweep=store["ids"]["search"], log=False)
    expected = [rule_colour(stats.group.runs[0].rule) for stats in report.groups]
    curves = learning_curves(report).axes[0]
    assert [line.get_color() for line in curves.get_lines()] == expected
    bars = error_bars(report).axes[0].patches
    assert [to_hex(bar.get_facecolor()) for bar in bars] == expected
    colours = {case.label: rule_colour(case.rule) for case in report.tuning.cases}
    for figure in (search_landscape(report), optimisation_history(report)):
        titled = [ax for ax in figure.axes if ax.get_visible()]
        assert len(titled) >= len(colours)
        for ax in titled:  # "fa: optimizer.lr" in the landscape, "fa" in the history
            label = ax.get_title().split(":")[0]
            assert to_hex(ax.title.get_color()) == colours[label]
    # the landscape spans each searched range, its ends dashed, wherever the trials fell
    panels = [
        ax for ax in search_landscape(report).axes if ax.get_visible() and ax.get_title().endswith("lr")
    ]
    assert panels
    for ax in panels:
        low, high = ax.get_xlim()
        assert low < 1.0e-4 and 1.0e-1 < high < 0.2 and ax.get_xscale() == "log"
        assert {line.get_xdata()[0] for line in ax.get_lines()} >= {1.0e-4, 1.0e-1}


def test_alignment_legends_name_layers_as_the_spec_builds_them():
    params = {
        "network.layers.1.type": "linear",
        "network.layers.3.type": "linear",
        "network.layers.5.type": "linear",
    }
    assert layer_names(["layer1", "layer3", "layer5"], params) == {
        "layer1": "hidden 1",
        "layer3": "hidden 2",
        "layer5": "output",
    }
    # a rule that measured its hidden layers only has none called output
    assert layer_names(["layer1", "layer3"], params) == {"layer1": "hidden 1", "layer3": "hidden 2"}
    assert layer_names(["layer10", "layer2"]) == {"layer2": "hidden 1", "layer10": "output"}


def test_an_experiments_comparison_leaves_out_search_trials_and_superseded_runs(store):
    ids = store["ids"]
    document = compare_json(store["uri"], "--experiment", "tuning", "--by", "rule.type")
    counted = {run_id for group in document["groups"] for run_id in group["run_ids"]}
    searched = [ids[f"{rule}-search-{t[0]}"] for rule, trials in SEARCH.items() for t in trials]
    assert counted.isdisjoint(searched + [ids["superseded-final"], ids["pruned-final"]])
    assert set(ids["fa-finals"]) <= counted
    assert any(note.startswith("20 search trials left out") for note in document["notes"])
    reasons = {entry["run_id"]: entry["reason"] for entry in document["not_counted"]}
    assert "altlearn.superseded" in reasons[ids["superseded-final"]]


def test_a_cases_own_search_axes_join_the_shared_ones():
    from altlearn.compare.search_file import parse_plan

    text = yaml.safe_dump(
        {
            **SWEEP_FILE,
            "search": {**SWEEP_FILE["search"], "objective": "val_loss"},
            "cases": [
                {
                    "label": "pc",
                    "rule.type": "pc",
                    "search": {"space": {"rule.inference_lr": {"uniform": [0.01, 0.5]}}},
                },
                {"rule.type": "ff", "search": {"space": {"rule.threshold": {"int_uniform": [1, 10]}}}},
                {"rule.type": "bp"},
            ],
        }
    )
    plan = parse_plan(text)
    assert (plan.objective, plan.direction, plan.trials) == ("val_loss", "minimize", 5)
    assert set(plan.axes_for("pc", {})) == {"optimizer.lr", "optimizer.weight_decay", "rule.inference_lr"}
    # an unlabelled case is found by its overrides, as its runs' params hold them
    ff = plan.axes_for("rule.type=ff", {"rule.type": "ff"})
    assert ff["rule.threshold"].at_edge(10) == "high" and ff["rule.threshold"].at_edge(5) is None
    assert set(plan.axes_for("rule.type=bp", {"rule.type": "bp"})) == {
        "optimizer.lr",
        "optimizer.weight_decay",
    }
    assert parse_plan("name: grid\ngrid: {optimizer.lr: [0.1]}\n") is None
