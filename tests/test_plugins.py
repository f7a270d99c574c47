"""The plugin registry: built-ins, entry-point plugins, isolation of broken ones, conflicts, selection,
lazy imports, and `altlearn plugins` staying free of torch and mlflow."""

import importlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import altlearn
from altlearn.errors import PluginError
from altlearn.registry import exit_guard
from altlearn.registry import registry as plugins
from altlearn.registry.registry import PLUGIN_SELECTION_ENV, build_registry

BUILTIN_RULES = {"bp", "fa", "dfa", "ifa", "ff", "goup", "pc", "ep", "drtp", "pepita", "localloss", "fwdgrad"}
BUILTIN_DATASETS = {"mnist", "fashion_mnist", "cifar10", "digits"}
BUILTIN_LAYERS = {
    "flatten",
    "linear",
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "dropout",
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "leaky_relu",
    "identity",
    "adaptive_avgpool2d",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "groupnorm",
    "residual",
}


class FakeEntryPoint:
    """What build_registry reads from an importlib.metadata entry point, for a package that is not
    installed: name, value, group, dist (name, version) and load()."""

    def __init__(self, name: str, value: str, dist_name: str, version: str) -> None:
        self.name, self.value, self.group = name, value, plugins.ENTRY_POINT_GROUP
        self.dist = SimpleNamespace(name=dist_name, version=version)

    def load(self):
        from importlib import metadata

        return metadata.EntryPoint(self.name, self.value, self.group).load()


@pytest.fixture
def install(tmp_path, monkeypatch, fresh_registry):
    """``install(entry_name, dist_name, source)`` makes a plugin package visible to the registry:
    its module is written under tmp_path and exposed as an ``altlearn`` entry point."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(PLUGIN_SELECTION_ENV, raising=False)
    entry_points: list[FakeEntryPoint] = []
    fake_metadata = SimpleNamespace(
        entry_points=lambda group: [ep for ep in entry_points if ep.group == group]
    )
    monkeypatch.setattr(plugins, "metadata", fake_metadata)
    modules: list[str] = []

    def write_module(source: str, prefix: str = "fakemod") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()  # the directory listing may be cached from a moment ago
        modules.append(name)
        return name

    def install_plugin(entry_name: str, dist_name: str, source: str, version: str = "1.2.3") -> str:
        module = write_module(source, prefix=f"plugin_{entry_name}")
        entry_points.append(FakeEntryPoint(entry_name, module, dist_name, version))
        return module

    install_plugin.write_module = write_module
    yield install_plugin
    for name in modules:
        sys.modules.pop(name, None)


GOOD_PLUGIN = """
    from altlearn import hookimpl

    @hookimpl
    def altlearn_register_rules(register):
        register("{name}", "nowhere_yet:Rule", summary="a third-party rule")
