"""Reading a spec: YAML files (with line numbers, duplicate keys refused) and ``-s`` overrides.

Mistakes found here, like every mistake in a spec, are ``Problem``s collected in a ``SpecError``;
``altlearn.spec.load`` validates what this module reads.

What is read is bounded, so that no spec file or override can hang or exhaust altlearn: only
regular files (a FIFO or /dev/zero would block or never end), at most ``MAX_SPEC_BYTES``, and YAML
whose aliases expand to at most ``MAX_YAML_VALUES`` values nested at most ``MAX_YAML_DEPTH`` deep
(a "billion laughs" alias bomb is a few lines that expand to billions). Each refusal names its bound.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from altlearn.errors import Problem, SpecError

if TYPE_CHECKING:
    from altlearn.registry.registry import Registry

#: Specs are a few kilobytes; one with altlearn's most layers (components.values.MAX_LAYERS) is about
#: 40 kB. The bound also keeps the pure-Python YAML reader to a few seconds.
MAX_SPEC_BYTES = 250_000
#: Mappings, lists and scalars once every alias is expanded (a spec has a few hundred, one with
#: the most layers about 5,000).
MAX_YAML_VALUES = 20_000
#: Nesting, aliases expanded; specs nest about 6 deep. Also keeps the readers' recursion safe.
MAX_YAML_DEPTH = 50


class YamlTooLarge(yaml.YAMLError):
    """Well-formed YAML past one of this module's bounds; the message names the bound."""


class _StrictLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error: YAML keeps the last one
    silently, so `lr: 0.1` ... `lr: 0.001` would run with a value the user may not mean. And
    bounded: nesting, alias expansion and number length (see the module's docstring)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # The composer recurses once per nesting level: stop before Python's recursion limit does.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                # types-PyYAML leaves peek_event unannotated; it returns the next yaml.Event
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlTooLarge(
                    f"line {mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels deep "
                    "(bound: nesting depth)"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses to parse integers of more than 4300 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} digits is not a usable number", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; a key written out overrides a merged one
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line "
                    f"{seen[key].start_mark.line + 1}); remove one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def _check_expansion(root: yaml.Node | None) -> None:
    """Refuse a node graph whose aliases expand past the bounds, without expanding it: each node's
    expanded size and depth are computed once, iteratively (alias chains can be long)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)] if root is not None else []
    while stack:
        node, children_done = stack.pop()
        if id(node) in size and not children_done:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in depth:  # met again below itself: an alias inside its own anchor
                raise YamlTooLarge(
                    f"line {node.start_mark.line + 1}: a value contains itself through an alias"
                )
            depth[id(node)] = 0  # in progress
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        size[id(node)] = 1 + sum(size[id(child)] for child in children)
        depth[id(node)] = 1 + max((depth[id(child)] for child in children), default=0)
        if size[id(node)] > MAX_YAML_VALUES:
            raise YamlTooLarge(
                f"it holds more than {MAX_YAML_VALUES:,} values once its aliases are expanded (bound: "
                "alias expansion; an alias bomb?)"
            )
        if depth[id(node)] > MAX_YAML_DEPTH:
            raise YamlTooLarge(
                f"its aliases nest values more than {MAX_YAML_DEPTH} levels deep (bound: nesting depth)"
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _read_spec_file(path: Path) -> str:
    """The file's text, if it is a regular file of at most MAX_SPEC_BYTES."""
    try:
        # Non-blocking, so that opening a FIFO returns at once (and is then refused) instead of
        # waiting for a writer; it changes nothing for regular files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecError([Problem("", f"no such file: {path}")]) from None
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read {path}: {exc.strerror}")]) from None
    kind = _not_regular(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise SpecError([Problem("", f"{path} is {kind}, not a regular file; a spec is a YAML file")])
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            [Problem("", f"{path} is larger than {MAX_SPEC_BYTES:,} bytes (bound: spec file size)")]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem("", f"{path} is not UTF-8 text (byte {exc.start}): is it a YAML spec?")]
        ) from None


def _not_regular(mode: int) -> str | None:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a file"


def parse_yaml(text: str) -> Any:
    """YAML text -> Python values, with duplicate keys refused and the bounds applied (raises
    YamlTooLarge, or another yaml.YAMLError for text that is not YAML)."""
    return yaml.load(text, Loader=_StrictLoader)


