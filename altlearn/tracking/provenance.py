"""Where a run was trained: the machine's CPU and the altlearn commit, as run tags.

A leaderboard row quotes CPU-seconds; a reader needs the CPU they were measured on and the code
that spent them. Both are read once per process (a sweep worker tags many runs).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

CPU_TAG, CPUS_TAG, COMMIT_TAG = "host.cpu", "host.cpus", "altlearn.commit"
PACKAGE = Path(__file__).resolve().parent.parent  # the altlearn package folder


@functools.cache
def provenance_tags() -> dict[str, str]:
    tags = {CPU_TAG: cpu_model(), CPUS_TAG: str(os.cpu_count() or "unknown")}
    commit = source_commit()
    if commit:
        tags[COMMIT_TAG] = commit
    return tags


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def source_commit(here: Path = PACKAGE) -> str | None:
    """The git commit of the source in ``here`` (altlearn's own by default), with ``-dirty`` when
    tracked files there differ from it; None for an installed package (no git work tree around it)
    or without git."""
    try:
        head = _git(here, "rev-parse", "HEAD")
        changed = _git(here, "status", "--porcelain", "--untracked-files=no", "--", str(here))
    except (OSError, subprocess.SubprocessError):
        return None
    if head is None:
        return None
    return head + ("-dirty" if changed else "")


def _git(where: Path, *args: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None