"""


def test_builtins_are_listed_under_altlearn_with_its_version(monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "none")
    registry = build_registry()
    assert set(registry.names("rule")) == BUILTIN_RULES
    assert set(registry.names("dataset")) == BUILTIN_DATASETS
    assert set(registry.names("layer")) == BUILTIN_LAYERS
    for kind in plugins.KINDS:
        for component in registry.components[kind].values():
            assert component.package == "altlearn"
            assert component.version == altlearn.__version__
            assert component.summary  # `altlearn plugins` shows one line for each
    assert registry.broken == [] and registry.conflicts == []
    assert registry.packages == {}  # only third-party packages are listed there


def test_builtin_targets_resolve_to_their_classes(monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "none")
    registry = build_registry()
    from altlearn.data.datasets import MNIST
    from altlearn.nn.layers import LeakyRelu
    from altlearn.rules.backprop import Backprop

    assert registry.load("rule", "bp") is Backprop
    assert registry.load("dataset", "mnist") is MNIST
    assert registry.load("layer", "leaky_relu") is LeakyRelu
    with pytest.raises(KeyError):
        registry.get("rule", "no-such-rule")


def test_plugin_whose_import_raises_is_recorded_and_the_rest_still_works(install):
    install("crashes", "altlearn-crashes", "raise RuntimeError('plugin exploded on import')", version="0.4")
    install("exits", "altlearn-exits", "import sys\nsys.exit(3)")  # must not end altlearn either
    install("good", "altlearn-good", GOOD_PLUGIN.format(name="goodrule"), version="2.0")
    registry = build_registry()

    broken = {b.package: b for b in registry.broken}
    assert set(broken) == {"altlearn-crashes", "altlearn-exits"}
    assert broken["altlearn-crashes"].version == "0.4"
    assert broken["altlearn-crashes"].name == "crashes"
    assert "RuntimeError" in broken["altlearn-crashes"].error
    assert "plugin exploded on import" in broken["altlearn-crashes"].error
    assert "plugin exploded on import" in broken["altlearn-crashes"].details  # the traceback
    assert "SystemExit" in broken["altlearn-exits"].error

    assert BUILTIN_RULES <= set(registry.names("rule"))
    good = registry.get("rule", "goodrule")
    assert (good.package, good.version, good.summary) == ("altlearn-good", "2.0", "a third-party rule")
    assert registry.packages == {"altlearn-good": "2.0"}
    hint = registry.broken_hint()
    assert "altlearn-crashes" in hint and "altlearn-exits" in hint


def the_problem_of_rule(rule_type: str, registry):
    """The one problem of a small valid spec whose rule is ``rule_type``."""
    from altlearn.errors import SpecError
    from altlearn.spec.load import validate

    raw = {
        "name": "x",
        "data": {"type": "digits"},
        "rule": {"type": rule_type},
        "network": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]},
    }
    with pytest.raises(SpecError) as info:
        validate(raw, registry)
    (problem,) = info.value.problems
    return problem


def test_unknown_rule_error_names_broken_plugin_packages(install):
    install("crashes", "altlearn-signsym", "raise ImportError('needs scipy')")
    registry = build_registry()
    problem = the_problem_of_rule("signsym", registry)
    assert problem.path == "rule.type"
    assert "altlearn-signsym" in problem.message and "needs scipy" in problem.message


def test_duplicate_names_are_kept_each_under_its_qualified_name(install):
    install(
        "shadow",
        "altlearn-shadow",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("bp", "shadow:Backprop")         # taken by altlearn itself
            register("shadowrule", "shadow:Other")    # new: plain and qualified
    """,
    )
    install("twin1", "altlearn-twin-a", GOOD_PLUGIN.format(name="twin"))
    install("twin2", "altlearn-twin-b", GOOD_PLUGIN.format(name="twin"))
    registry = build_registry()

    assert registry.broken == []  # a clash never makes a plugin broken
    assert set(registry.packages) == {"altlearn-shadow", "altlearn-twin-a", "altlearn-twin-b"}
    conflicts = {(c.kind, c.name): c for c in registry.conflicts}
    assert set(conflicts) == {("rule", "bp"), ("rule", "twin")}
    assert conflicts["rule", "bp"].packages == ["altlearn", "altlearn-shadow"]
    assert conflicts["rule", "twin"].packages == ["altlearn-twin-a", "altlearn-twin-b"]

    # A plugin cannot replace a built-in: the plain name stays altlearn's.
    assert registry.get("rule", "bp").package == "altlearn"
    assert registry.get("rule", "altlearn:bp").package == "altlearn"
    assert registry.get("rule", "altlearn-shadow:bp").package == "altlearn-shadow"
    assert registry.get("rule", "altlearn_Shadow:bp").package == "altlearn-shadow"  # any pip spelling
    assert conflicts["rule", "bp"].message() == (
        "'bp' is registered by altlearn and altlearn-shadow: 'bp' means altlearn's own; "
        "write altlearn-shadow:bp for the plugin's"
    )
    # Two plugins: the plain name is ambiguous, each qualified name is not.
    with pytest.raises(PluginError) as info:
        registry.get("rule", "twin")
    assert str(info.value) == (
        "'twin' is registered by altlearn-twin-a and altlearn-twin-b: "
        "write altlearn-twin-a:twin or altlearn-twin-b:twin"
    )
    assert registry.get("rule", "altlearn-twin-a:twin").package == "altlearn-twin-a"
    assert registry.get("rule", "altlearn-twin-b:twin").package == "altlearn-twin-b"
    # Every component has a qualified name, clashing or not.
    assert registry.get("rule", "shadowrule").package == "altlearn-shadow"
    assert registry.get("rule", "altlearn-shadow:shadowrule").package == "altlearn-shadow"
    assert registry.get("rule", "altlearn:dfa").package == "altlearn"

    listed = {(name, c.package) for name, c in registry.listing("rule")}
    assert {("bp", "altlearn"), ("altlearn-shadow:bp", "altlearn-shadow")} <= listed
    assert {
        ("altlearn-twin-a:twin", "altlearn-twin-a"),
        ("altlearn-twin-b:twin", "altlearn-twin-b"),
    } <= listed
    assert not {"twin", "altlearn:bp"} & {name for name, _ in listed}


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        (
            "altlearn-nope:twin",
            PluginError,
            ["package altlearn-nope registers no rule 'twin'", "write altlearn-twin-a:twin"],
        ),
        ("altlearn-twin-a:bp", PluginError, ["altlearn does: write bp"]),
        ("altlearn-twin-a:nothing", KeyError, []),
        (":bp", KeyError, []),
    ],
)
def test_a_qualified_name_that_matches_no_registration_says_what_to_write(install, name, error, words):
    install("twin1", "altlearn-twin-a", GOOD_PLUGIN.format(name="twin"))
    install("twin2", "altlearn-twin-b", GOOD_PLUGIN.format(name="twin"))
    with pytest.raises(error) as info:
        build_registry().get("rule", name)
    for text in words:
        assert text in str(info.value)


