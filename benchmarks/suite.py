"""altlearn's training throughput and peak memory against minimal hand-written PyTorch loops.

For every built-in rule (bp, fa, dfa, ifa, ff, goup), network and device, in ONE process: altlearn's
``Trainer.train_epoch`` on real MNIST (``data.train_subset = steps * batch``) and the hand-written
loop of ``benchmarks/hand_loops.py`` for the same network, the same normalised tensors, batch 128
and the same optimizer (Adam, lr 1e-3; GO-UP brings its own update, lr 0.01). After one warm-up
round each, timed rounds alternate over every rule of a network (hand bp,
altlearn bp, hand fa, altlearn fa, ..., then again) and the best round of each is compared, so a
noisy neighbour slows all alike, and DFA/BP compares figures taken in the same minutes. Untimed
memory rounds come last (the smallest peak of two counts).

    python benchmarks/suite.py                                 # every rule/network, CPU (+ CUDA)
    python benchmarks/suite.py --device cpu --rules bp,dfa --networks mlp4x2000 --steps 20
    python benchmarks/suite.py --device cuda --compile --rules bp --networks mlp4x2000
    python benchmarks/suite.py --ff-60-epochs                  # FF, 4x2000, 60 epochs (GPU)
    python benchmarks/suite.py --rule-steps                    # pc, ep, localloss, fwdgrad, drtp,
                                                               # pepita: step time / BP's (CPU)

Prints a table and the acceptance ratios; ``--json out.json`` writes every figure. How each figure
is measured: docs/performance.md.

``--rule-steps`` (``rule_steps.py``) runs instead the rules that have no hand-written loop: each
rule's step time as a ratio to BP's step on the same network (pcx's 784-128x3-10 MLP, batch 64,
for pc with T = 5 and 20 and ep; the 4x2000 MLP, batch 128, for localloss, fwdgrad, drtp and
pepita), with the bounds of issues 31 and 32. It has its own networks, batches and rules (the
main run's ``--rules``, ``--networks`` and ``--batch-size`` do not apply; ``--steps`` overrides
each group's default steps per round), so it is not part of the default run; it takes 2-4 minutes.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # hand_loops, when imported from tests
from hand_loops import CNN, HAND_LOOPS, MLP, train_round  # noqa: E402

from altlearn.errors import SpecError
from altlearn.spec.load import load_spec, validate
from altlearn.training.trainer import Trainer  # noqa: E402

NETWORKS: dict[str, MLP | CNN] = {
    "mlp1000": MLP((1000, 1000)),
    "mlp4x2000": MLP((2000, 2000, 2000, 2000)),
    "cnn": CNN((32, 64), kernel=5),
}
RULES = ("bp", "fa", "dfa", "ifa", "ff", "goup")
ADAM_LR = 1e-3
GOUP_LR = 0.01
FF_SPEC = Path(__file__).resolve().parent.parent / "specs" / "mnist_ff_4x2000.yaml"
MiB = 2**20


@dataclass(frozen=True)
class Variant:
    """How altlearn is run: ``train.compile`` and ``train.precision``."""

    compile: str = "off"
    precision: str = "fp32"

    @property
    def name(self) -> str:
        return f"{'eager' if self.compile == 'off' else self.compile}-{self.precision}"


EAGER = Variant()


# ---------------------------------------------------------------------------------- altlearn


def spec_layers(net: MLP | CNN, with_output: bool = True) -> list[dict]:
    """altlearn's ``network.layers`` for the network ``hand_loops`` builds by hand."""
    layers: list[dict] = []
    if isinstance(net, MLP):
        layers.append({"type": "flatten"})
        for width in net.hidden:
            layers += [{"type": "linear", "out_features": width}, {"type": "relu"}]
    else:
        for channels in net.channels:
            layers += [
                {
                    "type": "conv2d",
                    "out_channels": channels,
                    "kernel_size": net.kernel,
                    "padding": net.kernel // 2,
                },
                {"type": "relu"},
                {"type": "maxpool2d"},
            ]
        layers.append({"type": "flatten"})
    if with_output:
        layers.append({"type": "linear", "out_features": 10})
    return layers


