"""Step time of pc, ep, localloss, fwdgrad, drtp and pepita as a ratio to BP's, in one process.

These rules have no hand-written counterpart in ``hand_loops``: what matters is what one of their
training steps costs against a BP step on the *same* network. For each group below, in ONE
process, altlearn's ``Trainer.train_epoch`` runs BP and every rule of the group on real MNIST
(``data.train_subset = steps * batch``), Adam lr 1e-3, constant lr, no alignment diagnostic; after
one untimed warm-up round each, timed rounds alternate (bp, pc T=5, pc T=20, ep, bp, ...) and the
best round of each counts, as in the rest of the suite (``suite.py``).

- ``pcx_mlp``: pcx's 784-128x3-10 ReLU MLP, batch 64 (issue 31): ``pc`` with T = 5 and T = 20
  inference steps (non-incremental; bound 0.8 x (T + 1) BP steps) and ``ep`` with its defaults
  (bound 0.8 x (free steps + every nudged phase's steps + 1) BP steps; ep reads relu as the hard
  sigmoid clip(x, 0, 1)).
- ``mlp4x2000``: 784-2000x4-10 ReLU, batch 128 (issue 32): ``localloss``, ``fwdgrad`` (activity
  perturbation, one direction: bound 1.3 BP steps), ``drtp`` and ``pepita`` with their defaults.

    python benchmarks/suite.py --rule-steps                        # both groups, CPU, 1 thread
    python benchmarks/suite.py --rule-steps --rule-groups pcx_mlp --rounds 5 --json steps.json

A bound is judged on the CPU-time ratio on the CPU (one thread: the step's own work, steady when
other jobs share the cores) and on the wall-clock ratio on CUDA; both ratios are printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from hand_loops import MLP
from suite import ADAM_LR, make_trainer, spec_layers, timed

from altlearn.rules.energy.ep import EquilibriumPropagationParams


@dataclass(frozen=True)
class RuleCase:
    """A rule block timed against BP, and the most BP steps one of its steps may cost."""

    label: str
    rule: dict
    bound: float | None = None
    bound_text: str = ""


@dataclass(frozen=True)
class Group:
    """Rules timed in the same alternating rounds as BP on one network."""

    network: str
    net: MLP
    batch_size: int
    steps: int  # default training steps per round
    cases: tuple[RuleCase, ...]


def pc_case(steps: int) -> RuleCase:
    rule = {"type": "pc", "inference_steps": steps, "incremental": False}
    return RuleCase(f"pc T={steps}", rule, 0.8 * (steps + 1), f"0.8 x (T + 1) = {0.8 * (steps + 1):.1f}")


def ep_case(**options) -> RuleCase:
    p = EquilibriumPropagationParams(**options)
    sweeps = p.free_steps + p.nudge_steps * (2 if p.symmetric_nudging else 1)
    text = f"0.8 x (free + nudged + 1) = 0.8 x {sweeps + 1} = {0.8 * (sweeps + 1):.1f}"
    return RuleCase("ep", {"type": "ep", **options}, 0.8 * (sweeps + 1), text)


BP = RuleCase("bp", {"type": "bp"})
GROUPS: dict[str, Group] = {
    "pcx_mlp": Group("pcx_mlp", MLP((128, 128, 128)), 64, 100, (BP, pc_case(5), pc_case(20), ep_case())),
    "mlp4x2000": Group(
        "mlp4x2000",
        MLP((2000,) * 4),
        128,
        10,
        (
            BP,
            RuleCase("localloss", {"type": "localloss"}),
            RuleCase(
                "fwdgrad",
                {"type": "fwdgrad", "perturb": "activities", "num_directions": 1},
                1.3,
                "1.3 (activities, 1 direction)",
            ),
            RuleCase("drtp", {"type": "drtp"}),
            RuleCase("pepita", {"type": "pepita"}),
        ),
    ),
}


def rule_spec(case: RuleCase, group: Group, device: str, steps: int) -> dict:
    return {
        "name": f"rule-steps-{case.label}",
        "seed": 0,
        "data": {
            "type": "mnist",
            "batch_size": group.batch_size,
            "train_subset": steps * group.batch_size,
            "test_subset": 1000,
        },
        "network": {"layers": spec_layers(group.net)},
        "rule": case.rule,
        "optimizer": {"type": "adam", "lr": ADAM_LR},
        "schedule": {"type": "constant"},
        "train": {"epochs": 1, "device": device},
        "tracking": {"alignment_every": 0},
    }


@dataclass
class _Timed:
    case: RuleCase
    run: Callable[[], object]
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)


def measure_group(
    group: Group,
    device: str,
    *,
    steps: int | None = None,
    rounds: int = 3,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Warm-up round each, then ``rounds`` alternating timed rounds; a row per case (BP first)."""
    steps = steps or group.steps
    torch_device = torch.device(device)
    contenders = []
    for case in group.cases:
        trainer = make_trainer(rule_spec(case, group, device, steps))
        contenders.append(_Timed(case, lambda t=trainer: t.train_epoch(1)))
    for c in contenders:
        c.run()
    for _ in range(rounds):
        for c in contenders:
            wall, cpu = timed(c.run, torch_device)
            c.seconds.append(wall)
            c.cpu_seconds.append(cpu)
    bp = contenders[0]
    rows = [_row(c, bp, group, device, steps) for c in contenders]
    for row in rows:
        log(format_row(row))
    return rows


