"""Names: what a registration is, and which one a name in a spec means.

Every component has its plain name (``drtp``) and its qualified name ``PACKAGE:name``, the
distribution that registered it before the colon (``altlearn:drtp``, ``altlearn-drtp:drtp``; any
spelling pip accepts, ``altlearn_drtp:drtp`` too). When several packages register one name:

- if altlearn is one of them, the plain name keeps meaning the built-in (a plugin cannot silently
  replace it) and the plugin's is reached by its qualified name;
- otherwise the plain name is ambiguous: a spec that writes it is told the qualified names to write.

Either way nothing is refused at load time: an installed plugin never breaks altlearn, and every
registration stays usable by its qualified name. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from altlearn.errors import PluginError
from altlearn.registry.exit_guard import guard_process_exit

#: the distribution name of the built-ins
BUILTIN_PACKAGE = "altlearn"
#: between the package and the name in a qualified name; never part of a plain name
SEPARATOR = ":"


def normalized(dist_name: str) -> str:
    """A distribution name as packaging compares them (PEP 503): lower case, runs of -_. as -."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()


@dataclass
class Component:
    """One registered component (a rule, data set, layer, optimizer, schedule or loss)."""

    kind: str
    name: str
    target: Any  # the class, or a "module:attr" string until first use
    package: str
    version: str
    summary: str = ""

    @property
    def qualified_name(self) -> str:
        """``package:name``: this registration, whatever else registers the same name."""
        return f"{self.package}{SEPARATOR}{self.name}"

    def load(self) -> Any:
        """Import (once) and return the component class."""
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            try:
                with guard_process_exit():
                    obj = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except BaseException as exc:  # a plugin's code: report, never crash (nor exit)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise PluginError(
                    f"{self.kind} {self.name!r} from package {self.package} {self.version} "
                    f"failed to load ({self.target}): {type(exc).__name__}: {exc}"
                ) from exc
            self.target = obj
        return self.target


@dataclass
class Conflict:
    """One name of one kind registered by more than one package; every registration is kept, in
    the order they loaded (the built-in first)."""

    kind: str
    name: str
    components: list[Component]

    @property
    def packages(self) -> list[str]:
        return [c.package for c in self.components]

    @property
    def builtin(self) -> Component | None:
        """altlearn's own registration, which the plain name means; None if there is none."""
        return next((c for c in self.components if c.package == BUILTIN_PACKAGE), None)

    def message(self) -> str:
        """What the plain name means here, and the qualified names to write."""
        text = f"{self.name!r} is registered by {_listed(self.packages, 'and')}: "
        builtin = self.builtin
        if builtin is not None:
            others = [c.qualified_name for c in self.components if c is not builtin]
            return (
                text + f"{self.name!r} means altlearn's own; write {_listed(others, 'or')} for the plugin's"
            )
        return text + f"write {_listed([c.qualified_name for c in self.components], 'or')}"


def _listed(items: list[str], word: str) -> str:
    """a; a or b; a, b or c."""
    return items[-1] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def find(
    kind: str, name: str, plain: dict[str, Component], conflicts: list[Conflict], hint: str = ""
) -> Component:
    """The component ``name`` (plain or ``package:name``) means: KeyError when nothing registers
    that name, PluginError when the plain name is ambiguous or the package registers no such
    name (``hint``, about broken or left-out plugins, is appended to that one)."""
    package, separator, bare = name.rpartition(SEPARATOR)
    if separator and not package:
        raise KeyError(name)
    clash = next((c for c in conflicts if c.kind == kind and c.name == bare), None)
    if clash is None:
        registrations = [plain[bare]]  # KeyError: no package registers it
    else:
        registrations = clash.components
    if not package:
        if clash is None:
            return registrations[0]
        if clash.builtin is None:
            raise PluginError(clash.message())
        return clash.builtin
    wanted = normalized(package)
    for component in registrations:
        if normalized(component.package) == wanted:
            return component
    where = [bare] if clash is None else [c.qualified_name for c in registrations]
    raise PluginError(
        f"{name!r}: package {package} registers no {kind} {bare!r}; "
        f"{_listed([c.package for c in registrations], 'and')} "
        f"{'do' if len(where) > 1 else 'does'}: write {_listed(where, 'or')}{hint}"
    )


def listing(kind: str, plain: dict[str, Component], conflicts: list[Conflict]) -> list[tuple[str, Component]]:
    """(the name to write, component) for every registration of ``kind``, by name: a name that
    several packages register shows each of them under its qualified name (a built-in, which
    keeps the plain name, under that)."""
    rows = []
    clashes = {c.name: c for c in conflicts if c.kind == kind}
    for name in sorted(plain):
        clash = clashes.get(name)
        if clash is None:
            rows.append((name, plain[name]))
            continue
        for component in clash.components:
            rows.append((name if component is clash.builtin else component.qualified_name, component))
    return rows