def rule_options(rule: str) -> dict:
    """The rule block; options chosen to do what the hand-written loop does."""
    if rule == "goup":
        return {"type": "goup", "lr": GOUP_LR, "source": {"type": "bp"}}
    if rule == "ff":
        # The hand loop: two forward passes per layer, rms-normalised inputs, sum goodness with
        # threshold 1 per unit, no peer normalisation, plain ReLU, no softmax head.
        return {
            "type": "ff",
            "inference": "goodness",
            "peer_norm_weight": 0.0,
            "straight_through_relu": False,
            "input_norm": "rms",
            "goodness": "sum",
            "threshold": 1.0,
            "label_value": 1.0,
        }
    return {"type": rule}


def altlearn_spec(
    rule: str, net: MLP | CNN, device: str, subset: int, batch_size: int, variant: Variant = EAGER
) -> dict:
    spec = {
        "name": f"benchmark-{rule}",
        "seed": 0,
        "data": {"type": "mnist", "batch_size": batch_size, "train_subset": subset, "test_subset": 1000},
        "network": {"layers": spec_layers(net, with_output=rule != "ff")},
        "rule": rule_options(rule),
        "schedule": {"type": "constant"},
        "train": {"epochs": 1, "device": device, "precision": variant.precision, "compile": variant.compile},
        # Alignment diagnostics are extra forward/backward passes, not training: off.
        "tracking": {"alignment_every": 0},
    }
    if rule != "goup":
        spec["optimizer"] = {"type": "adam", "lr": ADAM_LR}
    return spec


_MNIST_CACHE: dict = {}


def make_trainer(raw: dict) -> Trainer:
    """A Trainer whose data set reads MNIST from disk once per process (untimed either way)."""
    spec = validate(raw)
    component = spec.data.component
    if component not in _MNIST_CACHE:
        _MNIST_CACHE[component] = component.load(spec.data.params)
    splits = _MNIST_CACHE[component]
    cached = type(
        f"Cached{component.__name__}", (component,), {"load": classmethod(lambda cls, params: splits)}
    )
    return Trainer(replace(spec, data=replace(spec.data, component=cached)))


# ---------------------------------------------------------------------------- measurement


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) that ``run`` took.

    CPU time hardly changes when other processes compete for the cores (it only counts while this
    process runs), so on a shared machine it is the steadier of the two for CPU training; on CUDA
    it says little (the host mostly waits).
    """
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    run()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def set_matmul_precision(device: torch.device, precision: str) -> None:
    """TF32 switches are process-global and altlearn sets them when a Trainer is built: set them
    before every round, so each implementation runs under its own precision."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"


