"""Which runs are seeds of one configuration: grouping, readable labels, and setups that should not mix.

By default two runs belong together when every resolved param is equal except the ones that differ
between repetitions or only name things (the seed, the spec's name, the tracking section), or when
they record the same configuration key (``altlearn.group_key``, which leaves out the options at
their defaults: a run by a later altlearn that logs a new option's default is still a seed of the
same configuration). ``--by`` names the params to group by instead.

A comparison is fair only between runs that differ in what their labels say. Different data sets or
networks are an error unless --by is given; any other setting that differs where no label shows it
(a param --by leaves out, or what sets two sweeps apart when each sweep's own labels name the groups:
5 epochs in one, 20 in the other) gets a note with its values and run counts.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from altlearn.compare.selection import PARENT_TAG, RunData
from altlearn.errors import CompareError
from altlearn.spec.keys import CONFIGURATION_TAG

IGNORED_PARAMS = ("seed", "name")  # the repetition itself, and a label
IGNORED_PREFIXES = ("tracking.",)  # experiment, run name, tags, checkpoint and alignment intervals
SETUP_PREFIXES = ("data.type", "network.")  # what makes accuracies incomparable when it differs
SWEEP_GROUP_TAG = "altlearn.group"  # a sweep's own readable label of a trial's configuration
SWEEP_TAG = "altlearn.sweep"  # a trial's sweep (its parent run id), as altlearn.sweep.record writes it
# Free text beside the name: different descriptions are no different setting worth a note.
NOT_SETTINGS = ("description",)
CONFIGURATION_KEY_TAG = CONFIGURATION_TAG  # a configuration's hash without its defaults (altlearn.spec.keys)
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
    sweep_labels = _sweep_labels(groups)
    if sweep_labels is not None:
        for group, label in zip(groups, sweep_labels):
            group.label = label
        return
    keys = label_params([run for group in groups for run in group.runs]) or ["rule.type"]
    for group in groups:
        params = group.params
        group.label = ", ".join(f"{k}={params.get(k, UNSET)}" for k in keys)


def _sweep_labels(groups: list[Group]) -> list[str] | None:
    """The sweeps' own labels of the groups, when every group has one and no two are the same."""
    labels = [label for label in map(_sweep_label, groups) if label]
    return labels if len(labels) == len(groups) and len(set(labels)) == len(groups) else None


def _sweep_label(group: Group) -> str | None:
    labels = {run.tags.get(SWEEP_GROUP_TAG) for run in group.runs}
    return labels.pop() if len(labels) == 1 else None


def setup_differences(runs: list[RunData]) -> list[str]:
    """'data.type: digits (6 runs), mnist (2 runs)' for each data-set or network param that differs."""
    return _differences(runs, sorted({k for run in runs for k in run.params if k.startswith(SETUP_PREFIXES)}))


def setting_differences(runs: list[RunData], grouped_by: list[str] | tuple[str, ...]) -> list[str]:
    """The same for every other setting (train.epochs, data.train_subset, ...) that is not one of
    ``grouped_by`` nor follows from one (dfa's rule.feedback_init, unset for bp, when grouped by
    rule.type), leaving out the per-run params the grouping ignores too."""
    return _differences(runs, _differing_settings(runs, grouped_by))


def _differing_settings(runs: list[RunData], grouped_by: list[str] | tuple[str, ...]) -> list[str]:
    configs = [config_params(run) for run in runs]
    keys = {k for c in configs for k in c if not k.startswith(SETUP_PREFIXES) and k not in NOT_SETTINGS}
    return [
        k
        for k in sorted(keys - set(grouped_by))
        if len({c.get(k, UNSET) for c in configs}) > 1 and not _follows_from_type(k, grouped_by, configs)
    ]


def _follows_from_type(key: str, grouped_by, configs: list[dict[str, str]]) -> bool:
    type_key = key.rsplit(".", 1)[0] + ".type"
    return type_key in grouped_by and not _varies_within_type(key, configs)


