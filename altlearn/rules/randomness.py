"""Random streams a rule owns: seeds per layer, and generators per device that survive a resume.

A rule never draws from torch's global generator during a step: that would shift the dropout
masks (so a rule's run would differ from bp's for reasons unrelated to the rule) and make the
alignment diagnostic compare two different forward passes.
"""

from __future__ import annotations

import hashlib

import torch


def layer_seed(seed: int, index: int, stream: str = "feedback") -> int:
    """A 63-bit generator seed for layer ``index``, stable across runs, devices and versions.

    Hashing (seed, index, stream) makes each layer's draws independent of the other layers' shapes
    and of every other stream (name a stream after what it draws, e.g. ``"signsym-brsf"``).
    """
    digest = hashlib.sha256(f"altlearn-{stream}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class DeviceGenerators:
    """Seeded ``torch.Generator`` objects created on first use, one per (layer, device).

    A generator lives on the device of the tensors it draws for (a CPU generator cannot draw on a
    GPU), which a rule only learns at its first step. Every generator starts from ``seed``; with
    ``per_layer="<stream name>"`` the generator of layer ``i`` starts from
    ``layer_seed(seed, i, stream name)`` instead, so each layer draws its own independent stream.

    :meth:`state` and :meth:`load_state` carry the generators through a checkpoint; a loaded state
    waits until its generator is first used (the checkpoint may name a device this process has not
    drawn on yet), and saving again before that keeps it. A state saved on a device kind this
    process does not use is kept but not used: that stream restarts from its seed.
    """

    def __init__(self, seed: int, per_layer: str | None = None) -> None:
        self.seed, self.per_layer = int(seed), per_layer
        self._generators: dict[str, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}

    def get(self, device: torch.device | str, layer: int = 0) -> torch.Generator:
        """The generator of ``layer`` on ``device``, seeded (or restored) on first use."""
        device = torch.device(device)
        key = f"{layer}@{device}"
        generator = self._generators.get(key)
        if generator is None:
            seed = self.seed if self.per_layer is None else layer_seed(self.seed, layer, self.per_layer)
            generator = torch.Generator(device=device).manual_seed(seed)
            pending = self._pending.pop(key, None)
            if pending is not None:
                generator.set_state(pending)
            self._generators[key] = generator
        return generator

    def state(self) -> dict[str, torch.Tensor]:
        """Every generator's state (and every restored one not used yet), by "layer@device"."""
        states = dict(self._pending)
        states.update({key: generator.get_state() for key, generator in self._generators.items()})
        return states

    def load_state(self, states: dict[str, torch.Tensor]) -> None:
        """Continue from :meth:`state`; generators are re-made on first use from these states."""
        self._generators = {}
        self._pending = dict(states)
