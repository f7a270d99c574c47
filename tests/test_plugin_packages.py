"""Real plugin packages, pip-installed into a temporary folder put on the path (never into the
environment running the tests): listed by `altlearn plugins`, used by specs (validated like
built-ins, versions tagged on the MLflow run), and isolated when broken or clashing. The packages
live in tests/plugin_packages/ (see its README) and plugins/altlearn-signsym.

The README's test command installs altlearn-signsym; if it is missing, the fixture puts it in the
temporary folder too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mlflow
import pytest
import yaml
from click.testing import CliRunner

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins
from altlearn.registry.registry import PLUGIN_SELECTION_ENV

ROOT = Path(__file__).resolve().parents[1]
TEST_PACKAGES = Path(__file__).resolve().parent / "plugin_packages"
SIGNSYM = ROOT / "plugins" / "altlearn-signsym"
ALTLEARN = Path(sys.executable).parent / "altlearn"  # the console script of this environment

COMPONENTS, BROKEN, DUPE = "altlearn-testcomponents", "altlearn-broken", "altlearn-dupe"
ALL_BUT_DUPE = f"altlearn-signsym,{COMPONENTS},{BROKEN}"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Install the test packages (no deps) into a temporary folder and put it on the path of this
    process and of the `altlearn` subprocesses, for this module only."""
    folders = [TEST_PACKAGES / name for name in (COMPONENTS, BROKEN, DUPE)]
    if installed_version("altlearn-signsym") is None:
        folders.append(SIGNSYM)
    target = tmp_path_factory.mktemp("site")
    # Built from copies: building writes build/ and *.egg-info folders beside the sources.
    copies = tmp_path_factory.mktemp("sources")
    sources = [
        shutil.copytree(f, copies / f.name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        for f in folders
    ]
    # Without build isolation pip needs no index, but needs setuptools here; otherwise let it fetch.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    # --target puts each package with its metadata there: entry points are found wherever it is on the path.
    pip("install", "--no-deps", "--no-compile", *isolation, "--target", str(target), *map(str, sources))
    sys.path.insert(0, str(target))
    old_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), old_pythonpath]))
    importlib.invalidate_caches()
    plugins.reset_registry()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        if old_pythonpath is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old_pythonpath
        for module in [
            m for m in sys.modules if m.split(".")[0] in {f.name.replace("-", "_") for f in folders}
        ]:
            del sys.modules[module]  # their files are gone with the folder
        importlib.invalidate_caches()
        plugins.reset_registry()