def _differences(runs: list[RunData], keys: list[str]) -> list[str]:
    lines = []
    for key in keys:
        counts = Counter(run.params.get(key, UNSET) for run in runs)
        if len(counts) > 1:
            values = ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in counts.most_common())
            lines.append(f"{key}: {values}")
    return lines


def _summary(differences: list[str], limit: int = 3) -> str:
    """The first few differing params in full, then how many more: a note stays one readable line."""
    shown = "; ".join(differences[:limit])
    more = len(differences) - limit
    return shown + (f"; and {more} more param{'s' if more > 1 else ''}" if more > 0 else "")


def _filter_example(runs: list[RunData]) -> str:
    """A --filter that keeps the most common value of the first setup param the runs differ in."""
    keys = sorted({k for run in runs for k in run.params if k.startswith(SETUP_PREFIXES)})
    for key in keys:
        counts = Counter(run.params.get(key, UNSET) for run in runs)
        value = counts.most_common(1)[0][0]
        if len(counts) > 1 and value != UNSET and "'" not in value and '"' not in value and "`" not in key:
            return f"\"params.`{key}` = '{value}'\""
    return "\"params.`data.type` = 'mnist'\""


def check_setups(
    runs: list[RunData], groups: list[Group], strict: bool, by: list[str] | None = None
) -> list[str]:
    """Notes on runs of different data sets or networks (with ``strict``, no --by: an error
    instead), and on any other setting that differs where the groups' labels do not say so."""
    differences = setup_differences(runs)
    if differences and strict:
        raise CompareError(
            "the selected runs use different data sets or networks ("
            + _summary(differences)
            + f"), so one ranking of them says little. Narrow the selection (e.g. --filter "
            f"{_filter_example(runs)}) or, to compare them anyway, choose the grouping with "
            "--by (e.g. --by rule.type)"
        )
    notes = ["the runs differ in data set or network: " + _summary(differences)] if differences else []
    notes += _unlabelled_setting_notes(runs, groups, by)
    for group in groups:
        # With --by a group holds whatever agrees on the named params: any other setting can mix.
        mixed = setup_differences(group.runs) + (setting_differences(group.runs, by) if by else [])
        if mixed:
            notes.append(
                f"group {group.label!r} mixes " + _summary(mixed) + ": its statistics average over "
                "different setups, not only over seeds"
            )
    return notes


def _unlabelled_setting_notes(runs: list[RunData], groups: list[Group], by: list[str] | None) -> list[str]:
    """Settings that differ between the compared runs although no label shows them: the params
    --by leaves out, or what sets apart the sweeps whose own labels name the groups (a 5-epoch
    sweep's "dfa" beside a 20-epoch sweep's "bp" reads as a comparison of rules alone)."""
    sweeps = _by_sweep(runs)
    if by:
        hidden, where = setting_differences(runs, by), "params --by leaves out"
    elif _sweep_labels(groups) is not None and len(sweeps) > 1:
        # Each sweep labels its trials by what it varies; what it holds fixed is in no label.
        varied_inside = set().union(*(_differing_settings(trials, ()) for trials in sweeps.values()))
        fixed_per_sweep = [k for k in _differing_settings(runs, ()) if k not in varied_inside]
        hidden = _differences(runs, fixed_per_sweep)
        where = f"settings their sweeps' labels leave out (the groups come from {len(sweeps)} sweeps)"
    else:  # every differing param is a grouping key, and the labels name those that matter
        return []
    if not hidden:
        return []
    return [
        f"the compared runs also differ in {where}: " + _summary(hidden) + "; the groups may differ "
        "in more than their labels say, and the p-values measure that difference too"
    ]


def _by_sweep(runs: list[RunData]) -> dict[str, list[RunData]]:
    sweeps: dict[str, list[RunData]] = {}
    for run in runs:
        sweeps.setdefault(run.tags.get(SWEEP_TAG) or run.tags.get(PARENT_TAG, ""), []).append(run)
    return sweeps
