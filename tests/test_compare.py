"""`altlearn compare` on real digits runs: the table's numbers against MLflow's own metrics, the
files it writes, the artifacts on a sweep's parent, and grouping."""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import math
import re
import shutil
import statistics
from pathlib import Path

import matplotlib.image
import mlflow
import pytest
from compare_runs import compare, compare_json, final_value, holm_by_hand, tag_as_sweep, train, write_spec
from scipy import stats

from altlearn.compare import compare_sweep
from altlearn.compare.labels import readable

FORMATS = ("png", "svg", "pdf")  # every figure is written in each

EXPERIMENT = "compare"
GROUPS = {  # label (as the default grouping writes it) -> (overrides, seeds)
    "rule.type=bp, optimizer.lr=0.003": (("rule.type=bp", "optimizer.lr=0.003"), (0, 1, 2)),
    "rule.type=dfa, optimizer.lr=0.003": (("rule.type=dfa", "optimizer.lr=0.003"), (0, 1, 2)),
    "rule.type=dfa, optimizer.lr=0.01": (("rule.type=dfa", "optimizer.lr=0.01"), (0, 1)),
}
SWEEP_GROUPS = ("rule.type=bp, optimizer.lr=0.003", "rule.type=dfa, optimizer.lr=0.003")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Eight real runs in two rules and two learning rates, a sweep over six of them, and a run that
    is still RUNNING (made with the client, as a run another process is training would look)."""
    folder = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    spec_path = write_spec(folder)
    runs = {
        label: [train(uri, spec_path, EXPERIMENT, seed, *overrides) for seed in seeds]
        for label, (overrides, seeds) in GROUPS.items()
    }
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parent = tag_as_sweep(client, experiment_id, {label: runs[label] for label in SWEEP_GROUPS})
    running = client.create_run(experiment_id, run_name="still-training")
    for key, value in client.get_run(runs[SWEEP_GROUPS[0]][0]).data.params.items():
        client.log_param(running.info.run_id, key, "3" if key == "seed" else value)
    client.log_metric(running.info.run_id, "test_accuracy", 0.5, step=1)
    return {
        "uri": uri,
        "client": client,
        "runs": runs,
        "parent": parent,
        "running": running.info.run_id,
        "folder": folder,
    }


def expected_row(client, run_ids: list[str]) -> dict:
    """The table's numbers for a group, computed here straight from the MLflow metric histories."""
    accuracies = [final_value(client, r, "test_accuracy") for r in run_ids]
    best_vals = [max(m.value for m in client.get_metric_history(r, "val_accuracy")) for r in run_ids]
    n, mean, std = len(accuracies), statistics.fmean(accuracies), statistics.stdev(accuracies)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=std / math.sqrt(n))
    low, high = max(low, 0.0), min(high, 1.0)  # fractions: the interval is clipped to [0, 1]
    seconds = [
        statistics.fmean(m.value for m in client.get_metric_history(r, "epoch_seconds")) for r in run_ids
    ]
    return {
        "accuracies": accuracies,
        "mean": mean,
        "std": std,
        "ci": (low, high),
        "best_val": statistics.fmean(best_vals),
        "seconds_per_epoch": statistics.fmean(seconds),
    }


def test_table_numbers_are_those_of_the_mlflow_metrics(store):
    document = compare_json(store["uri"], "--experiment", EXPERIMENT)
    groups = {g["group"]: g for g in document["groups"]}
    assert set(groups) == set(GROUPS)
    for label, run_ids in store["runs"].items():
        row, expected = groups[label], expected_row(store["client"], run_ids)
        assert sorted(row["run_ids"]) == sorted(run_ids)
        assert row["n"] == len(run_ids) and row["epochs"] == [2] * len(run_ids)
        assert sorted(row["test_accuracy"]["values"]) == pytest.approx(sorted(expected["accuracies"]))
        assert row["test_accuracy"]["mean"] == pytest.approx(expected["mean"])
        assert row["test_accuracy"]["std"] == pytest.approx(expected["std"])
        assert row["test_accuracy"]["ci95"] == pytest.approx(list(expected["ci"]))
        assert row["test_error"]["mean"] == pytest.approx(1 - expected["mean"])
        error_low, error_high = stats.t.interval(
            0.95, row["n"] - 1, loc=1 - expected["mean"], scale=expected["std"] / math.sqrt(row["n"])
        )
        assert row["test_error"]["ci95"] == pytest.approx([max(error_low, 0.0), min(error_high, 1.0)])
        assert row["best_val_accuracy"]["mean"] == pytest.approx(expected["best_val"])
        assert row["seconds_per_epoch"] == pytest.approx(expected["seconds_per_epoch"])
    means = [g["test_accuracy"]["mean"] for g in document["groups"]]
    assert means == sorted(means, reverse=True)  # best first
    best = document["groups"][0]
    assert best["p_value_vs_best"] is None and best["p_value_note"] == "best"