def _row(c: _Timed, bp: _Timed, group: Group, device: str, steps: int) -> dict:
    best, cpu = min(c.seconds), min(c.cpu_seconds)
    ratio, cpu_ratio = best / min(bp.seconds), cpu / min(bp.cpu_seconds)
    judged = cpu_ratio if device == "cpu" else ratio
    return {
        "rule": c.case.label,
        "options": c.case.rule,
        "network": group.network,
        "device": device,
        "batch_size": group.batch_size,
        "steps": steps,
        "step_ms": 1000 * best / steps,
        "cpu_step_ms": 1000 * cpu / steps,
        "ratio_to_bp": ratio,
        "cpu_ratio_to_bp": cpu_ratio,
        "bound": c.case.bound,
        "bound_text": c.case.bound_text,
        "met": None if c.case.bound is None else judged <= c.case.bound,
        "round_seconds": c.seconds,
        "round_cpu_seconds": c.cpu_seconds,
    }


COLUMNS = ("rule", "network", "batch", "ms/step", "CPU ms/step", "ratio to BP", "CPU ratio", "bound", "")


def format_row(row: dict) -> str:
    met = {None: "", True: "met", False: "MISSED"}[row["met"]]
    bound = f"<= {row['bound_text']}" if row["bound"] is not None else "-"
    return " | ".join(
        [
            row["rule"],
            row["network"],
            str(row["batch_size"]),
            f"{row['step_ms']:.2f}",
            f"{row['cpu_step_ms']:.2f}",
            f"{row['ratio_to_bp']:.2f}",
            f"{row['cpu_ratio_to_bp']:.2f}",
            bound,
            met,
        ]
    )


def format_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + format_row(row) + " |" for row in rows])


def run_rule_steps(
    groups: list[str],
    device: str,
    *,
    steps: int | None = None,
    rounds: int = 3,
    log: Callable[[str], None] = print,
) -> dict:
    """Every group's rows, and the settings they were measured with."""
    log(" | ".join(COLUMNS))
    rows: list[dict] = []
    for name in groups:
        rows += measure_group(GROUPS[name], device, steps=steps, rounds=rounds, log=log)
    judged = "CPU-time ratio" if device == "cpu" else "wall-clock ratio"
    return {"settings": {"rounds": rounds, "adam_lr": ADAM_LR, "judged_on": judged}, "rows": rows}
