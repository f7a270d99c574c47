"""Reading a spec: YAML files (with line numbers, duplicate keys refused) and ``-s`` overrides.

Mistakes found here, like every mistake in a spec, are ``Problem``s collected in a ``SpecError``;
``altlearn.spec`` validates what this module reads.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """One or more user mistakes in a spec; ``problems`` lists each with its YAML path."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.report())

    def report(self) -> str:
        where = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        head = f"{where}{count} problem{'s' if count != 1 else ''} in the spec"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


class _StrictLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error: YAML keeps the last one
    silently, so `lr: 0.1` ... `lr: 0.001` would run with a value the user may not mean."""

    def construct_mapping(self, node, deep=False):
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError([Problem("", f"no such file: {path}")]) from None
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem("", f"{path} is not UTF-8 text (byte {exc.start}): is it a YAML spec?")]
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem("", f"{where}not valid YAML ({problem})")], str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem("", f"the spec must be a mapping of sections, got {type(data).__name__}")], str(path)
        )
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``path=value`` overrides; values are YAML (so 0.01, true, [64, 64] are typed).

    Paths use dots, with list items by index: ``network.layers.1.out_features=400`` or
    ``network.layers[1].out_features=400``.
    """
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {item}", "expected path=value, e.g. optimizer.lr=0.01"))
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        parts = [p for p in key.strip().replace("[", ".").replace("]", "").split(".") if p]
        node: Any = raw
        try:
            for part in parts[:-1]:
                node = _child(node, part)
            _set(node, parts[-1], value)
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(Problem(f"--set {item}", f"cannot set {key}: {exc.args[0]}"))
    if problems:
        raise SpecError(problems)
    return raw


def _child(node: Any, part: str) -> Any:
    if isinstance(node, list):
        index = _index(node, part)
        return node[index]
    if not isinstance(node, dict):
        raise TypeError(f"{part!r} is inside a value that is not a mapping")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _set(node: Any, part: str, value: Any) -> None:
    if isinstance(node, list):
        node[_index(node, part)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise TypeError(f"{part!r} is inside a value that is not a mapping")


def _index(node: list, part: str) -> int:
    if not part.lstrip("-").isdigit():
        raise KeyError(f"{part!r} is not a list index (the list has {len(node)} items)")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise IndexError(f"index {index} is out of range (the list has {len(node)} items)")
    return index