def test_every_pair_is_tested_paired_by_seed_where_the_seeds_match_and_holm_corrected(store):
    """Groups that ran the same seeds are compared seed by seed (a paired t-test), the others by
    Welch's test; three groups make three pairs, and each p vs best is its pair's Holm-corrected p."""
    document = compare_json(store["uri"], "--experiment", EXPERIMENT)
    groups = document["groups"]
    by_seed = [dict(zip(g["seeds"], g["test_accuracy"]["values"])) for g in groups]
    expected, tests = [], []
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = by_seed[i], by_seed[j]
            if set(a) == set(b):
                seeds = sorted(a)
                expected.append(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
                tests.append("paired t")
            else:
                expected.append(stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False).pvalue)
                tests.append("Welch t")
    pairs = document["pairwise"]
    assert [(p["a"], p["b"]) for p in pairs] == [
        (groups[i]["group"], groups[j]["group"]) for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    assert [p["test"] for p in pairs] == tests and "paired t" in tests and "Welch t" in tests
    assert [p["p_value"] for p in pairs] == pytest.approx(expected)
    assert document["correction"] == "holm"
    holm = holm_by_hand(expected)
    assert [p["p_value_holm"] for p in pairs] == pytest.approx(holm)
    assert [g["p_value_vs_best"] for g in groups[1:]] == pytest.approx(holm[:2])
    markdown = compare(store["uri"], "--experiment", EXPERIMENT, "--format", "md").stdout
    assert "**Pairwise tests**" in markdown and "**Final test accuracy per group (best first)**" in markdown


def test_running_runs_and_the_sweep_parent_are_listed_not_counted(store):
    document = compare_json(store["uri"], "--experiment", EXPERIMENT)
    (running,) = document["not_counted"]
    assert running["run_id"] == store["running"] and running["status"] == "RUNNING"
    assert "still RUNNING (1 of 2 epochs logged)" in running["reason"]
    assert any(store["parent"] in note and "--sweep" in note for note in document["notes"])
    result = compare(store["uri"], "--experiment", EXPERIMENT)  # the rich table
    assert result.exit_code == 0, result.output
    assert "dfa, lr 0.01" in result.stdout  # the label as a reader writes it
    assert f"not counted: run {store['running']} (still-training) is still RUNNING" in result.stderr


def test_markdown_and_csv_carry_the_same_numbers(store):
    document = compare_json(store["uri"], "--experiment", EXPERIMENT)
    markdown = compare(store["uri"], "--experiment", EXPERIMENT, "--format", "md").stdout
    rows = list(
        csv.DictReader(
            io.StringIO(compare(store["uri"], "--experiment", EXPERIMENT, "--format", "csv").stdout)
        )
    )
    assert [r["group"] for r in rows] == [g["group"] for g in document["groups"]]
    for row, group in zip(rows, document["groups"]):
        accuracy = group["test_accuracy"]
        assert float(row["test_accuracy_mean"]) == pytest.approx(accuracy["mean"])
        assert float(row["test_accuracy_ci95_low"]) == pytest.approx(accuracy["ci95"][0])
        cell = f"| {readable(group['group'])} | {group['n']} | {100 * accuracy['mean']:.2f} ± {100 * accuracy['std']:.2f} |"
        assert cell in markdown
    lines = markdown.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| group | seeds |"))
    assert lines[header + 1].startswith("| --- | ---: |")


def test_out_writes_the_table_figures_and_a_self_contained_report(store):
    out = store["folder"] / "report"
    result = compare(store["uri"], "--experiment", EXPERIMENT, "--out", str(out))
    assert result.exit_code == 0, result.output
    figures = ["learning_curves.png", "alignment.png", "accuracy_vs_lr.png", "test_error.png"]
    for name in figures:
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
    table = (out / "table.md").read_text()  # the groups, then the pairwise tests, each titled
    assert table.startswith("**Final test accuracy per group (best first)**") and "\n| group |" in table
    assert (
        compare_json(store["uri"], "--experiment", EXPERIMENT)["groups"][0]["group"]
        in (out / "table.json").read_text()
    )
    html = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert [base64.b64decode(i) for i in images] == [(out / name).read_bytes() for name in figures]
    assert not re.search(r"(src|href)=\"(https?:|//)", html)  # nothing fetched from the network
    assert "still RUNNING" in html and 'id="groups"' in html and 'id="pairwise"' in html


def test_compare_sweep_logs_its_report_to_the_parent(store, tmp_path):
    report = compare_sweep(store["uri"], store["parent"], out_dir=tmp_path)
    # labels from the trials' altlearn.group tags, three seeds each, best first
    assert {g.label: g.n for g in report.groups} == dict.fromkeys(SWEEP_GROUPS, 3)
    assert report.groups[0].test_accuracy.mean >= report.groups[1].test_accuracy.mean
    logged = {a.path for a in store["client"].list_artifacts(store["parent"], "compare")}
    figures = {f"{name}.{ext}" for name in ("learning_curves", "alignment", "test_error") for ext in FORMATS}
    expected = {"report.html", "report.md", "table.md", "table.csv", "table.json", "table.tex", *figures}
    assert logged == {f"compare/{name}" for name in expected}  # one lr only: no accuracy-vs-lr figure
    assert not (tmp_path / "accuracy_vs_lr.png").exists()
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=store["parent"],
        artifact_path="compare/table.md",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=store["uri"],
    )
    assert open(downloaded).read() == (tmp_path / "table.md").read_text()


