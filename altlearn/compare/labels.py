"""Names and colours for a reader: group labels as a paper would write them, one colour per rule
that is the same in every figure, and layers named as the spec builds them.

- :func:`readable` turns a label made of ``path=value`` parts (``rule.type=fa, optimizer.lr=0.001``)
  into ``fa, lr 1e-3``; any other text (a label the user wrote) is kept as it is.
- :func:`rule_colour` is a fixed mapping: the built-in rules in a fixed order take the first colours
  of matplotlib's tab10 palette, a plugin's rule a colour chosen by a hash of its name, so a rule
  keeps its colour from one report, one figure and one sweep to the next.
- :func:`layer_names` names alignment curves ``hidden 1``, ``hidden 2``, ``output``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping

from altlearn.spec.axes import AxisRange

#: the built-in rules, in the order they take the palette's colours (never reorder: colours would move)
RULE_ORDER = ("bp", "fa", "dfa", "ifa", "ff", "goup")
#: tab10 (the first six for RULE_ORDER), then tab20's light shades for plugin rules
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
OTHER_COLOURS = PALETTE[len(RULE_ORDER) :]
#: line styles for several groups of one rule in one figure (its colour is fixed)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")  # the same, where a curve has too few points to show a style
_PART = re.compile(r"^(?P<path>[A-Za-z_][\w-]*(?:\.[\w-]+)*)=(?P<value>.*)$", re.DOTALL)
TRAINABLE_TYPES = ("linear", "conv2d", "conv1d", "conv")


def rule_colour(rule: str) -> str:
    """The colour of a rule in every figure: fixed for the built-in rules, stable for the others."""
    if rule in RULE_ORDER:
        return PALETTE[RULE_ORDER.index(rule)]
    digest = hashlib.sha256(rule.encode("utf-8", "surrogatepass")).digest()
    return OTHER_COLOURS[int.from_bytes(digest[:4], "little") % len(OTHER_COLOURS)]


def styles_by_group(rules: Iterable[str]) -> list[dict[str, str]]:
    """Per group (given its rule, in drawing order): its rule's colour, and a line style that
    tells apart several groups of one rule."""
    seen: dict[str, int] = {}
    styles = []
    for rule in rules:
        index = seen[rule] = seen.get(rule, -1) + 1
        styles.append({"color": rule_colour(rule), "linestyle": LINE_STYLES[index % len(LINE_STYLES)]})
    return styles


def number(value: float | int) -> str:
    """A value as a paper writes it: 0.001 -> 1e-3, 0.0012 -> 1.2e-3, 0.0813 -> 0.0813, 3.0 -> 3."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 1e5):
        mantissa, exponent = f"{value:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.4g}"


#: MLflow keeps a param as Python's ``str()`` of it; a reader wrote (and -s takes) YAML's spelling
_YAML_WORDS = {"True": "true", "False": "false", "None": "null"}


def value_text(text: str) -> str:
    """A param's value as text (``0.001``, ``True``, ``[0.9, 0.999]``) made readable: numbers as
    :func:`number` writes them, booleans and None as YAML spells them, anything else as it is."""
    stripped = text.strip()
    if stripped in _YAML_WORDS:
        return _YAML_WORDS[stripped]
    try:
        parsed: float | int = int(stripped) if re.fullmatch(r"[+-]?\d+", stripped) else float(stripped)
    except ValueError:
        return text
    return number(parsed)


def split_parts(label: str) -> list[str]:
    """A label's ``, ``-separated parts, leaving a value's own commas (``[0.9, 0.999]``) inside it."""
    parts, depth, current = [], 0, ""
    for index, char in enumerate(label):
        depth += (char in "[{(") - (char in "]})")
        if depth <= 0 and label.startswith(", ", index):
            parts.append(current)
            current = ""
            continue
        if current == "" and char == " " and parts and label[index - 1] == ",":
            continue  # the blank of the separator just taken
        current += char
    return [*parts, current]


def readable(label: str) -> str:
    """``rule.type=fa, optimizer.lr=0.001`` -> ``fa, lr 1e-3``: a component's type by its value
    alone, other paths by their last name (the full path where two last names collide)."""
    parts = split_parts(label)
    matches = [_PART.match(part) for part in parts]
    if not any(matches):
        return label
    short = [m["path"].rsplit(".", 1)[-1] if m else "" for m in matches]
    shown = []
    for part, match, name in zip(parts, matches, short):
        if match is None:
            shown.append(part)
        elif name == "type":
            shown.append(match["value"])
        else:
            key = name if short.count(name) == 1 else match["path"]
            shown.append(f"{key} {value_text(match['value'])}")
    return ", ".join(shown)


def values_text(values: Mapping[str, object]) -> str:
    """Chosen values ``{"optimizer.lr": 0.0012, "optimizer.weight_decay": 0}`` as ``lr 1.2e-3,
    weight_decay 0`` (full paths where two last names collide)."""
    names = [path.rsplit(".", 1)[-1] for path in values]
    return ", ".join(
        f"{name if names.count(name) == 1 else path} {value_text(str(value))}"
        for (path, value), name in zip(values.items(), names)
    )


def _layer_path(layer: str) -> tuple[int, ...]:
    """``layer3.layers.1`` (or ``3.layers.1``) -> (3, 1): its position in the network, for sorting."""
    return tuple(int(part) for part in re.findall(r"\d+", layer))


def layer_names(layers: Iterable[str], params: Mapping[str, str] | None = None) -> dict[str, str]:
    """``layer1`` -> ``hidden 1``, ..., the network's last trainable layer -> ``output``.

    The output is the last top-level trainable layer of the spec (``network.layers.<i>.type`` in
    ``params``), so a rule that measures only its hidden layers does not get one called output;
    without params, the last measured layer is taken to be the output."""
    ordered = sorted(set(layers), key=lambda name: (_layer_path(name), name))
    if not ordered:
        return {}
    output = _output_position(params or {})
    names: dict[str, str] = {}
    hidden = 0
    for layer in ordered:
        position = _layer_path(layer)
        is_output = position[:1] == (output,) if output is not None else layer == ordered[-1]
        if is_output and len(position) == 1:
            names[layer] = "output"
        else:
            hidden += 1
            names[layer] = f"hidden {hidden}"
    return names


def _output_position(params: Mapping[str, str]) -> int | None:
    found = [
        int(match[1])
        for key, value in params.items()
        if (match := re.fullmatch(r"network\.layers\.(\d+)\.type", key)) and value in TRAINABLE_TYPES
    ]
    return max(found) if found else None


def range_text(axis: AxisRange) -> str:
    """``log-uniform [1e-4, 0.1]``, ``choice {0, 1e-5, 1e-4}``."""
    shown = [number(v) if isinstance(v, (int, float)) else str(v) for v in axis.values]
    if axis.kind == "choice":
        return "choice {" + ", ".join(shown) + "}"
    return f"{axis.kind.replace('_', '-')} [{shown[0]}, {shown[1]}]"
