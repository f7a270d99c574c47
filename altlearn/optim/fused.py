"""Which optimizer step torch runs: its fused kernel (one pass over each tensor) or its default
per-tensor step, as an optimizer's ``fused`` option chooses (``auto``, ``true``, ``false``).

The two compute the same update and differ by float32 rounding only (one unit in the last place
on a fraction of the weights a step), but over a long run such differences carry a run elsewhere,
like another seed. So a reproduction may ask for the step its paper's code ran: most papers' code
predates the fused kernels and ran torch's default step (``fused: false``).
"""

from __future__ import annotations

from typing import Literal

from altlearn.errors import DeviceUnavailable

#: the values of an optimizer's ``fused`` option
FusedChoice = Literal["auto", True, False]


def fused_argument(choice: FusedChoice, parameters: list) -> bool | None:
    """torch's ``fused=`` keyword for ``parameters`` under ``choice``.

    ``auto``: fused where torch has the kernels for the parameters' device. On CUDA launch overhead
    dominates small nets, and on the CPU torch's default walks each tensor several times, one
    operator per term: Adam over the 6 M parameters of a 3x1024 local-loss MLP took 48 ms a step
    that way and 7.6 ms fused (one thread; docs/performance.md). None (torch's default) on a
    device without them, e.g. the CPU before torch 2.4. ``false``: None too, torch's default step,
    what ``torch.optim.Adam(params)`` runs in papers' code (per tensor on the CPU, foreach on
    CUDA: the same arithmetic). ``true``: fused, or :class:`DeviceUnavailable` naming the device
    that has no kernels.
    """
    devices = {p.device.type for p in parameters}
    supported = _fused_devices()
    if choice is False:
        return None
    if choice is True:
        missing = sorted(devices - supported)
        if missing:
            raise DeviceUnavailable(
                f"optimizer.fused: true, but this torch ({_torch_version()}) has no fused optimizer "
                f"kernels for {', '.join(missing)}; it has them for {', '.join(sorted(supported)) or 'none'}. "
                "Use fused: auto (fused where available) or fused: false (torch's default step)."
            )
        return True
    return True if parameters and devices <= supported else None


def unfuse_for_strided_grads(optimizer) -> None:
    """Back to torch's default step if a rule set a gradient laid out unlike its parameter
    (``p.grad = (x.T @ e).T``): torch's fused CPU kernels read both as raw buffers and would apply
    a silently wrong update. Gradients from ``.backward()`` always match; called after the first
    step, before any optimizer state exists, so the default step starts clean."""
    for group in optimizer.param_groups:
        strided = any(p.grad is not None and p.grad.stride() != p.stride() for p in group["params"])
        if group.get("fused") and strided:
            for each in optimizer.param_groups:
                each["fused"] = None
            return


def _fused_devices() -> set[str]:
    try:  # private, but the list torch's own optimizers check ``fused=True`` against
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return {"cuda"}
    return set(_get_fused_kernels_supported_devices())


def _torch_version() -> str:
    import torch

    return torch.__version__
