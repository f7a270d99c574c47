"""Short keys that identify what a spec computes: a sweep trial (its configuration and seed) and a
configuration (every seed of it). Both hash the resolved spec with only the values that differ from
their defaults, so an option that a later altlearn (or plugin) adds with a default leaves every key
as it was: a sweep continues across an upgrade, and compare keeps the seeds of one configuration
together whichever version ran them. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlearn.spec.model import Spec

KEY_LENGTH = 12  # hex digits of the trial and configuration keys
# Tracking options that do not change what a run computes: changing them (checkpointing more
# often to lose less on an interruption) keeps the keys, so a sweep can be continued.
COSMETIC = ("run_name", "tags", "checkpoint_minutes")
#: the MLflow tag under which every run (sweep trial or not) records its configuration key
CONFIGURATION_TAG = "altlearn.group_key"


def spec_keys(spec: Spec) -> tuple[str, str]:
    """(trial key: the spec with its seed, configuration key: the same without the seed)."""
    resolved: dict[str, Any] = spec.to_dict(explicit=True)
    for key in COSMETIC:
        resolved["tracking"].pop(key, None)
    trial = _hash(resolved)
    resolved.pop("seed")
    return trial, _hash(resolved)


def _hash(tree: dict[str, Any]) -> str:
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