PLUGIN_DRTP = """
    from altlearn import hookimpl
    from altlearn.rules.feedback.drtp import DirectRandomTargetProjection

    class PluginDRTP(DirectRandomTargetProjection):
        pass

    @hookimpl
    def altlearn_register_rules(register):
        register("drtp", f"{__name__}:PluginDRTP", summary="the plugin's DRTP")
"""


def spec_with_rule(rule_type: str, registry):
    from altlearn.spec.load import validate

    raw = {
        "name": "x",
        "data": {"type": "digits"},
        "rule": {"type": rule_type},
        "network": {
            "layers": [
                {"type": "flatten"},
                {"type": "linear", "out_features": 16},
                {"type": "tanh"},
                {"type": "linear", "out_features": 10},
            ]
        },
    }
    return validate(raw, registry)


def test_a_plugin_registering_a_builtin_name_leaves_it_the_builtin_and_is_reached_qualified(install):
    from altlearn.rules.feedback.drtp import DirectRandomTargetProjection
    from altlearn.tracking.tags import _tags

    install("x", "altlearn-x", PLUGIN_DRTP, version="0.9")
    registry = build_registry()
    assert registry.broken == []

    builtin = spec_with_rule("drtp", registry)
    assert builtin.rule.component is DirectRandomTargetProjection
    assert builtin.packages == {}  # nothing of the plugin's is used
    assert spec_with_rule("altlearn:drtp", registry).rule.component is DirectRandomTargetProjection

    plugin = spec_with_rule("altlearn-x:drtp", registry)
    assert plugin.rule.component.__name__ == "PluginDRTP"
    assert plugin.rule.component is not DirectRandomTargetProjection
    assert plugin.rule.type == "altlearn-x:drtp"  # what the spec wrote, as the run records it
    assert plugin.packages == {"altlearn-x": "0.9"}
    tags = _tags(plugin)
    assert tags["altlearn.rule"] == "altlearn-x:drtp" and tags["plugin.altlearn-x"] == "0.9"
    assert "plugin.altlearn-x" not in _tags(builtin)


