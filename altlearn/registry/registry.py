"""The one plugin manager: built-in components plus every installed plugin package.

Built-ins register through the same hooks as third parties. Third-party plugins are found through
the entry-point group ``altlearn``; each one is loaded and asked to register inside its own
try/except, so a broken plugin is reported (package, error) and never stops altlearn itself.

``ALTLEARN_PLUGINS`` picks which third-party plugins load: unset or ``all`` loads every one,
``none`` (or an empty value) loads none, otherwise a comma-separated list of entry-point or
distribution names. Built-ins always load.

Two packages may register one name: both are kept, each reachable as ``package:name``, and the
plain name means the built-in, if one of them is altlearn (altlearn.registry.names).

Nothing here imports torch or mlflow: components are registered as ``"module:attr"`` strings and
imported only when a spec uses them.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any

import pluggy

from altlearn.registry import hookspecs
from altlearn.registry.exit_guard import guard_process_exit
from altlearn.registry.names import BUILTIN_PACKAGE, Component, Conflict, find, listing, normalized
from altlearn.version import __version__

ENTRY_POINT_GROUP = "altlearn"
PLUGIN_SELECTION_ENV = "ALTLEARN_PLUGINS"

#: component kind -> the hook that registers it
KINDS = {
    "rule": "altlearn_register_rules",
    "dataset": "altlearn_register_datasets",
    "layer": "altlearn_register_layers",
    "optimizer": "altlearn_register_optimizers",
    "schedule": "altlearn_register_schedules",
    "loss": "altlearn_register_losses",
    "network": "altlearn_register_networks",
}

#: component kind -> how messages name one (and, plural, how `altlearn plugins` titles them)
KIND_NOUNS = {
    "rule": "rule",
    "dataset": "data set",
    "layer": "layer",
    "optimizer": "optimizer",
    "schedule": "schedule",
    "loss": "loss",
    "network": "network architecture",
}

BUILTIN_MODULES = ("altlearn.registry.builtins",)


@dataclass
class BrokenPlugin:
    """A plugin package that could not be loaded or failed while registering."""

    name: str  # entry-point name
    package: str
    version: str
    error: str
    details: str = ""


@dataclass
class Registry:
    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    broken: list[BrokenPlugin] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    #: distribution name -> version, for every plugin package that registered something
    packages: dict[str, str] = field(default_factory=dict)
    #: installed plugin packages that ALTLEARN_PLUGINS did not select
    left_out: list[str] = field(default_factory=list)
    #: names in ALTLEARN_PLUGINS that match no installed entry point or package
    unmatched_selection: list[str] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        """The component a plain or qualified (``package:name``) name means, or PluginError or
        KeyError saying why none (see altlearn.registry.names)."""
        return find(kind, name, self.components[kind], self.conflicts, self.broken_hint())

    def listing(self, kind: str) -> list[tuple[str, Component]]:
        """(name to write, component) for every registration of ``kind``, clashing ones qualified."""
        return listing(kind, self.components[kind], self.conflicts)

    def load(self, kind: str, name: str) -> Any:
        return self.get(kind, name).load()

    def broken_hint(self) -> str:
        """Sentences naming plugin packages that failed to load or were not selected, to append
        to 'unknown name' errors: the name the user wants may come from one of them."""
        hint = ""
        if self.broken:
            names = ", ".join(f"{b.package} ({b.error})" for b in self.broken)
            hint += f"; these plugin packages failed to load and may provide it: {names}"
        if self.left_out:
            hint += (
                f"; {PLUGIN_SELECTION_ENV} left out these installed plugin packages: "
                f"{', '.join(self.left_out)}"
            )
        return hint


def _selection() -> set[str] | None:
    """The names in ALTLEARN_PLUGINS; None when every plugin is to load."""
    choice = os.environ.get(PLUGIN_SELECTION_ENV)
    if choice is None or choice.strip().lower() == "all":
        return None
    wanted = {part.strip() for part in choice.split(",") if part.strip()}
    return wanted - {"none"}


def _matches(ep: metadata.EntryPoint, name: str) -> bool:
    dist_name = ep.dist.name if ep.dist is not None else ""
    # Distribution names match in any spelling pip accepts: altlearn_signsym is altlearn-signsym.
    return ep.name == name or normalized(dist_name) == normalized(name)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _register_from(
    registry: Registry, plugin: object, package: str, version: str, pm: pluggy.PluginManager
) -> None:
    """Run one plugin's registration hooks, then record what it registered under its package.

    All or nothing: if any of the plugin's hooks raises, none of its components are kept, so a
    half-registered plugin never looks usable.
    """
    collected: list[Component] = []
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue

            def register(name: str, target: Any, summary: str = "", _kind: str = kind) -> None:
                if not isinstance(name, str) or not _NAME.fullmatch(name):
                    raise ValueError(
                        f"a {_kind} name must be letters, digits, _ . or - (it is "
                        f"typed in specs and on the command line), got {name!r}"
                    )
                if any(c.kind == _kind and c.name == name for c in collected):
                    raise ValueError(f"{package} registers {_kind} {name!r} twice")
                collected.append(Component(_kind, name, target, package, version, summary))

            impl.function(register=register)
    for component in collected:
        _add(registry, component)


def _add(registry: Registry, component: Component) -> None:
    """Add a component; a name another package already took becomes a conflict keeping both, each
    reachable by its qualified name (the plain name means the first: a built-in loads first)."""
    kind, name = component.kind, component.name
    existing = registry.components[kind].get(name)
    if existing is None:
        registry.components[kind][name] = component
        return
    clash = next((c for c in registry.conflicts if c.kind == kind and c.name == name), None)
    if clash is None:
        clash = Conflict(kind, name, [existing])
        registry.conflicts.append(clash)
    if component.package not in clash.packages:  # two entry points of one package: the first
        clash.components.append(component)


def build_registry(extra_plugins: list[tuple[object, str, str]] | None = None) -> Registry:
    """Load built-ins and installed plugins into a fresh registry.

    ``extra_plugins`` (plugin object, package, version) lets tests and embedding code add plugins
    without installing a package.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    sources: list[tuple[object, str, str, str]] = [
        (importlib.import_module(name), name, BUILTIN_PACKAGE, __version__) for name in BUILTIN_MODULES
    ]
    sources += _installed_plugins(registry)
    sources += [(plugin, package, package, version) for plugin, package, version in extra_plugins or []]
    for plugin, entry_name, package, version in sources:
        if (
            _register_isolated(registry, pm, plugin, entry_name, package, version)
            and package != BUILTIN_PACKAGE
        ):
            registry.packages[package] = version
    return registry


