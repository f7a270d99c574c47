"""Which runs are seeds of one configuration: grouping, readable labels, and setups that should not mix.

By default two runs belong together when every resolved param is equal except the ones that differ
between repetitions or only name things (the seed, the spec's name, the tracking section), or when
they record the same configuration key (``altlearn.group_key``, which leaves out the options at
their defaults: a run by a later altlearn that logs a new option's default is still a seed of the
same configuration). ``--by`` names the params to group by instead.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from altlearn.compare.errors import CompareError
from altlearn.compare.selection import RunData
from altlearn.spec_keys import CONFIGURATION_TAG

IGNORED_PARAMS = ("seed", "name")  # the repetition itself, and a label
IGNORED_PREFIXES = ("tracking.",)  # experiment, run name, tags, checkpoint and alignment intervals
SETUP_PREFIXES = ("data.type", "network.")  # what makes accuracies incomparable when it differs
SWEEP_GROUP_TAG = "altlearn.group"  # a sweep's own readable label of a trial's configuration
CONFIGURATION_KEY_TAG = CONFIGURATION_TAG  # a configuration's hash without its defaults (altlearn.spec_keys)
UNSET = "(unset)"


@dataclass
class Group:
    key: tuple[tuple[str, str], ...]  # (param, value) pairs that define the configuration
    runs: list[RunData]
    label: str = ""

    @property
    def params(self) -> dict[str, str]:
        return dict(self.key)


def config_params(run: RunData) -> dict[str, str]:
    return {
        k: v for k, v in run.params.items() if k not in IGNORED_PARAMS and not k.startswith(IGNORED_PREFIXES)
    }


def group_runs(runs: list[RunData], by: list[str] | None) -> list[Group]:
    """Groups in order of first appearance, each labelled by what tells it apart from the others."""
    if by:
        check_by(runs, by)
    groups: dict[tuple, Group] = {}
    for run in runs:
        if by:
            key = tuple((name, run.params.get(name, UNSET)) for name in by)
        else:
            key = tuple(sorted(config_params(run).items()))
        groups.setdefault(key, Group(key, [])).runs.append(run)
    result = list(groups.values()) if by else _merge_configurations(list(groups.values()))
    _label(result, by)
    return result


def _merge_configurations(groups: list[Group]) -> list[Group]:
    """Join the groups that hold runs of one configuration (their params differ only in an option
    one altlearn version logged and another did not); the first group's key stays."""
    merged: list[Group] = []
    home: dict[str, Group] = {}  # group key tag -> the merged group that has its trials
    for group in groups:
        keys = {run.tags[CONFIGURATION_KEY_TAG] for run in group.runs if run.tags.get(CONFIGURATION_KEY_TAG)}
        target = next((home[k] for k in keys if k in home), None)
        if target is None:
            merged.append(group)
            target = group
        else:
            target.runs.extend(group.runs)
        home.update({k: target for k in keys})
    return merged


def check_by(runs: list[RunData], by: list[str]) -> None:
    known = sorted({k for run in runs for k in run.params})
    for name in by:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        varying = ", ".join(varying_params(runs)) or "none"
        raise CompareError(
            f"--by {name}: no selected run has a param {name!r}; {hint}params that differ between "
            f"the selected runs: {varying}"
        )


def varying_params(runs: list[RunData]) -> list[str]:
    """Config params (seed excluded) whose value is not the same in every run, rule.type first."""
    keys = {k for run in runs for k in config_params(run)}
    varying = [k for k in keys if len({config_params(run).get(k, UNSET) for run in runs}) > 1]
    return sorted(varying, key=lambda k: (k != "rule.type", k))


def label_params(runs: list[RunData]) -> list[str]:
    """The varying params that tell groups apart, without those that only follow from a component's
    type (dfa's rule.feedback_init is unset for bp: rule.type already says so)."""
    configs = [config_params(run) for run in runs]
    keys = varying_params(runs)
    return [k for k in keys if _varies_within_type(k, configs)] or keys


def _varies_within_type(key: str, configs: list[dict[str, str]]) -> bool:
    type_key = key.rsplit(".", 1)[0] + ".type"
    if type_key == key or not any(type_key in c for c in configs):
        return True
    values_by_type: dict[str, set[str]] = {}
    for config in configs:
        values_by_type.setdefault(config.get(type_key, UNSET), set()).add(config.get(key, UNSET))
    return any(len(values) > 1 for values in values_by_type.values())


def _label(groups: list[Group], by: list[str] | None) -> None:
    if by:
        for group in groups:
            group.label = ", ".join(f"{k}={v}" for k, v in group.key)
        return
    sweep_labels = [_sweep_label(group) for group in groups]
    if all(sweep_labels) and len(set(sweep_labels)) == len(groups):
        for group, label in zip(groups, sweep_labels):
            group.label = label
        return
    keys = label_params([run for group in groups for run in group.runs]) or ["rule.type"]
    for group in groups:
        params = group.params
        group.label = ", ".join(f"{k}={params.get(k, UNSET)}" for k in keys)


def _sweep_label(group: Group) -> str | None:
    labels = {run.tags.get(SWEEP_GROUP_TAG) for run in group.runs}
    return labels.pop() if len(labels) == 1 else None


def setup_differences(runs: list[RunData]) -> list[str]:
    """'data.type: digits (6 runs), mnist (2 runs)' for each data-set or network param that differs."""
    lines = []
    for key in sorted({k for run in runs for k in run.params if k.startswith(SETUP_PREFIXES)}):
        counts = Counter(run.params.get(key, UNSET) for run in runs)
        if len(counts) > 1:
            values = ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in counts.most_common())
            lines.append(f"{key}: {values}")
    return lines


def _summary(differences: list[str], limit: int = 3) -> str:
    """The first few differing params in full, then how many more: a note stays one readable line."""
    shown = "; ".join(differences[:limit])
    more = len(differences) - limit
    return shown + (f"; and {more} more network or data params" if more > 0 else "")


def check_setups(runs: list[RunData], groups: list[Group], strict: bool) -> list[str]:
    """Notes on runs of different data sets or networks; with ``strict`` (no --by) an error instead."""
    differences = setup_differences(runs)
    if not differences:
        return []
    if strict:
        raise CompareError(
            "the selected runs use different data sets or networks ("
            + _summary(differences)
            + "), so one ranking of them says little. Narrow the selection (e.g. --filter "
            "\"params.`data.type` = 'digits'\") or, to compare them anyway, choose the grouping with "
            "--by (e.g. --by rule.type,data.type)"
        )
    notes = ["the runs differ in data set or network: " + _summary(differences)]
    for group in groups:
        mixed = setup_differences(group.runs)
        if mixed:
            notes.append(
                f"group {group.label!r} mixes " + _summary(mixed) + ": its statistics average over "
                "different setups, not only over seeds"
            )
    return notes