def test_a_name_two_plugins_register_is_refused_at_validation_naming_the_qualified_names(install):
    from altlearn.rules.backprop import Backprop

    install("twin1", "altlearn-twin-a", GOOD_PLUGIN.format(name="twin"))
    install(
        "twin2",
        "altlearn-twin-b",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("twin", "altlearn.rules.backprop:Backprop")
    """,
        version="2.0",
    )
    registry = build_registry()
    problem = the_problem_of_rule("twin", registry)
    assert problem.path == "rule.type"
    assert problem.message == (
        "'twin' is registered by altlearn-twin-a and altlearn-twin-b: "
        "write altlearn-twin-a:twin or altlearn-twin-b:twin"
    )
    spec = spec_with_rule("altlearn-twin-b:twin", registry)
    assert spec.rule.component is Backprop and spec.packages == {"altlearn-twin-b": "2.0"}
    # an unknown name's error lists the names that can be written: the clashing ones qualified
    known = the_problem_of_rule("twim", registry).message.split("known: ")[1]
    assert {"altlearn-twin-a:twin", "altlearn-twin-b:twin"} <= set(known.split(", "))
    assert "twin" not in known.split(", ")
    # the other one's target does not exist: its own error, not the clash
    assert "altlearn-twin-a" in the_problem_of_rule("altlearn-twin-a:twin", registry).message


def test_plugins_command_lists_each_registration_of_a_clashing_name(install):
    from click.testing import CliRunner

    from altlearn.cli.commands import main

    install("x", "altlearn-x", PLUGIN_DRTP, version="0.9")
    install("twin1", "altlearn-twin-a", GOOD_PLUGIN.format(name="twin"))
    install("twin2", "altlearn-twin-b", GOOD_PLUGIN.format(name="twin"))
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.startswith("  ")}
    assert rows["drtp"][1] == "altlearn"
    assert rows["altlearn-x:drtp"][1:4] == ["altlearn-x", "0.9", "the"]
    assert rows["altlearn-twin-a:twin"][1] == "altlearn-twin-a"
    assert rows["altlearn-twin-b:twin"][1] == "altlearn-twin-b"
    assert "twin" not in rows
    lines = result.output.splitlines()
    assert (
        "note: rule 'drtp' is registered by altlearn and altlearn-x: 'drtp' means altlearn's own; "
        + ("write altlearn-x:drtp for the plugin's")
        in lines
    )
    assert any(
        line.startswith("conflict: rule 'twin' is registered by altlearn-twin-a and altlearn-twin-b: write ")
        for line in lines
    )


def test_misspelled_hook_makes_the_plugin_broken_not_silently_ignored(install):
    install(
        "typo",
        "altlearn-typo",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rule(register):   # singular: not a hook altlearn has
            register("typorule", "typo:Rule")

        @hookimpl
        def altlearn_register_datasets(register):
            register("typodata", "typo:Data")
    """,
        version="0.1",
    )
    install("good", "altlearn-good", GOOD_PLUGIN.format(name="goodrule"))
    registry = build_registry()

    (broken,) = registry.broken
    assert (broken.package, broken.version, broken.name) == ("altlearn-typo", "0.1", "typo")
    assert "altlearn_register_rule" in broken.error
    assert "did you mean 'altlearn_register_rules'?" in broken.error
    # Nothing of the broken plugin is half-registered.
    assert "typorule" not in registry.names("rule")
    assert "typodata" not in registry.names("dataset")
    assert "altlearn-typo" not in registry.packages
    # A plugin registered after it is unaffected.
    assert registry.get("rule", "goodrule").package == "altlearn-good"


def test_hook_that_raises_while_registering_is_broken(install):
    install(
        "raiser",
        "altlearn-raiser",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_layers(register):
            register("", "raiser:Layer")    # an empty name is refused
    """,
    )
    registry = build_registry()
    (broken,) = registry.broken
    assert broken.package == "altlearn-raiser"
    assert "letters, digits" in broken.error
    assert set(registry.names("layer")) == BUILTIN_LAYERS


def test_plugin_failing_midway_keeps_none_of_its_components(install):
    install(
        "halfway",
        "altlearn-halfway",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("firstrule", "halfway:First")
            raise RuntimeError("second registration blew up")
    """,
    )
    registry = build_registry()
    (broken,) = registry.broken
    assert "second registration blew up" in broken.error
    assert "firstrule" not in registry.names("rule")


def test_plugin_registering_one_name_twice_is_broken(install):
    install(
        "twice",
        "altlearn-twice",
        """
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("samerule", "twice:A")
            register("samerule", "twice:B")
    """,
    )
    registry = build_registry()
    (broken,) = registry.broken
    assert "altlearn-twice registers rule 'samerule' twice" in broken.error
    assert not registry.conflicts
    assert "samerule" not in registry.names("rule")


@pytest.mark.parametrize("bad_name", ["noisy bp!", "-dash", "a/b", 7])
def test_a_name_that_cannot_be_typed_in_a_spec_is_refused(install, bad_name):
    install("odd", "altlearn-odd", GOOD_PLUGIN.format(name="x").replace('"x"', repr(bad_name)))
    (broken,) = build_registry().broken
    assert broken.package == "altlearn-odd" and repr(bad_name) in broken.error


