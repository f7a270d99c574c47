"""What a run is, as MLflow tags and params: rule, data, network, versions, and who trains it."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from altlearn.spec.keys import CONFIGURATION_TAG, spec_keys
from altlearn.spec.model import Spec, flatten
from altlearn.tracking.provenance import provenance_tags
from altlearn.version import __version__

MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value is 6000 characters

#: Which process trains a RUNNING run: `altlearn resume` refuses a run whose process still lives.
OWNER_HOST, OWNER_PID, OWNER_STARTED = "altlearn.host", "altlearn.pid", "altlearn.pid_started"
#: The CPU kernels torch ran with (AVX512, AVX2, ...; "AVX512 then AVX2" for a run resumed elsewhere).
CPU_KERNELS_TAG = "torch.cpu_capability"


def _tags(spec: Spec) -> dict[str, str]:
    import torch

    tags = {
        "altlearn.rule": spec.rule.type,
        "altlearn.dataset": spec.data.type,
        "altlearn.network": " ".join(_layer_label(b) for b in spec.layers),
        "altlearn.version": __version__,
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
        # the CPU kernels torch picked (AVX512, AVX2, ...): they round differently, so the same spec
        # and seed can end apart on two machines (docs/reproductions.md measured 0.1 points)
        CPU_KERNELS_TAG: _cpu_capability(torch),
        "mlflow.source.name": spec.source or "",
        "mlflow.source.type": "LOCAL",
        **provenance_tags(),  # the CPU and the commit: where a row's CPU-seconds come from
    }
    for package, version in sorted(spec.packages.items()):
        tags[f"plugin.{package}"] = version
    # compare keeps the seeds of one configuration together by it, across altlearn versions
    tags[CONFIGURATION_TAG] = spec_keys(spec)[1]
    tags.update(spec.tracking.tags)
    return tags


def kernels_continued(run_id: str, held: str | None) -> tuple[str, str] | None:
    """When run ``run_id``, which ran with the CPU kernels its tag ``held`` names, continues on a
    machine whose kernels differ: the tag it gets (both, in order: "AVX512 then AVX2") and a note
    for the user. None on the same kernels, or where either is not known (a run from before the
    tag, a torch that cannot tell)."""
    import torch

    here, last = _cpu_capability(torch), (held or "").rsplit(" then ", 1)[-1]
    if last in ("", "unknown", here) or here == "unknown":
        return None
    note = (
        f"run {run_id} ran with torch's {last} CPU kernels and continues "
        f"with {here} ones: they round differently, so from here it will not repeat an "
        f"uninterrupted run to the last digit (its tag {CPU_KERNELS_TAG} records both)"
    )
    return f"{held} then {here}", note


def _cpu_capability(torch) -> str:
    capability = getattr(torch.backends.cpu, "get_cpu_capability", None)  # not in every torch
    return capability() if capability else "unknown"


def _layer_label(block) -> str:
    params = block.params.model_dump()
    size = params.get("out_features") or params.get("out_channels")
    return f"{block.type}{size}" if size else block.type


def owner_tags() -> dict[str, str]:
    """This process, as `altlearn resume` checks it later (the start time tells a reused PID)."""
    return {
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(os.getpid()),
        OWNER_STARTED: process_started(os.getpid()) or "",
    }


def process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), else None; "exited" for
    a process that has ended but not yet been collected by its parent (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name before ")" may hold spaces
    return "exited" if fields[0] == "Z" else fields[19]  # state is field 3, start time field 22


def owner_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process recorded in ``tags`` still runs: None if it ran on another machine."""
    if tags.get(OWNER_HOST) != socket.gethostname() or not tags.get(OWNER_PID, "").isdigit():
        return None
    pid = int(tags[OWNER_PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    started = tags.get(OWNER_STARTED)
    return not started or process_started(pid) in (None, started)


def spec_params(spec: Spec) -> list[tuple[str, str]]:
    """The flattened resolved spec, each value cut to what MLflow stores."""
    return [(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in flatten(spec.to_dict()).items()]
