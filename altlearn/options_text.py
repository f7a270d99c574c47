"""How a component's option reads to a person: its type with its limits, and its default.

Shared by ``altlearn options`` and the generated tables of docs/spec.md, so both say the same.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo

from altlearn.component_ref import reference_of

_LIMITS = (
    ("gt", ">"),
    ("ge", ">="),
    ("lt", "<"),
    ("le", "<="),
    ("min_length", "length >="),
    ("max_length", "length <="),
)


def type_text(info: FieldInfo) -> str:
    """``int > 0``, ``float >= 0.0 < 1.0``, ``Literal['a', 'b']``, ``a rule block``..."""
    reference = reference_of(info)
    if reference is not None:
        return f"{{type: {reference.kind}, ...}} (or a {reference.kind}'s name)"
    return _annotation_text(info.annotation) + "".join(_limit(m) for m in info.metadata)


def default_value(info: FieldInfo) -> Any:
    """The default as a spec would write it (a nested block as its type name when it has no
    options), or the string ``required``."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if reference_of(info) is not None and isinstance(value, dict) and set(value) == {"type"}:
        return value["type"]
    return value


def _annotation_text(annotation: Any) -> str:
    if getattr(annotation, "__origin__", None) is None and hasattr(annotation, "__name__"):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "null")


def _limit(constraint: Any) -> str:
    for attr, symbol in _LIMITS:
        if getattr(constraint, attr, None) is not None:
            return f" {symbol} {getattr(constraint, attr)}"
    return ""
