"""The set-up of a comparison as a methods section states it: data, subset and split, network,
epochs, optimizer, schedule, budget, search space, and the versions that ran it.

Everything is read from the compared runs' params and tags (a search's budget and space from its
sweep file). A setting that differs between the runs is shown with each value; one the search
chose is shown as searched, with its range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from altlearn.compare.comparison import Report
from altlearn.compare.labels import range_text, value_text
from altlearn.compare.selection import RunData

#: per line of the block: its name and the params it is made of (a prefix ends with ".")
PARAM_LINES = (
    ("data", ("data.type", "data.train_subset", "data.test_subset", "data.normalize")),
    ("split", ("data.val_size", "data.test_fraction")),
    ("training", ("train.epochs", "data.batch_size", "train.precision", "train.clip_grad_norm")),
    ("loss", ("train.loss.",)),
    ("optimizer", ("optimizer.",)),
    ("schedule", ("schedule.",)),
    ("rules", ("rule.type",)),
)
UNSET = ("None", "")


def setup_lines(report: Report) -> list[tuple[str, str]]:
    """(name, text) per line of the set-up block, in the order a methods section reads."""
    runs = [run for stats in report.groups for run in stats.group.runs]
    searched = _searched(report)
    lines = []
    for name, keys in PARAM_LINES:
        text = _params_text(runs, keys, searched)
        if text:
            lines.append((name, text))
            if name == "data":
                lines.append(("network", _tag_text(runs, "altlearn.network")))
    lines += _tuning_lines(report)
    lines.append(("seeds", _seeds_text(report)))
    lines.append(("software", _versions(runs + _search_runs(report))))
    return [(name, text) for name, text in lines if text]


def _searched(report: Report) -> dict[str, str]:
    """Each searched (or, with --select-by, varied) path and its range as text."""
    tuning = report.tuning
    if tuning is None:
        return {}
    found: dict[str, str] = {}
    for case in tuning.cases:
        for path in (p for c in case.candidates for p in c.values):
            axis = case.axes.get(path)
            found.setdefault(path, range_text(axis) if axis else "chosen per case")
    return found


def _search_runs(report: Report) -> list[RunData]:
    cases = report.tuning.cases if report.tuning else []
    return [run for case in cases for c in case.candidates for run in c.runs]


def _keys(runs: list[RunData], prefixes: tuple[str, ...]) -> list[str]:
    found = {
        k
        for run in runs
        for k in run.params
        if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes)
    }
    order = {p: i for i, p in enumerate(prefixes)}
    return sorted(
        found, key=lambda k: (next((order[p] for p in prefixes if k.startswith(p)), 99), k != _type_key(k), k)
    )


def _type_key(key: str) -> str:
    return key.rsplit(".", 1)[0] + ".type"


def _params_text(runs: list[RunData], prefixes: tuple[str, ...], searched: dict[str, str]) -> str:
    parts = []
    for key in _keys(runs, prefixes):
        values = Counter(run.params.get(key, "(unset)") for run in runs)
        name = key.rsplit(".", 1)[-1] if not key.endswith(".type") else ""
        if key in searched:
            parts.append(f"{name or key} searched: {searched[key]}")
        elif len(values) == 1:
            value = next(iter(values))
            if value not in UNSET:
                parts.append(f"{name} {value_text(value)}".strip())
        else:
            spread = ", ".join(f"{value_text(v)} ({n})" for v, n in sorted(values.items()))
            parts.append(f"{name} {spread}".strip())
    return "; ".join(parts)


def _tag_text(runs: list[RunData], tag: str) -> str:
    values = Counter(run.tags.get(tag, "") for run in runs)
    values.pop("", None)
    return ", ".join(
        f"{v} ({n} run{'s' if n != 1 else ''})" if len(values) > 1 else v for v, n in values.items()
    )


def _tuning_lines(report: Report) -> list[tuple[str, str]]:
    tuning = report.tuning
    if tuning is None:
        return []
    where = "after the last epoch" if tuning.objective_at == "last" else "at its best epoch"
    way = "maximised" if tuning.direction == "maximize" else "minimised"
    lines = [("chosen by", f"{tuning.objective} {where} ({way}), on validation; reported: test accuracy")]
    if tuning.mode == "select":
        per = ", ".join(tuning.per)
        lines.append(
            (
                "budget",
                f"a grid: per {per}, "
                + ", ".join(f"{c.label} {len(c.candidates)}" for c in tuning.cases)
                + " configurations",
            )
        )
        return lines
    spaces = {f"{path} {text}" for path, text in _searched(report).items()}
    lines.append(("search space", "; ".join(sorted(spaces))))
    plan = tuning.plan
    per_case = [
        f"{c.label} {len(c.candidates)} ({c.count('pruned')} pruned, {c.epochs} trial-epochs)"
        for c in tuning.cases
    ]
    sampler = (
        f"{plan.sampler} sampler, {plan.pruner} pruner from epoch {plan.pruner_min_epochs}" if plan else ""
    )
    lines.append(
        ("budget", f"search trials per case: {'; '.join(per_case)}" + (f"; {sampler}" if sampler else ""))
    )
    return lines


def _seeds_text(report: Report) -> str:
    tuning = report.tuning
    seeds = sorted({run.seed for stats in report.groups for run in stats.group.runs}, key=_seed_order)
    if tuning is not None and tuning.mode == "search":
        search = sorted({run.seed for run in _search_runs(report)}, key=_seed_order)
        return f"search {', '.join(search)}; finals (fresh) {', '.join(seeds)}"
    return ", ".join(seeds)


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.lstrip("-").isdigit() else (0, seed)


def _versions(runs: Iterable[RunData]) -> str:
    found: dict[str, Counter] = {}
    for run in runs:
        for tag, value in run.tags.items():
            if tag in ("altlearn.version", "torch.version", "python.version") or tag.startswith("plugin."):
                found.setdefault(tag.removesuffix(".version").removeprefix("plugin."), Counter())[value] += 1
    return "; ".join(f"{name} {', '.join(sorted(values))}" for name, values in found.items())