def _hint(text: str, mark: yaml.Mark | None) -> str:
    """The one YAML mistake a spec path invites: ``{layers[1].init: zeros}``, brackets in a key
    inside braces, which YAML reads as the start of a list."""
    line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
    if re.search(r"\{[^}]*\w\[\d+\]", line):  # an index right after a name, inside braces
        return "; a key with [ ] inside { } must be quoted ('network.layers[1].init': zeros) or written on its own line"
    return ""


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = _read_spec_file(path)
    try:
        data = parse_yaml(text)
    except YamlTooLarge as exc:
        raise SpecError([Problem("", f"refused: {exc}")], str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            [Problem("", f"{where}not valid YAML ({problem}){_hint(text, mark)}")], str(path)
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem("", f"the spec must be a mapping of sections, got {type(data).__name__}")], str(path)
        )
    return data


def apply_overrides(
    raw: dict[str, Any], overrides: list[str], registry: Registry | None = None
) -> dict[str, Any]:
    """Apply ``path=value`` overrides; values are YAML (so 0.01, true, [64, 64] are typed).
    ``registry`` tells which bare names are components (default: the installed plugins').

    Paths use dots, with list items by index: ``network.layers.1.out_features=400`` or
    ``network.layers[1].out_features=400``.
    """
    problems: list[Problem] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {item}", "expected path=value, e.g. optimizer.lr=0.01"))
            continue
        if not text.strip():
            # a forgotten value would otherwise be YAML's null, i.e. quietly the default
            problems.append(
                Problem(
                    f"--set {item}", f"no value after '='; give one, or write {key.strip()}=null for null"
                )
            )
            continue
        try:
            value = parse_yaml(text)
        except YamlTooLarge as exc:
            problems.append(Problem(f"--set {_short_item(item)}", f"refused: {exc}"))
            continue
        except yaml.YAMLError:
            value = text
        parts = [p for p in key.strip().replace("[", ".").replace("]", "").split(".") if p]
        node: Any = raw
        try:
            for part in parts[:-1]:
                node = _child(node, part, registry)
            _set(node, parts[-1], value)
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(Problem(f"--set {item}", f"cannot set {key}: {exc.args[0]}"))
    if problems:
        raise SpecError(problems)
    return raw


def _short_item(item: str) -> str:
    return item if len(item) <= 80 else item[:77] + "..."


def _child(node: Any, part: str, registry: Registry | None = None) -> Any:
    index: int | str
    if isinstance(node, list):
        index = _index(node, part)
    elif isinstance(node, dict):
        index = part
        if part not in node or node[part] is None:
            node[part] = {}
    else:
        raise TypeError(f"{part!r} is inside a value that is not a mapping")
    if isinstance(node[index], str) and index not in _TEXT_KEYS and _names_a_component(node[index], registry):
        node[index] = {"type": node[index]}  # a bare component name is short for {type: name}
    return node[index]


#: keys whose text is never a component name: a path through them is a mistake, not a block
_TEXT_KEYS = ("type", "name", "description")


def _names_a_component(text: str, registry: Registry | None = None) -> bool:
    """Whether ``text`` is the name of a component of some kind (then a path through it means its
    block); any other text (a folder, a device, an option's value) is not a block to go into."""
    from altlearn.registry.registry import KINDS, get_registry

    registry = registry or get_registry()
    return any(text in registry.names(kind) for kind in KINDS)


def _set(node: Any, part: str, value: Any) -> None:
    if isinstance(node, list):
        node[_index(node, part)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise TypeError(f"{part!r} is inside a value that is not a mapping")


def _index(node: list[Any], part: str) -> int:
    if not part.lstrip("-").isdigit():
        raise KeyError(f"{part!r} is not a list index (the list has {len(node)} items)")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise IndexError(f"index {index} is out of range (the list has {len(node)} items)")
    return index


def set_path(raw: dict[str, Any], key: str, value: Any, registry: Registry | None = None) -> None:
    """Set one already-typed value at a dotted path (what a sweep's overrides do); the path
    grammar and the KeyError/IndexError/TypeError are those of ``apply_overrides``."""
    parts = [p for p in key.strip().replace("[", ".").replace("]", "").split(".") if p]
    node: Any = raw
    for part in parts[:-1]:
        node = _child(node, part, registry)
    _set(node, parts[-1], value)
