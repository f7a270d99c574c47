"""Engines run a sweep's jobs and report their events: ``local`` (worker processes on this
machine) and ``ray`` (one Ray task per trial, on this machine or a cluster).

Every engine has ``start(n_jobs)`` (get ready; a mistake such as SQLite on a cluster raises
SweepUsageError before any MLflow run opens), ``run(jobs, on_event)`` (returns when every job
ended; on Ctrl-C/SIGTERM it stops the running trials, starts no more, and re-raises) and
``close()``. What one trial needs (CPU cores, GPUs) is decided here, once, for both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from altlearn.errors import SweepUsageError
from altlearn.sweep.sweep_file import Resources

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class TrialResources:
    cpus: float  # cores one trial uses (its torch threads)
    gpus: float  # GPUs one trial uses; 0.25: four trials share one GPU

    @property
    def threads(self) -> int:
        return max(1, math.floor(self.cpus))


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def trial_resources(specs: list, declared: Resources, workers: int | None) -> TrialResources:
    """The sweep file's ``resources``, else: the trials' train.threads (or an equal share of the
    cores when --workers is given, or 1), and one GPU per trial when the trials train on CUDA."""
    threads = max((s.train.threads or 0) for s in specs)
    if declared.cpus is not None:
        cpus = declared.cpus
    elif threads:
        cpus = threads
    else:
        cpus = max(1, cpu_cores() // workers) if workers else 1
    gpus = declared.gpus if declared.gpus is not None else (1.0 if any(map(_uses_cuda, specs)) else 0.0)
    return TrialResources(float(cpus), float(gpus))


def _uses_cuda(spec) -> bool:
    if spec.train.device == "cuda":
        return True
    if spec.train.device == "auto":
        import torch

        return torch.cuda.is_available()
    return False


def make_engine(name: str, resources: TrialResources, workers: int | None, address: str | None, uri: str):
    if name == "ray":
        from altlearn.sweep.engines.ray_engine import RayEngine

        if workers is not None:
            raise SweepUsageError("--workers is for --engine local; Ray places trials by their resources")
        return RayEngine(resources, address, uri)
    if address is not None:
        raise SweepUsageError("--address is for --engine ray")
    from altlearn.sweep.engines.local import LocalEngine

    return LocalEngine(local_slots(resources, workers))


#: --workers may ask for more trials side by side than the cores (or GPU shares) hold, up to this
#: many times as many (trials that wait on I/O); more only slows every trial down, and a huge number
#: would start a process per unit: it is cut to this bound, with a note.
MAX_WORKERS_PER_FIT = 4


def local_slots(resources: TrialResources, workers: int | None) -> list[dict[str, str]]:
    """One environment per worker process: CUDA trials see only their GPU (CUDA_VISIBLE_DEVICES),
    so that one trial per GPU (or 1/gpus trials, when gpus < 1) run side by side."""
    if resources.gpus <= 0:
        fits = max(1, cpu_cores() // max(1, math.ceil(resources.cpus)))
        return [{} for _ in range(min(workers or fits, fits * MAX_WORKERS_PER_FIT))]
    import torch

    gpu_count = torch.cuda.device_count()
    if gpu_count == 0:
        raise SweepUsageError(
            "the trials need a GPU (train.device or resources.gpus) but torch sees none here; "
            "set resources.gpus: 0 or train.device: cpu"
        )
    per_gpu = max(1, math.floor(1 / resources.gpus)) if resources.gpus < 1 else 1
    count = min(workers or gpu_count * per_gpu, gpu_count * per_gpu * MAX_WORKERS_PER_FIT)
    return [{"CUDA_VISIBLE_DEVICES": str((i // per_gpu) % gpu_count)} for i in range(count)]
