"""Checks of optional conditions: bf16 autocast and torch.compile where the rule declares them
(``Rule.supports``), CUDA where the machine has it. Elsewhere each is skipped with a note, so a rule
written before these existed passes everything it promised.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from altlearn.testing import state_checks, step_checks
from altlearn.testing.harness import (
    Case,
    CheckFailed,
    CheckSkipped,
    Grads,
    StepFn,
    cuda_steps_refuse_syncs,
    make_optimizer,
    random_state,
    train_step,
)


def _declared(case: Case, capability: str, condition: str) -> None:
    if capability not in case.rule_class.supports:
        raise CheckSkipped(
            f"not declared: {case.rule_class.__name__}.supports has no {capability!r} ({condition}); "
            f'add it once the rule trains under it: supports = frozenset({{"{capability}"}})'
        )


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    norms = float(a.norm() * b.norm())
    return 1.0 if norms == 0.0 else float(a @ b) / norms


def _updates(
    case: Case, wrap: Callable[[StepFn], StepFn] | None = None, autocast: bool = False
) -> list[Grads]:
    """Two steps' updates of a fresh rule; ``wrap`` makes the step run (torch.compile)."""
    with random_state(case.device):
        rule = case.build()
        rule.train()
        fn = None if wrap is None else wrap(rule.train_step)
        optimizer = make_optimizer(rule)
        updates: list[Grads] = []
        for index in range(2):
            with torch.autocast(case.device.type, dtype=torch.bfloat16, enabled=autocast):
                result = train_step(rule, optimizer, *case.batch(index), fn=fn)
            step_checks._check_metrics(result.metrics, "train_step", case.device)
            updates.append(result.grads)
        return updates


def _close(expected: list[Grads], got: list[Grads], minimum: float, under: str, fix: str) -> None:
    for index, (a, b) in enumerate(zip(expected, got)):
        for name, reference in a.items():
            update = b[name]
            if reference is None or update is None:
                if (reference is None) != (update is None):
                    raise CheckFailed(
                        f"under {under}, step {index + 1} fills .grad of {name} differently: {fix}"
                    )
                continue
            if update.dtype != reference.dtype or not torch.isfinite(update).all():
                raise CheckFailed(f"under {under}, .grad of {name} is {update.dtype} or not finite: {fix}")
            if _cosine(reference, update) < minimum:
                raise CheckFailed(
                    f"under {under}, the update of {name} points elsewhere than in float32: {fix}"
                )


def _compiled(step: StepFn) -> StepFn:
    # aot_eager: Dynamo's and AOTAutograd's tracing, as train.compile does, without code generation
    return torch.compile(step, backend="aot_eager")


def bf16_autocast(case: Case) -> str | None:
    """Under ``train.precision: bf16`` (autocast) the update is float32 and close to the fp32 one."""
    _declared(case, "bf16", "train.precision: bf16")
    fix = "compute the update in float32 (cast with .float() where autocast gives bf16)"
    _close(_updates(case), _updates(case, autocast=True), 0.98, "bf16 autocast", fix)
    return None


def compiles(case: Case) -> str | None:
    """Under ``train.compile``, the compiled ``train_step`` gives the eager step's updates."""
    _declared(case, "compile", "train.compile")
    torch.compiler.reset()  # every rule built here is new: no stale guards, no recompile limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _updates(case, wrap=_compiled)
    dynamo = [str(w.message) for w in caught if "dynamo" in str(w.message).lower()]
    if dynamo:
        raise CheckFailed(f"torch.compile warned while tracing train_step: {dynamo[0].splitlines()[0]}")
    fix = "run what Dynamo cannot trace outside the step, or leave 'compile' out of supports"
    _close(_updates(case), compiled, 0.9999, "torch.compile", fix)
    return None


#: the core checks that run again on CUDA, each step watched by torch's sync debug mode
ON_CUDA = (
    step_checks.fills_grads,
    step_checks.scalar_metrics,
    step_checks.same_seed_same_update,
    step_checks.own_random_streams,
    state_checks.save_reload_continue,
    state_checks.alignment_leaves_training_alone,
)


def cuda(case: Case) -> str | None:
    """On a CUDA device: the step checks pass there too, and no step waits for the host."""
    if not torch.cuda.is_available():
        raise CheckSkipped("no CUDA device on this machine")
    on_cuda = case.on("cuda")
    with cuda_steps_refuse_syncs():
        for check in ON_CUDA:
            try:
                check(on_cuda)
            except CheckFailed as exc:
                raise CheckFailed(f"on CUDA, {check.__name__}: {exc}") from exc
            except RuntimeError as exc:
                if "synchroniz" not in str(exc):
                    raise
                raise CheckFailed(
                    f"on CUDA, {check.__name__}: a step synchronised with the host ({exc}): keep "
                    "values on the device (no .item(), .cpu(), bool(tensor), data-dependent shapes)"
                ) from exc
    return None
