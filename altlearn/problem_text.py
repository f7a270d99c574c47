"""How a validation problem is worded: paths, short values, suggestions.

Kept apart from the validator so every module that reports a problem (the validator, the network
section, the sweep file) words it the same way.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

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


def did_you_mean(word: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


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