def test_hooks_without_hookimpl_make_the_plugin_broken_not_silently_empty(install):
    install(
        "plain",
        "altlearn-plain",
        """
        def altlearn_register_rules(register):   # @hookimpl forgotten: pluggy never calls it
            register("plainrule", "plain:Rule")
    """,
    )
    registry = build_registry()
    (broken,) = registry.broken
    assert broken.package == "altlearn-plain" and "@hookimpl" in broken.error
    assert "altlearn-plain" in registry.broken_hint()


@pytest.fixture
def two_plugins(install):
    """Two installed plugins; returns a function giving which of their rules a registry has."""
    alpha = install("alpha", "altlearn-alpha", GOOD_PLUGIN.format(name="alpharule"))
    beta = install("beta", "altlearn-beta", GOOD_PLUGIN.format(name="betarule"))

    def loaded(selection):
        if selection is None:
            os.environ.pop(PLUGIN_SELECTION_ENV, None)
        else:
            os.environ[PLUGIN_SELECTION_ENV] = selection
        registry = build_registry()
        assert BUILTIN_RULES <= set(registry.names("rule"))  # built-ins load whatever is chosen
        return set(registry.names("rule")) - BUILTIN_RULES

    loaded.modules = (alpha, beta)
    return loaded


@pytest.mark.parametrize(
    "selection, expected",
    [
        (None, {"alpharule", "betarule"}),
        ("all", {"alpharule", "betarule"}),
        ("ALL", {"alpharule", "betarule"}),
        ("none", set()),
        ("", set()),
        ("alpha", {"alpharule"}),  # by entry-point name
        ("altlearn-beta", {"betarule"}),  # by distribution name
        ("alpha, altlearn-beta", {"alpharule", "betarule"}),
        ("gamma", set()),
    ],
)
def test_plugin_selection_env(two_plugins, monkeypatch, selection, expected):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "placeholder")  # restored after the test
    assert two_plugins(selection) == expected


def test_selection_reports_what_it_left_out_and_names_matching_nothing(two_plugins, monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "alpha, gamma")
    registry = build_registry()
    assert registry.left_out == ["altlearn-beta"]
    assert registry.unmatched_selection == ["gamma"]
    assert "left out these installed plugin packages: altlearn-beta" in registry.broken_hint()
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "all")
    registry = build_registry()
    assert registry.left_out == [] and registry.unmatched_selection == []
    assert registry.broken_hint() == ""


def test_unselected_plugins_are_not_even_imported(two_plugins, monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "placeholder")
    alpha, beta = two_plugins.modules
    assert two_plugins("none") == set()
    assert alpha not in sys.modules and beta not in sys.modules
    assert two_plugins("alpha") == {"alpharule"}
    assert alpha in sys.modules and beta not in sys.modules


def test_string_target_is_imported_only_on_load(install):
    target = install.write_module(
        """
        IMPORTED = True

        class LazyRule:
            pass
    """,
        prefix="lazytarget",
    )
    install(
        "lazy",
        "altlearn-lazy",
        f"""
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("lazyrule", "{target}:LazyRule")
    """,
    )
    registry = build_registry()
    component = registry.get("rule", "lazyrule")
    assert component.target == f"{target}:LazyRule"
    assert target not in sys.modules

    cls = component.load()
    assert cls.__name__ == "LazyRule" and cls.__module__ == target
    assert target in sys.modules
    assert component.load() is cls and registry.load("rule", "lazyrule") is cls


@pytest.mark.parametrize(
    "target, error",
    [
        ("module_that_does_not_exist_4711:Rule", "ModuleNotFoundError"),
        ("{module}:Missing", "AttributeError"),
        ("{module}:Raises", "ZeroDivisionError"),
    ],
)
def test_target_that_fails_to_import_names_the_package(install, target, error):
    module = install.write_module(
        """
        class Rule:
            pass

        def __getattr__(name):
            if name == "Raises":
                1 / 0
            raise AttributeError(name)
    """,
        prefix="badtarget",
    )
    install(
        "bad",
        "altlearn-badtarget",
        f"""
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("badrule", "{target.format(module=module)}")
    """,
        version="9.9",
    )
    registry = build_registry()
    with pytest.raises(PluginError) as info:
        registry.load("rule", "badrule")
    message = str(info.value)
    assert "altlearn-badtarget" in message and "9.9" in message and "badrule" in message
    assert error in message