@pytest.fixture
def selection(monkeypatch, installed):
    """``selection("a,b")`` sets ALTLEARN_PLUGINS for this process (None: unset, all load)."""

    def choose(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(PLUGIN_SELECTION_ENV, raising=False)
        else:
            monkeypatch.setenv(PLUGIN_SELECTION_ENV, value)
        plugins.reset_registry()

    yield choose
    plugins.reset_registry()


def altlearn(*args: str, plugins_env: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != PLUGIN_SELECTION_ENV}
    if plugins_env is not None:
        env[PLUGIN_SELECTION_ENV] = plugins_env
    return subprocess.run([str(ALTLEARN), *args], capture_output=True, text=True, env=env, timeout=120)


def listing(stdout: str) -> dict[str, list[str]]:
    """`altlearn plugins` output -> {component name: [name, package, version, ...]}."""
    return {line.split()[0]: line.split() for line in stdout.splitlines() if line.startswith("  ")}


# ------------------------------------------------------------------------------ the command line


def test_plugins_command_lists_packages_and_reports_broken_and_duplicate_ones(installed):
    result = altlearn("plugins")
    assert result.returncode == 0, result.stderr
    rows = listing(result.stdout)
    assert rows["signsym_brsf"][1:3] == ["altlearn-signsym", installed_version("altlearn-signsym")]
    assert rows["blobs"][1:3] == [COMPONENTS, "0.3.1"]  # a plugin's data set
    assert rows["scale"][1:3] == [COMPONENTS, "0.3.1"]  # a plugin's layer
    assert rows["signsgd"][1:3] == [COMPONENTS, "0.3.1"]  # a plugin's optimizer
    assert "optimizers" in result.stdout.splitlines()
    assert rows["dupe_only"][1:3] == [DUPE, "1.0.0"]  # the clashing package's other names still work
    assert rows["bp"][1] == "altlearn"
    # The broken package is named with its version and its errors; nothing stops, even sys.exit.
    broken = {
        line.split("'")[1]: line
        for line in result.stdout.splitlines()
        if line.startswith(f"  {BROKEN} 0.0.7 (entry point ")
    }
    assert set(broken) == {"broken", "broken_exit", "broken_hard_exit"}
    assert "ImportError" in broken["broken"] and "not-installed-anywhere" in broken["broken"]
    assert "SystemExit: 3" in broken["broken_exit"]
    assert "ProcessExitCalled: the plugin called os._exit(4)" in broken["broken_hard_exit"]
    assert "exit_layer" not in rows  # registered just before the exit: not kept
    # A name two plugins register is listed under each qualified name, with a conflict line below.
    assert "signsym" not in rows
    assert rows["altlearn-signsym:signsym"][1] == "altlearn-signsym"
    assert rows[f"{DUPE}:signsym"][1:3] == [DUPE, "1.0.0"]
    conflict = next(line for line in result.stdout.splitlines() if line.startswith("conflict"))
    assert conflict == (
        f"conflict: rule 'signsym' is registered by {DUPE} and altlearn-signsym: "
        f"write {DUPE}:signsym or altlearn-signsym:signsym"
    )
    # A plugin taking a built-in's name: the plain name stays altlearn's, with a note.
    assert rows["bp"][1] == "altlearn" and rows[f"{DUPE}:bp"][1] == DUPE
    note = next(line for line in result.stdout.splitlines() if line.startswith("note"))
    assert f"rule 'bp' is registered by altlearn and {DUPE}: 'bp' means altlearn's own" in note
    assert "Traceback" not in result.stdout + result.stderr

    verbose = altlearn("plugins", "--verbose")
    assert verbose.returncode == 0 and "Traceback" in verbose.stdout  # the broken plugin's traceback

    help_text = altlearn("--help")
    assert help_text.returncode == 0 and "altlearn plugins" in help_text.stdout


def test_plugin_selection_env_chooses_what_loads(installed):
    nothing = altlearn("plugins", plugins_env="none")
    assert nothing.returncode == 0
    rows = listing(nothing.stdout)
    assert "bp" in rows and "mnist" in rows  # built-ins always load
    assert not {"signsym", "blobs", "dupe_only"} & set(rows)
    assert "broken plugins" not in nothing.stdout and "conflict" not in nothing.stdout
    assert "note:" not in nothing.stdout
    left_out = next(line for line in nothing.stdout.splitlines() if line.startswith("left out by"))
    assert BROKEN in left_out and "altlearn-signsym" in left_out  # said once each, not imported
    assert left_out.count(BROKEN) == 1

    # by distribution name (either spelling) or entry-point name ("testcomponents")
    chosen = altlearn("plugins", plugins_env="altlearn_signsym, testcomponents")
    assert chosen.returncode == 0
    rows = listing(chosen.stdout)
    assert rows["signsym"][1] == "altlearn-signsym" and "blobs" in rows
    assert "dupe_only" not in rows
    assert "broken plugins" not in chosen.stdout and "conflict" not in chosen.stdout
    assert "names no installed plugin" not in chosen.stdout

    typo = altlearn("plugins", plugins_env="altlearn-signsmy")
    assert "warning: ALTLEARN_PLUGINS names no installed plugin: altlearn-signsmy" in typo.stdout


# --------------------------------------------------------------------------------- validation

BLOBS_SPEC = {
    "name": "blobs-scale",
    "seed": 0,
    "data": {"type": "blobs", "n_train": 240, "noise": 0.1, "batch_size": 32},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "scale", "factor": 2.0},
            {"type": "linear", "out_features": 3},
        ]
    },
    "rule": {"type": "bp"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 2, "device": "cpu"},
    "tracking": {"experiment": "plugin-packages", "log_model": False},
}


def validate(raw: dict):
    from altlearn.spec.load import validate as validate_spec

    return validate_spec(raw)


def problems_of(raw: dict) -> dict[str, str]:
    from altlearn.errors import SpecError

    with pytest.raises(SpecError) as info:
        validate(raw)
    return {p.path: p.message for p in info.value.problems}