def _installed_plugins(registry: Registry) -> list[tuple[object, str, str, str]]:
    """(plugin, entry-point name, package, version) of every selected entry point that imports;
    the others are recorded in the registry as left out or broken."""
    wanted = _selection()
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if wanted is not None:
        registry.unmatched_selection = sorted(
            name for name in wanted if not any(_matches(ep, name) for ep in entry_points)
        )
    loaded = []
    for ep in entry_points:
        package = ep.dist.name if ep.dist is not None else ep.value
        if wanted is not None and not any(_matches(ep, name) for name in wanted):
            if package not in registry.left_out:  # a package may have several entry points
                registry.left_out.append(package)
            continue
        version = ep.dist.version if ep.dist is not None else "?"
        try:
            with guard_process_exit():
                plugin = ep.load()
            loaded.append((plugin, ep.name, package, version))
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a plugin must not kill us
            if isinstance(exc, KeyboardInterrupt):
                raise
            registry.broken.append(_broken(ep.name, package, version, exc))
    return loaded


def _register_isolated(
    registry: Registry, pm: pluggy.PluginManager, plugin: object, entry_name: str, package: str, version: str
) -> bool:
    """Register one plugin's components; False (and the plugin recorded as broken) if it fails."""
    try:
        pm.register(plugin, name=f"{package}:{entry_name}")
        # A misspelled hook (altlearn_register_rule) would otherwise be silently ignored.
        _check_hook_names(pm)
        if not pm.get_hookcallers(plugin):
            # Hook functions without @hookimpl are plain functions to pluggy: nothing runs.
            raise ValueError(
                "the entry point's object implements no altlearn hook (are the "
                "altlearn_register_* functions decorated with @hookimpl?)"
            )
        with guard_process_exit():
            _register_from(registry, plugin, package, version, pm)
    except BaseException as exc:  # noqa: BLE001 - isolate each plugin, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        registry.broken.append(_broken(entry_name, package, version, exc))
        return False
    return True


def _broken(entry_name: str, package: str, version: str, exc: BaseException) -> BrokenPlugin:
    return BrokenPlugin(entry_name, package, version, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """pm.check_pending(), with the altlearn hook the misspelled one most likely meant."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        hooks = [name for name in dir(hookspecs) if name.startswith("altlearn_")]
        unknown = re.search(r"unknown hook '([^']+)'", str(exc))
        close = difflib.get_close_matches(unknown.group(1), hooks, n=1) if unknown else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise pluggy.PluginValidationError(
            exc.plugin, f"{exc}; {hint}altlearn's hooks are: {', '.join(hooks)}"
        ) from None


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return build_registry()


def reset_registry() -> None:
    """Forget the cached registry (tests install and remove plugins)."""
    get_registry.cache_clear()