def test_extra_plugins_register_without_an_installed_package(monkeypatch):
    monkeypatch.setenv(PLUGIN_SELECTION_ENV, "none")

    class Embedded:
        @altlearn.hookimpl
        def altlearn_register_datasets(self, register):
            register("embedded", object, summary="given as a class")

    registry = build_registry(extra_plugins=[(Embedded(), "my-lab-code", "0.0.1")])
    component = registry.get("dataset", "embedded")
    assert (component.package, component.version) == ("my-lab-code", "0.0.1")
    assert component.load() is object
    assert registry.packages == {"my-lab-code": "0.0.1"}


def test_get_registry_is_cached_until_reset(fresh_registry):
    first = plugins.get_registry()
    assert plugins.get_registry() is first
    plugins.reset_registry()
    assert plugins.get_registry() is not first


HEAVY = ("torch", "mlflow", "optuna")


def test_plugins_command_imports_neither_torch_nor_mlflow():
    script = Path(sys.executable).with_name("altlearn")
    command = [str(script), "plugins"] if script.is_file() else ["-m", "altlearn.cli.commands", "plugins"]
    env = {k: v for k, v in os.environ.items() if k != PLUGIN_SELECTION_ENV}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bp" in result.stdout and "altlearn" in result.stdout and "mnist" in result.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "altlearn.registry.registry" in imported  # the import log was read correctly
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_plugins_command_in_process_leaves_torch_unimported():
    code = textwrap.dedent("""
        import sys
        from altlearn.cli.commands import main
        main(["plugins", "--verbose"], standalone_mode=False)
        print("HEAVY:", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mlflow", "optuna")))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY: []" in result.stdout
    assert "goup" in result.stdout


# ------------------------------------------------------------------------ os._exit in plugin code


def test_plugin_calling_os_exit_on_import_or_while_registering_is_broken_not_fatal(install):
    install("hardexit", "altlearn-hardexit", "import os\nos._exit(4)")
    install(
        "hookexit",
        "altlearn-hookexit",
        """
        import os
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("never_kept", "nowhere:Rule")
            os._exit(5)
    """,
    )
    install("good", "altlearn-good", GOOD_PLUGIN.format(name="goodrule"))
    registry = build_registry()  # this process is still here to look at it
    broken = {b.package: b.error for b in registry.broken}
    assert broken["altlearn-hardexit"] == (
        "ProcessExitCalled: the plugin called os._exit(4), which would have ended altlearn"
    )
    assert "os._exit(5)" in broken["altlearn-hookexit"]
    assert "never_kept" not in registry.names("rule") and "goodrule" in registry.names("rule")
    assert os._exit is exit_guard._real_exit  # the guard is lifted again


def test_a_component_module_calling_os_exit_when_a_spec_uses_it_is_a_spec_problem(install):
    target = install.write_module("import os\nos._exit(6)\n", prefix="exitingtarget")
    install(
        "lazyexit",
        "altlearn-lazyexit",
        f"""
        from altlearn import hookimpl

        @hookimpl
        def altlearn_register_rules(register):
            register("exitrule", "{target}:Rule")
    """,
    )
    problem = the_problem_of_rule("exitrule", build_registry())
    assert problem.path == "rule.type"
    assert "altlearn-lazyexit" in problem.message and "os._exit(6)" in problem.message


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_guard_is_up_still_exits_for_real():
    with exit_guard.guard_process_exit():
        pid = os.fork()
        if pid == 0:  # the child: must end here, not raise and run the parent's code on
            os._exit(7)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def test_altlearn_plugins_survives_a_plugin_calling_os_exit(tmp_path):
    """The real command, in its own process: a plugin found through an installed entry point."""
    (tmp_path / "exiting_plugin.py").write_text("import os\nos._exit(4)\n")
    dist = tmp_path / "altlearn_exiting-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: altlearn-exiting\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[altlearn]\nexiting = exiting_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), PLUGIN_SELECTION_ENV: "altlearn-exiting"}
    result = subprocess.run(
        [sys.executable, "-m", "altlearn.cli.commands", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "altlearn-exiting 1.0 (entry point 'exiting'): ProcessExitCalled" in result.stdout
    assert "os._exit(4)" in result.stdout and "bp" in result.stdout