def test_compare_sweep_on_the_command_line_without_out(store):
    result = compare(store["uri"], "--sweep", store["parent"], "--format", "md")
    assert result.exit_code == 0, result.output
    assert f"logged: the report to run {store['parent']}" in result.stderr
    assert "rule.type=dfa, optimizer.lr=0.01" not in result.stdout  # not a trial of the sweep
    narrowed = compare_json(
        store["uri"], "--sweep", store["parent"], "--filter", "params.`rule.type` = 'dfa'"
    )
    assert [g["group"] for g in narrowed["groups"]] == [SWEEP_GROUPS[1]]


def test_compare_sweep_with_no_log_writes_nothing_to_the_store(store, tmp_path):
    import hashlib

    def state():  # the database's bytes and every artifact file the store holds
        db = hashlib.sha256((store["folder"] / "mlflow.db").read_bytes()).hexdigest()
        files = sorted(p for p in (store["folder"] / "mlartifacts").rglob("*") if p.is_file())
        beside = sorted(p.name for p in store["folder"].iterdir())  # no lock file left there either
        return db, {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}, beside

    (store["folder"] / "mlflow.db.lock").unlink(missing_ok=True)  # left by the trainings
    before = state()
    result = compare(store["uri"], "--sweep", store["parent"], "--no-log", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "logged:" not in result.stderr and (tmp_path / "r" / "report.html").exists()
    assert state() == before


def test_by_groups_on_the_named_params_only(store):
    document = compare_json(store["uri"], "--experiment", EXPERIMENT, "--by", "rule.type")
    assert {g["group"]: g["n"] for g in document["groups"]} == {"rule.type=bp": 3, "rule.type=dfa": 5}
    assert document["grouped_by"] == ["rule.type"]


SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
# What the page shows once loaded, as the browser decoded it: a broken image has naturalWidth 0.
IMAGES = "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)])"
GROUP_CELLS = "[...document.querySelectorAll('#groups tbody tr')].map(r => r.cells[0].innerText)"


def headless_chromium(profile: Path):
    """The DevTools-driven Chromium of docs/screenshots/cdp.py (the MLflow UI script uses it too)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): report not opened")
    spec = importlib.util.spec_from_file_location("screenshots_cdp", SCREENSHOTS / "cdp.py")
    cdp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cdp)
    return cdp.Browser(executable, str(profile), 1400, 1000)


def test_report_renders_in_headless_chromium(store, tmp_path):
    out = tmp_path / "report"
    assert compare(store["uri"], "--experiment", EXPERIMENT, "--out", str(out)).exit_code == 0
    browser = headless_chromium(tmp_path / "profile")  # a fresh profile
    try:
        browser.call("Page.navigate", session=True, url=(out / "report.html").as_uri())
        assert browser.wait_for("document.readyState === 'complete'", seconds=60)
        images = browser.evaluate(IMAGES)
        cells = browser.evaluate(GROUP_CELLS)
        shot = browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)
    finally:
        browser.close()
    assert len(images) == 4  # every figure, each decoded by the browser (not broken)
    assert all(done and w > 100 and h > 100 and src == "data:image/png;base64," for done, w, h, src in images)
    assert sorted(cells) == sorted(map(readable, GROUPS))  # every group's row rendered in the table
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(shot["data"])), format="png")
    assert pixels.shape[0] > 2000 and pixels.shape[1] == 1400  # the whole page, figures below the table
    assert pixels.std() > 0.05  # not a blank page
