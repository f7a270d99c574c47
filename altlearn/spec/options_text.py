"""How a component's option reads to a person: its type with its limits, and its default.

Shared by ``altlearn options`` and the generated tables of docs/spec.md, so both say the same.
Nothing here imports torch.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from altlearn.components.ref import reference_of
from altlearn.registry.registry import KIND_NOUNS

_LIMITS = (
    ("gt", ">"),
    ("ge", ">="),
    ("lt", "<"),
    ("le", "<="),
    ("min_length", "length >="),
    ("max_length", "length <="),
)


def type_text(info: FieldInfo) -> str:
    """``int > 0``, ``float >= 0.0 < 1.0``, ``one of a, b``, ``int or null``, a nested block..."""
    reference = reference_of(info)
    if reference is not None:
        noun = KIND_NOUNS[reference.kind]
        if reference.many:
            return f"a list of {noun}s: each its name, or {{type: name, its options..., repeat: N}}"
        text = f"a {noun}: its name, or {{type: name, its options...}}"
        return text + " or null" if reference.optional else text
    limits = "".join(_limit(m) for m in info.metadata)
    text = _annotation_text(info.annotation)
    if limits and text.endswith(" or null"):  # the limits are the number's: "int >= 0 or null"
        return text.removesuffix(" or null") + limits + " or null"
    return text + limits


def default_value(info: FieldInfo) -> Any:
    """The default as a spec would write it (a nested block as its type name when it has no
    options), or the string ``required``."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if reference_of(info) is not None and isinstance(value, dict) and set(value) == {"type"}:
        return value["type"]
    return value


def yaml_text(value: Any) -> str:
    """A value as a spec writes it in YAML: ``null``, ``true``, ``uniform``, ``[0.9, 0.999]``, ``{}``;
    a string YAML would read as something else (``''``, ``'null'``, ``'1'``) in quotes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and not _reads_back(value):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _reads_back(text: str) -> bool:
    """Whether YAML reads ``text``, unquoted, as that same string."""
    import yaml

    try:
        return yaml.safe_load(text) == text and text == text.strip()
    except yaml.YAMLError:
        return False


def _annotation_text(annotation: Any) -> str:
    """``int``, ``int > 0 or null``, ``one of fp32, tf32, bf16``, ``tuple[float, float]``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _annotation_text(args[0]) + "".join(_limit(m) for m in args[1:])
    if origin in (Union, types.UnionType):
        named = [_annotation_text(a) for a in args if a is not type(None)]
        return " or ".join(named + (["null"] if type(None) in args else []))
    if origin is Literal:
        # as a spec writes each value: true, not Python's True
        return "one of " + ", ".join(
            str(value).lower() if isinstance(value, bool) else str(value) for value in args
        )
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_annotation_text(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _limit(constraint: Any) -> str:
    if isinstance(
        constraint, FieldInfo
    ):  # Annotated[int, Field(gt=0)], e.g. altlearn.components.values.Count
        return "".join(_limit(m) for m in constraint.metadata)
    for attr, symbol in _LIMITS:
        if getattr(constraint, attr, None) is not None:
            return f" {symbol} {getattr(constraint, attr)}"
    return ""