class CpuPeakMemory:
    """Peak resident-set growth of the process while ``run`` executes (torch CPU tensors are not
    seen by tracemalloc).

    glibc keeps freed memory for reuse, so by default the RSS of a round says more about the
    allocator's history than about the round (repeated rounds of one loop differed by 20-50 MiB
    on the 4x2000 MLP). During the measurement every allocation of 64 KiB or more is therefore
    served by its own mmap and returned to the OS when freed (mallopt), so RSS follows the live
    tensors (repeats then agree within a few MiB). Before ``run`` the allocator's free memory is
    released (malloc_trim) and the kernel's high-water mark VmHWM is reset through
    /proc/self/clear_refs where allowed; otherwise RSS is sampled every millisecond.
    """

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)

    def __init__(self) -> None:
        try:
            self._libc = ctypes.CDLL("libc.so.6")
            _ = (self._libc.malloc_trim, self._libc.mallopt)  # glibc only: AttributeError elsewhere
        except (OSError, AttributeError):
            self._libc = None
        self.method = "unavailable"
        if _read_status("VmRSS") is not None:
            self.method = "rss-hwm-reset" if _reset_hwm() else "rss-sampled-1ms"
            if self._libc is not None:
                self.method += "+mmap-64KiB"

    def measure(self, run: Callable[[], object]) -> float | None:
        """Bytes by which the peak RSS during ``run`` exceeded the RSS when it started."""
        if self.method == "unavailable":
            run()
            return None
        gc.collect()
        if self._libc is not None:
            self._libc.mallopt(self.M_MMAP_THRESHOLD, 64 * 1024)
            self._libc.mallopt(self.M_TRIM_THRESHOLD, 128 * 1024)
            self._libc.malloc_trim(0)
        try:
            return self._peak_growth(run)
        finally:
            if self._libc is not None:
                # Fixed thresholds cannot go back to glibc's adaptive ones; these are the values
                # the adaptive ones reach once tensors of up to 32 MiB have been freed, i.e. the
                # state timed rounds of these networks run in after their warm-up.
                self._libc.mallopt(self.M_MMAP_THRESHOLD, 32 * MiB)
                self._libc.mallopt(self.M_TRIM_THRESHOLD, 64 * MiB)

    def _peak_growth(self, run: Callable[[], object]) -> float:
        if self.method.startswith("rss-hwm-reset"):
            _reset_hwm()
            base = _read_status("VmRSS")
            run()
            return float(_read_status("VmHWM") - base)
        base = _read_status("VmRSS")
        peak, done = [base], threading.Event()

        def sample() -> None:
            while not done.wait(0.001):
                peak[0] = max(peak[0], _read_status("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            run()
        finally:
            done.set()
            sampler.join()
        return float(max(peak[0], _read_status("VmRSS")) - base)


def _read_status(key: str) -> int | None:
    """A /proc/self/status memory line in bytes, or None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # "5": reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


def cuda_peak_memory(run: Callable[[], object], device: torch.device) -> float:
    """Peak bytes allocated by torch on the device above what was allocated when ``run`` started."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run()
    synchronize(device)
    return float(torch.cuda.max_memory_allocated(device) - base)


@dataclass
class _Contender:
    """One timed implementation: a hand-written loop or altlearn in one variant."""

    rule: str
    run: Callable[[], None]
    owner: object  # whose gradients to clear before the memory round
    variant: Variant | None = None  # None: the hand-written loop
    memory: float | None = None
    seconds: list[float] | None = None
    cpu_seconds: list[float] | None = None


def measure_cell(rule: str, network: str, device: str, **options) -> list[dict]:
    """Hand-written loop vs altlearn for one rule (see :func:`measure_network`)."""
    return measure_network([rule], network, device, **options)


def measure_network(
    rules: list[str],
    network: str,
    device: str,
    *,
    steps: int,
    rounds: int,
    batch_size: int = 128,
    variants: tuple[Variant, ...] = (EAGER,),
    memory_rounds: int = 2,
    net: MLP | CNN | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Hand-written loop vs altlearn for each rule on one network and device; a row per variant.

    All rules are timed in the same rounds (hand bp, altlearn bp, hand fa, altlearn fa, ...,
    then again), so ratios *between* rules (DFA step time / BP step time) compare figures taken
    in the same minutes, even when the load of a shared machine drifts. ``net`` overrides the
    shape named by ``network`` (tests use tiny networks).
    """
    net = net or NETWORKS[network]
    torch_device = torch.device(device)
    subset = steps * batch_size
    rows: dict[str, list[dict]] = {}
    contenders: list[_Contender] = []

    def base(rule: str, variant: Variant) -> dict:
        return {
            "rule": rule,
            "network": network,
            "device": device,
            "variant": variant.name,
            "steps": steps,
            "batch_size": batch_size,
        }

    def fail(rule: str, status: str, note: str) -> None:
        rows[rule] = [dict(base(rule, v), status=status, note=note) for v in variants]
        contenders[:] = [c for c in contenders if c.rule != rule]
        log(format_row(rows[rule][-1]))

    for rule in rules:
        raws = [altlearn_spec(rule, net, device, subset, batch_size, v) for v in variants]
        try:
            validate(raws[0])
        except SpecError as exc:
            # Problems only under `network`: the rule cannot train this network (ff on a CNN): a
            # documented limit. Anything else (an option this suite sets was renamed): an error.
            on_network = all(p.path.startswith("network") for p in exc.problems)
            reason = str(exc.problems[0]) if exc.problems else str(exc)  # the first says why
            fail(rule, "not applicable" if on_network else "error", f"altlearn: {reason}")
            continue
        try:
            contenders += _contenders(rule, net, raws, variants, torch_device, batch_size)
        except Exception as exc:  # noqa: BLE001 - one failing rule must not lose the others
            fail(rule, "error", _message(exc))

    def attempt(contender: _Contender, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - e.g. a rule that diverges: report, go on
            fail(contender.rule, "error", _message(exc))

    for c in list(contenders):  # warm-up: allocator, kernels, lazy optimizer state, compilation
        attempt(c, c.run)
    for c in contenders:
        c.seconds, c.cpu_seconds = [], []
    for _ in range(rounds):
        for c in list(contenders):  # hand bp, altlearn bp (each variant), hand fa, ...

            def one(c=c) -> None:
                wall, cpu = timed(c.run, torch_device)
                c.seconds.append(wall)
                c.cpu_seconds.append(cpu)

            attempt(c, one)

    # Memory rounds come last: they change the allocator's settings (see CpuPeakMemory).
    # The last step's gradients outlive a round; free them so that each memory round starts from
    # parameters + optimizer state + data, and its peak includes the gradients it creates.
    for c in contenders:
        clear_gradients(c.owner)
    cpu_memory = CpuPeakMemory() if torch_device.type == "cpu" else None
    memory_method = cpu_memory.method if cpu_memory else "cuda-max-memory-allocated"
    for _ in range(memory_rounds):  # the smallest: a stray outlier only ever adds pages
        for c in list(contenders):

            def measure(c=c) -> None:
                clear_gradients(c.owner)
                value = cpu_memory.measure(c.run) if cpu_memory else cuda_peak_memory(c.run, torch_device)
                if value is not None:
                    c.memory = value if c.memory is None else min(c.memory, value)

            attempt(c, measure)

    for rule in {c.rule for c in contenders}:
        hand = next(c for c in contenders if c.rule == rule and c.variant is None)
        hand_best, hand_cpu = min(hand.seconds), min(hand.cpu_seconds)
        rows[rule] = []
        for c in (c for c in contenders if c.rule == rule and c.variant is not None):
            best, cpu = min(c.seconds), min(c.cpu_seconds)
            rows[rule].append(
                dict(
                    base(rule, c.variant),
                    status="ok",
                    hand_samples_per_s=subset / hand_best,
                    altlearn_samples_per_s=subset / best,
                    ratio=hand_best / best,
                    cpu_time_ratio=hand_cpu / cpu,
                    hand_step_ms=1000 * hand_best / steps,
                    altlearn_step_ms=1000 * best / steps,
                    hand_cpu_step_ms=1000 * hand_cpu / steps,
                    altlearn_cpu_step_ms=1000 * cpu / steps,
                    hand_peak_mib=_mib(hand.memory),
                    altlearn_peak_mib=_mib(c.memory),
                    memory_method=memory_method,
                    hand_round_seconds=hand.seconds,
                    altlearn_round_seconds=c.seconds,
                    hand_round_cpu_seconds=hand.cpu_seconds,
                    altlearn_round_cpu_seconds=c.cpu_seconds,
                )
            )
            log(format_row(rows[rule][-1]))
    return [row for rule in rules if rule in rows for row in rows[rule]]


def _contenders(
    rule: str,
    net: MLP | CNN,
    raws: list[dict],
    variants: tuple[Variant, ...],
    device: torch.device,
    batch_size: int,
) -> list[_Contender]:
    """The hand-written loop and one altlearn Trainer per variant, on the same data tensors."""
    trainers = [make_trainer(raw) for raw in raws]
    x, y = trainers[0].data.train_x, trainers[0].data.train_y
    torch.manual_seed(0)
    hand = HAND_LOOPS[rule](net, device)
    shuffle = torch.Generator().manual_seed(0)

    def hand_round() -> None:
        set_matmul_precision(device, "fp32")
        train_round(hand, x, y, batch_size, shuffle).item()  # one sync, as altlearn's logging

    def altlearn_round(trainer: Trainer, variant: Variant) -> Callable[[], None]:
        def run() -> None:
            set_matmul_precision(device, variant.precision)
            trainer.train_epoch(1)

        return run

    return [_Contender(rule, hand_round, hand)] + [
        _Contender(rule, altlearn_round(t, v), t.rule, v) for t, v in zip(trainers, variants)
    ]


def _message(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def clear_gradients(owner) -> None:
    """Set .grad to None on every module of ``owner`` (a hand-written loop or an altlearn rule)."""
    modules = (
        [owner]
        if isinstance(owner, torch.nn.Module)
        else [value for value in vars(owner).values() if isinstance(value, torch.nn.Module)]
    )
    for module in modules:
        module.zero_grad(set_to_none=True)


def _mib(value: float | None) -> float | None:
    return None if value is None else value / MiB


# ---------------------------------------------------------------------------------- report


COLUMNS = (
    "rule",
    "network",
    "device",
    "variant",
    "hand samples/s",
    "altlearn samples/s",
    "ratio",
    "CPU-time ratio",
    "hand peak MiB",
    "altlearn peak MiB",
)


def format_row(row: dict) -> str:
    cells = [row["rule"], row["network"], row["device"], row["variant"]]
    if row["status"] != "ok":
        return " | ".join(cells + [f"{row['status']}: {row.get('note', '')}"])

    def mem(value):
        return "n/a" if value is None else f"{value:.1f}"

    cells += [
        f"{row['hand_samples_per_s']:.0f}",
        f"{row['altlearn_samples_per_s']:.0f}",
        f"{row['ratio']:.3f}",
        f"{row['cpu_time_ratio']:.3f}" if row["device"] == "cpu" else "-",
        mem(row["hand_peak_mib"]),
        mem(row["altlearn_peak_mib"]),
    ]
    return " | ".join(cells)


def format_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + format_row(row) + " |" for row in rows]
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    """The acceptance ratios that the rows allow computing."""

    def find(rule, network, device, variant="eager-fp32"):
        for row in rows:
            if (row["rule"], row["network"], row["device"], row["variant"], row["status"]) == (
                rule,
                network,
                device,
                variant,
                "ok",
            ):
                return row
        return None

    out: dict[str, dict] = {}
    for device in sorted({row["device"] for row in rows}):
        bp, dfa = find("bp", "mlp4x2000", device), find("dfa", "mlp4x2000", device)
        if bp and dfa:
            out[f"dfa_over_bp_step_time_mlp4x2000_{device}"] = {
                "altlearn": dfa["altlearn_step_ms"] / bp["altlearn_step_ms"],
                "hand": dfa["hand_step_ms"] / bp["hand_step_ms"],
                "target": "<= 0.8",
            }
            if device == "cpu":
                out[f"dfa_over_bp_step_time_mlp4x2000_{device}"]["altlearn_cpu_time"] = (
                    dfa["altlearn_cpu_step_ms"] / bp["altlearn_cpu_step_ms"]
                )
        for network in NETWORKS:
            row = find("bp", network, device)
            if row:
                out[f"altlearn_bp_over_hand_bp_{network}_{device}"] = {
                    "ratio": row["ratio"],
                    "target": ">= 0.95" if device == "cpu" else "(none)",
                }
                if device == "cpu":
                    out[f"altlearn_bp_over_hand_bp_{network}_{device}"]["cpu_time_ratio"] = row[
                        "cpu_time_ratio"
                    ]
        compiled = [
            row
            for row in rows
            if (row["rule"], row["network"], row["device"]) == ("bp", "mlp4x2000", device)
            and row["status"] == "ok"
            and row["variant"] != "eager-fp32"
        ]
        if compiled:
            best = max(compiled, key=lambda row: row["ratio"])
            out[f"best_altlearn_variant_over_hand_eager_bp_mlp4x2000_{device}"] = {
                "variant": best["variant"],
                "ratio": best["ratio"],
                "target": ">= 2 (GPU)",
            }
    return out


def format_summary(result: dict) -> str:
    lines = []
    for key, value in result.items():
        figures = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
        lines.append(f"{key}: {figures}")
    return "\n".join(lines)


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------------- drivers


def devices_for(choice: str, log: Callable[[str], None]) -> list[str]:
    wanted = ["cpu", "cuda"] if choice == "all" else [choice]
    if "cuda" in wanted and not torch.cuda.is_available():
        log(f"note: CUDA is not available (torch {torch.__version__}); skipping the cuda measurements")
        wanted.remove("cuda")
    return wanted


def variants_for(device: str, compile_: bool, precisions: list[str]) -> tuple[Variant, ...]:
    if not compile_ or device != "cuda":
        return (EAGER,)
    eager = [Variant("off", p) for p in precisions if p != "fp32"]
    compiled = [Variant("reduce-overhead", p) for p in precisions]
    return (EAGER, *eager, *compiled)


def run_suite(
    rules: list[str],
    networks: list[str],
    devices: list[str],
    *,
    steps: int,
    rounds: int,
    batch_size: int = 128,
    memory_rounds: int = 2,
    compile_: bool = False,
    precisions: tuple[str, ...] = ("fp32", "tf32", "bf16"),
    log: Callable[[str], None] = print,
) -> dict:
    rows: list[dict] = []
    log(" | ".join(COLUMNS))
    for device in devices:
        variants = variants_for(device, compile_, list(precisions))
        for network in networks:
            try:
                rows += measure_network(
                    rules,
                    network,
                    device,
                    steps=steps,
                    rounds=rounds,
                    batch_size=batch_size,
                    variants=variants,
                    memory_rounds=memory_rounds,
                    log=log,
                )
            except Exception as exc:  # noqa: BLE001 - one failing network must not lose the rest
                rows += [
                    {
                        "rule": rule,
                        "network": network,
                        "device": device,
                        "variant": v.name,
                        "status": "error",
                        "note": _message(exc),
                    }
                    for rule in rules
                    for v in variants
                ]
                log(format_row(rows[-1]))
    return {
        "machine": machine(),
        "settings": {
            "steps": steps,
            "rounds": rounds,
            "batch_size": batch_size,
            "memory_rounds": memory_rounds,
            "adam_lr": ADAM_LR,
            "goup_lr": GOUP_LR,
        },
        "rows": rows,
        "summary": summary(rows),
    }


def ff_60_epochs(device: str, overrides: list[str], log: Callable[[str], None] = print) -> dict | None:
    """Time Forward-Forward on the paper's 784-2000x4 network for 60 MNIST epochs."""
    if device == "cuda" and not torch.cuda.is_available():
        log(
            "note: CUDA is not available; --ff-60-epochs is meant for a GPU (pass --device cpu to "
            "run it here anyway, which takes hours)"
        )
        return None
    settings = ["train.epochs=60", f"train.device={device}", "tracking.alignment_every=0", *overrides]
    if FF_SPEC.is_file():
        spec = load_spec(FF_SPEC, settings)
        source = str(FF_SPEC)
    else:
        log(f"note: {FF_SPEC} does not exist; using the built-in FF 4x2000 spec")
        raw = {
            "name": "ff-4x2000-benchmark",
            "seed": 0,
            "data": {"type": "mnist", "batch_size": 128},
            "network": {"layers": spec_layers(MLP((2000,) * 4), with_output=False)},
            "rule": {"type": "ff"},
            "optimizer": {"type": "adam", "lr": ADAM_LR},
            "schedule": {"type": "cosine"},
            "train": {},
            "tracking": {},
        }
        from altlearn.spec.load import apply_overrides

        spec = validate(apply_overrides(raw, settings))
        source = "built-in"
    trainer = Trainer(spec)
    start = time.perf_counter()
    final = trainer.fit()
    total = time.perf_counter() - start
    train_seconds = sum(epoch["epoch_seconds"] for epoch in trainer.history)
    result = {
        "spec": source,
        "device": device,
        "epochs": spec.train.epochs,
        "precision": spec.train.precision,
        "compile": spec.train.compile,
        "total_seconds": total,
        "train_seconds": train_seconds,
        "test_accuracy": final.get("test_accuracy"),
        "target_seconds": 180,
    }
    log(
        f"FF 4x2000, {spec.train.epochs} epochs on {device} ({source}): {total:.1f} s in all "
        f"({train_seconds:.1f} s training, the rest evaluation), test accuracy "
        f"{final.get('test_accuracy', float('nan')):.4f}; target < 180 s on a GPU"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument(
        "--steps", type=int, help="training steps per timed round (50; --rule-steps: each group's own)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each implementation")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--memory-rounds",
        type=int,
        default=2,
        help="untimed memory rounds per implementation; the smallest peak counts",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch's default); 1 on a shared machine"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="CUDA: also altlearn with train.compile=reduce-overhead and each "
        "--precisions, against the same eager hand-written loop",
    )
    parser.add_argument("--precisions", default="fp32,tf32,bf16")
    parser.add_argument(
        "--ff-60-epochs",
        action="store_true",
        help="instead: time FF on 784-2000x4 for 60 MNIST epochs "
        f"({FF_SPEC.name} if it exists; --device defaults to cuda here)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="with --ff-60-epochs: spec overrides, e.g. train.compile=reduce-overhead",
    )
    parser.add_argument(
        "--rule-steps",
        action="store_true",
        help="instead: step time of pc, ep, localloss, fwdgrad, drtp and pepita as a ratio to BP's "
        "(rule_steps.py; --device defaults to cpu here)",
    )
    parser.add_argument("--rule-groups", default="pcx_mlp,mlp4x2000", help="with --rule-steps")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.rule_steps:
        return rule_steps_main(args, parser)
    args.steps = args.steps or 50

    if args.ff_60_epochs:
        device = "cuda" if args.device == "all" else args.device
        result = ff_60_epochs(device, args.set)
        if result is not None and args.json:
            args.json.write_text(json.dumps({"machine": machine(), "ff_60_epochs": result}, indent=2))
        return 0

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [r for r in rules if r not in HAND_LOOPS] + [n for n in networks if n not in NETWORKS]
    if unknown:
        parser.error(
            f"unknown rule or network: {', '.join(unknown)} (rules: {', '.join(RULES)}; "
            f"networks: {', '.join(NETWORKS)})"
        )
    devices = devices_for(args.device, print)
    if args.compile and "cuda" not in devices:
        print("note: --compile measures CUDA only (CUDA graphs); nothing compiled on this machine")
    result = run_suite(
        rules,
        networks,
        devices,
        steps=args.steps,
        rounds=args.rounds,
        batch_size=args.batch_size,
        memory_rounds=args.memory_rounds,
        compile_=args.compile,
        precisions=tuple(p.strip() for p in args.precisions.split(",")),
    )
    info = result["machine"]
    print(
        f"\ntorch {info['torch']}, {info['threads']} thread(s), {info['cpu']}; batch "
        f"{args.batch_size}, {args.steps} steps per round, best of {args.rounds} alternating rounds; "
        "ratio = altlearn samples/s / hand samples/s (wall clock); CPU-time ratio = the same from "
        "process CPU time; peak memory = growth during one round"
    )
    print(format_table(result["rows"]))
    print()
    print(format_summary(result["summary"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


def rule_steps_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``--rule-steps``: every rule of rule_steps.GROUPS against BP on its group's network."""
    import rule_steps  # it imports this module's helpers: loaded only when asked for

    groups = [g.strip() for g in args.rule_groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in rule_steps.GROUPS]
    if unknown:
        parser.error(f"unknown rule group: {', '.join(unknown)} (groups: {', '.join(rule_steps.GROUPS)})")
    devices = devices_for("cpu" if args.device == "all" else args.device, print)
    result: dict = {"machine": machine(), "devices": {}}
    for device in devices:
        result["devices"][device] = rule_steps.run_rule_steps(
            groups, device, steps=args.steps, rounds=args.rounds
        )
        info = result["machine"]
        print(
            f"\n{device}: torch {info['torch']}, {info['threads']} thread(s), {info['cpu']}; best of "
            f"{args.rounds} alternating rounds; ratio = step time / BP's step time on the same "
            f"network; bounds judged on the {result['devices'][device]['settings']['judged_on']}"
        )
        print(rule_steps.format_table(result["devices"][device]["rows"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
