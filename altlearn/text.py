"""How altlearn words text for a person: problems (paths, short values, suggestions) and anything
read from a file, a store or a plugin made safe for a terminal.

Every module that reports a problem (the spec validator, the network section, the sweep file) words
it the same way; every text that came from outside goes through :func:`printable` before it is
printed. A spec is data, possibly someone else's: an ESC or BEL in a run name must not retitle,
recolour or clear the user's terminal, so control characters are shown as Python escapes (``\\x1b``).
Durations are worded alike too (:func:`seconds_text`: a run's epochs, a comparison's columns).
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

# C0 controls, DEL and the C1 range (\x9b alone starts a CSI sequence on many terminals).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(value: object) -> str:
    """``str(value)`` with every control character escaped, line breaks included."""
    return _CONTROL.sub(_escape, str(value))


_MARKDOWN_SPECIAL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`"})


def markdown_text(value: object) -> str:
    """``printable(value)`` as literal Markdown text: a label from a store cannot become HTML
    (``<script>``), code, a table cell's end or a link (``](`` loses its meaning; the intervals'
    brackets stay as they are)."""
    return printable(value).translate(_MARKDOWN_SPECIAL).replace("](", "]\\(")


def printable_message(text: str) -> str:
    """A message of altlearn's own, which may span lines, with any other control escaped."""
    return _CONTROL_BUT_NEWLINE.sub(_escape, text)


# Keys people put in the wrong section (e.g. the rule's lr when the rule uses an optimizer):
# where each one lives instead.
HOME_OF_KEY = {
    "lr": "optimizer.lr",
    "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay",
    "betas": "optimizer.betas",
    "epochs": "train.epochs",
    "device": "train.device",
    "batch_size": "data.batch_size",
}


def glued_key(key: Any, choices: list[str]) -> str:
    """For an unknown mapping key like 'lr:0.01' (YAML's reading of ``{lr:0.01}``: one key, no
    value), the hint to put the space back; '' for any other key."""
    name, colon, value = str(key).partition(":")
    if colon and name in choices and value and not value[0].isspace():
        return f"did you mean {name + ': ' + value!r}? YAML needs a space after the colon; "
    return ""


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def invalid(value: Any, kind: str, reason: str) -> str:
    """pydantic's error ``kind`` on ``value`` as a problem's message: the value as YAML spells it,
    pydantic's reason, and for a count written like 1e3 the number to write instead."""
    reason = reason.removeprefix("Value error, ")
    if kind == "literal_error":  # pydantic lists a choice of true/false/null as Python spells it
        reason = _PYTHON_CONSTANT.sub(lambda m: _yaml_spelling(_CONSTANTS[m.group()]), reason)
    return f"{short(value)} is invalid: {reason}{exponent_hint(kind, value)}"


# True, False or None outside quotes (a text choice 'True' keeps its spelling)
_PYTHON_CONSTANT = re.compile(r"(?<!['\w])(True|False|None)(?!['\w])")
_CONSTANTS = {"True": True, "False": False, "None": None}


def exponent_hint(kind: str, value: Any) -> str:
    """For a count written like 1e3, which YAML reads as text (its numbers need a dot and a signed
    exponent: 1.0e+3), the whole number to write; '' for any other error."""
    if kind != "int_parsing" or not isinstance(value, str) or not _EXPONENT.fullmatch(value.strip()):
        return ""
    number = float(value)
    if not number.is_integer() or abs(number) >= 1e18:
        return f"; YAML reads {value} as text, not a number, and a count is a whole number"
    return f"; YAML reads {value} as text, not a number: write {int(number)}"


def key_hint(key: Any, choices: list[str]) -> str:
    """For a key no model takes: how to put a lost space back, else the option probably meant."""
    return glued_key(key, choices) or did_you_mean(key, choices)


def closest(word: Any, choices: list[str]) -> str | None:
    """The choice ``word`` most probably misspells, or None."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: Any, choices: list[str]) -> str:
    close = closest(word, choices)
    return f"did you mean {close!r}? " if close else ""


def join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def short(value: Any) -> str:
    """The value as its user wrote it in YAML where Python spells it otherwise (true, null, .nan),
    also inside lists and mappings, else its repr (quotes show that a value is text), cut to 60
    characters."""
    text = _yaml_spelling(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_spelling(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_spelling(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{_yaml_spelling(key)}: {_yaml_spelling(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    return repr(value)


def elsewhere_hint(key: Any, path: str) -> str:
    home = HOME_OF_KEY.get(str(key))
    if home is None or home.split(".")[0] == path.split(".")[0].split("[")[0]:
        return ""
    return f" ({key!r} belongs in {home})"


def article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def rewrite_generated(path, updated: str, check: bool, what: str, regenerate: str) -> int:
    """The end of a docs generator (``python -m ...``): with ``check``, exit status 1 when the file
    at ``path`` differs from ``updated``; otherwise write it if it changed. ``what`` names the
    generated part ("option tables"), ``regenerate`` the command that writes it."""
    text = path.read_text()
    if check:
        if updated != text:
            print(f"{path}: {what} out of date; regenerate with: {regenerate}")
            return 1
        return 0
    if updated != text:
        path.write_text(updated)
        print(f"{path}: {what} regenerated")
    return 0


def seconds_text(seconds: float) -> str:
    """Three significant digits with their trailing zeros (0.300 beside 0.305, not 0.3; 0.0123)
    and never an exponent (a search's 1,234 s, not 1.23e+03)."""
    if not math.isfinite(seconds) or seconds <= 0:
        return f"{seconds:.3f}" if math.isfinite(seconds) else str(seconds)
    rounded = float(f"{seconds:.3g}")  # 9.996 -> 10.0: its digits are counted after rounding
    if rounded >= 100:
        return f"{seconds:,.0f}"  # whole seconds: a search's 4,568 s keeps its digits
    return f"{rounded:.{2 - math.floor(math.log10(rounded))}f}"
