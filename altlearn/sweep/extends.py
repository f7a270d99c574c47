"""``extends:``: a sweep file that builds on another (a leaderboard's board) and adds its cases.

The file named by ``extends`` (relative to the extending file's folder, like ``base``) is read
first; the extending file's keys then replace its keys, except ``cases`` (the extending file's
cases come after the extended file's) and ``set`` (merged, the extending file's paths winning).
Relative ``base`` paths of the extended file stay relative to *its* folder. A board's protocol
(base spec, search, finals) therefore reaches a plugin author's own case unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from altlearn.errors import Problem, SpecError, SweepError
from altlearn.spec.files import load_yaml

MAX_DEPTH = 8  # a chain of extends this long is a mistake, not a design


def with_extends(raw: dict[str, Any], path: Path) -> tuple[dict[str, Any], str | None]:
    """``raw`` with what it extends merged in, and the merged file as text (to record with the
    sweep: compare reads the search from it); (raw, None) when it extends nothing."""
    if "extends" not in raw:
        return raw, None
    merged = _merged(raw, path, [path.resolve()])
    header = f"# {path.name}, merged with the file it extends ({raw['extends']})\n"
    return merged, header + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True)


def _merged(raw: dict[str, Any], path: Path, chain: list[Path]) -> dict[str, Any]:
    target = raw.get("extends")
    if target is None:
        return raw
    if not isinstance(target, str) or not target.strip():
        _fail(path, f"{target!r}: the path of a sweep file to extend (relative to this file's folder)")
    parent_path = (path.parent / target).resolve()
    if parent_path in chain:
        _fail(path, f"{target}: extends itself through {' -> '.join(p.name for p in chain)}")
    if len(chain) >= MAX_DEPTH:
        _fail(path, f"{target}: more than {MAX_DEPTH} files extend each other")
    try:
        parent = load_yaml(parent_path)
    except SpecError as exc:
        raise SweepError([Problem("extends", f"{target}: {p}") for p in exc.problems], str(path)) from None
    parent = _absolute_bases(_merged(parent, parent_path, [*chain, parent_path]), parent_path.parent)
    own = {key: value for key, value in raw.items() if key != "extends"}
    merged = {**parent, **{k: v for k, v in own.items() if k not in ("cases", "set")}}
    merged.pop("extends", None)
    if isinstance(parent.get("set"), dict) and isinstance(own.get("set"), dict):
        merged["set"] = {**parent["set"], **own["set"]}
    elif "set" in own:
        merged["set"] = own["set"]
    if isinstance(parent.get("cases"), list) and isinstance(own.get("cases"), list):
        merged["cases"] = parent["cases"] + own["cases"]
    elif "cases" in own:
        merged["cases"] = own["cases"]
    return merged


def _absolute_bases(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The file's relative base paths (top level and per case) made absolute from ``folder``."""

    def absolute(base: Any) -> Any:
        return (
            str((folder / base).resolve()) if isinstance(base, str) and not Path(base).is_absolute() else base
        )

    out = dict(raw)
    if "base" in out:
        out["base"] = absolute(out["base"])
    if isinstance(out.get("cases"), list):
        out["cases"] = [
            {**case, "base": absolute(case["base"])} if isinstance(case, dict) and "base" in case else case
            for case in out["cases"]
        ]
    return out


def _fail(path: Path, message: str) -> None:
    raise SweepError([Problem("extends", message)], str(path))