def test_plugin_dataset_and_layer_options_are_validated_like_builtin_ones(selection):
    selection(ALL_BUT_DUPE)
    spec = validate(BLOBS_SPEC)
    assert spec.data.params.n_train == 240 and spec.layers[1].params.factor == 2.0
    assert spec.packages == {COMPONENTS: "0.3.1"}

    typos = {
        **BLOBS_SPEC,
        "data": {"type": "blobs", "n_trian": 240, "batch_size": 32},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "scale", "factr": 2.0},
                {"type": "linear", "out_features": 3},
            ]
        },
    }
    problems = problems_of(typos)
    assert problems["data.n_trian"].startswith(
        "'n_trian' is not an option of data set 'blobs'; did you mean 'n_train'? its options are: "
    )
    assert problems["network.layers[1].factr"].startswith(
        "'factr' is not an option of layer 'scale'; did you mean 'factor'? its options are: factor"
    )
    assert problems["network.layers[1].factor"] == "required by layer 'scale' but missing"

    # A bad value: the plugin's own bounds, at the plugin option's path, as for a built-in.
    bad = {
        **BLOBS_SPEC,
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "scale", "factor": -1},
                {"type": "linear", "out_features": 3},
            ]
        },
    }
    assert "greater than 0" in problems_of(bad)["network.layers[1].factor"]
    builtin = {
        **BLOBS_SPEC,
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "dropout", "pp": 0.1},
                {"type": "linear", "out_features": 3},
            ]
        },
    }
    assert problems_of(builtin)["network.layers[1].pp"].startswith(
        "'pp' is not an option of layer 'dropout'; did you mean 'p'?"
    )  # the same form


def test_spec_needing_a_broken_plugin_names_it_and_other_specs_still_work(selection):
    selection(None)  # everything installed loads, the broken and the duplicate package included
    assert validate(BLOBS_SPEC).data.type == "blobs"  # needs neither of them

    message = problems_of({**BLOBS_SPEC, "rule": {"type": "brokenrule"}})["rule.type"]
    assert "is not a known rule" in message
    assert BROKEN in message and "not-installed-anywhere" in message

    # The name two plugins register: refused, naming the qualified names; each of those works.
    message = problems_of({**BLOBS_SPEC, "rule": {"type": "signsym"}})["rule.type"]
    assert message == (
        f"'signsym' is registered by {DUPE} and altlearn-signsym: write {DUPE}:signsym or altlearn-signsym:signsym"
    )
    spec = validate({**DIGITS_MLP, "name": "qualified", "rule": {"type": "altlearn-signsym:signsym"}})
    assert spec.rule.type == "altlearn-signsym:signsym"
    assert spec.rule.component.__module__ == "altlearn_signsym.rules"
    assert spec.packages["altlearn-signsym"] == installed_version("altlearn-signsym")
    assert "not a rule class" in problems_of({**BLOBS_SPEC, "rule": {"type": f"{DUPE}:signsym"}})["rule.type"]
    # The built-in's name stays the built-in's; the plugin's is reached by its qualified name.
    assert validate(BLOBS_SPEC).rule.component.__module__ == "altlearn.rules.backprop"
    assert "not a rule class" in problems_of({**BLOBS_SPEC, "rule": {"type": f"{DUPE}:bp"}})["rule.type"]

    # A plugin whose target is not a component class: its error, at the path, no traceback.
    message = problems_of({**BLOBS_SPEC, "rule": {"type": "dupe_only"}})["rule.type"]
    assert DUPE in message and "not a rule class" in message


def test_a_plugin_rule_used_through_another_rule_is_recorded_too(selection):
    selection(ALL_BUT_DUPE)
    goup = {
        **BLOBS_SPEC,
        "rule": {"type": "goup", "source": {"type": "signsym"}},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 8},
                {"type": "tanh"},
                {"type": "linear", "out_features": 3},
            ]
        },
    }
    goup.pop("optimizer")  # GO-UP brings its own update
    assert validate(goup).packages == {
        COMPONENTS: "0.3.1",
        "altlearn-signsym": installed_version("altlearn-signsym"),
    }
    # the plugin rule's own options are checked at their nested path, as a top-level rule's are
    typo = {**goup, "rule": {"type": "goup", "source": {"type": "signsym", "feedbak_seed": 1}}}
    assert problems_of(typo)["rule.source.feedbak_seed"].startswith(
        "'feedbak_seed' is not an option of rule 'signsym'; did you mean 'feedback_seed'?"
    )


def test_a_plugin_optimizer_is_validated_and_listed_like_a_builtin(selection):
    selection(ALL_BUT_DUPE)
    spec = validate({**BLOBS_SPEC, "optimizer": {"type": "signsgd", "lr": 0.002}})
    assert (spec.optimizer.type, spec.optimizer.params.lr, spec.optimizer.package) == (
        "signsgd",
        0.002,
        COMPONENTS,
    )
    problems = problems_of({**BLOBS_SPEC, "optimizer": {"type": "signsgd", "lr": 5.0, "momentum": 0.9}})
    assert "less than or equal to 1" in problems["optimizer.lr"]
    assert (
        problems["optimizer.momentum"]
        == "'momentum' is not an option of optimizer 'signsgd'; its options are: lr"
    )
    assert (
        "did you mean 'signsgd'"
        in problems_of({**BLOBS_SPEC, "optimizer": {"type": "signsdg"}})["optimizer.type"]
    )

    result = CliRunner().invoke(main, ["options", "optimizer", "signsgd"])
    assert result.exit_code == 0, result.output
    assert f"optimizer signsgd (from {COMPONENTS} 0.3.1): 1 option" in result.output
    assert "lr: float > 0.0 <= 1.0, default 0.001" in result.output


# ------------------------------------------------------------------------------------ end to end


def run(tmp_path: Path, spec: dict):
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(path), "--quiet", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(spec["tracking"]["experiment"])
    (found,) = client.search_runs([experiment.experiment_id], f"tags.mlflow.runName = '{spec['name']}'")
    return found


DIGITS_MLP = {
    "seed": 0,
    "data": {"type": "digits", "batch_size": 32},
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "linear", "out_features": 64},
            {"type": "tanh"},
            {"type": "linear", "out_features": 10},
        ]
    },
    "train": {"epochs": 2, "device": "cpu", "threads": 1},
    "tracking": {"experiment": "plugin-packages", "log_model": False, "alignment_every": 0},
}


def test_signsym_spec_trains_end_to_end_and_tags_the_plugin_version(selection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    selection(ALL_BUT_DUPE)  # with the duplicate loaded, 'signsym' is (rightly) an error
    signsym = {
        **DIGITS_MLP,
        "name": "digits-signsym",
        "rule": {"type": "signsym_brsf"},
        "optimizer": {"type": "adam", "lr": 0.003},
        "tracking": {"experiment": "plugin-packages", "log_model": False, "alignment_every": 20},
    }
    found = run(tmp_path, signsym)
    assert found.info.status == "FINISHED"
    assert found.data.tags["altlearn.rule"] == "signsym_brsf"
    assert found.data.tags["plugin.altlearn-signsym"] == installed_version("altlearn-signsym")
    assert not any(key.startswith(f"plugin.{COMPONENTS}") for key in found.data.tags)  # not used
    assert found.data.metrics["test_accuracy"] > 0.8  # digits: bp gets ~0.95 in 2 epochs
    assert found.data.metrics["alignment/angle_layer1"] > 1.0  # not BP's direction

    components = run(tmp_path, {**BLOBS_SPEC, "train": {"epochs": 2, "device": "cpu", "threads": 1}})
    assert components.info.status == "FINISHED"
    assert components.data.tags[f"plugin.{COMPONENTS}"] == "0.3.1"
    assert components.data.params["network.layers.1.factor"] == "2.0"
    assert components.data.metrics["test_accuracy"] > 0.9


def test_goup_over_a_plugin_rule_trains_and_tags_that_plugin_version(selection, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    selection(ALL_BUT_DUPE)
    goup = {
        **DIGITS_MLP,
        "name": "digits-goup-signsym",
        "rule": {"type": "goup", "lr": 0.02, "source": {"type": "signsym", "feedback_seed": 3}},
    }
    found = run(tmp_path, goup)
    assert found.info.status == "FINISHED"
    assert found.data.tags["altlearn.rule"] == "goup"
    assert found.data.tags["plugin.altlearn-signsym"] == installed_version("altlearn-signsym")
    assert not any(key.startswith(f"plugin.{COMPONENTS}") for key in found.data.tags)  # not used
    assert found.data.params["rule.source.type"] == "signsym"
    assert found.data.params["rule.source.feedback_seed"] == "3"
    assert found.data.metrics["test_accuracy"] > 0.8  # it learns through the plugin's gradient


def test_a_plugin_optimizer_trains_a_spec_and_is_tagged(selection, tmp_path, monkeypatch):
    from altlearn.training.trainer import Trainer
    from altlearn_testcomponents.optimizer import _SignSGD

    monkeypatch.chdir(tmp_path)
    selection(ALL_BUT_DUPE)
    spec = {
        **BLOBS_SPEC,
        "name": "blobs-signsgd",
        "optimizer": {"type": "signsgd", "lr": 0.005},
        "schedule": {"type": "cosine"},
        "train": {"epochs": 3, "device": "cpu", "threads": 1},
    }
    trainer = Trainer(validate(spec))
    assert type(trainer.optimizer) is _SignSGD and trainer.optimizer.param_groups[0]["initial_lr"] == 0.005
    found = run(tmp_path, spec)
    assert found.info.status == "FINISHED"
    assert found.data.params["optimizer.type"] == "signsgd"
    assert found.data.tags[f"plugin.{COMPONENTS}"] == "0.3.1"
    assert found.data.metrics["test_accuracy"] > 0.9
