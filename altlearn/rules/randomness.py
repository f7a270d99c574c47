"""Random streams a rule owns: seeds per layer, and generators per device that survive a resume.

A rule never draws from torch's global generator during a step: that would shift the dropout
masks (so a rule's run would differ from bp's for reasons unrelated to the rule) and make the
alignment diagnostic compare two different forward passes.

Under ``train.compile`` a rule's whole ``train_step`` is one ``torch.compile`` region, and Dynamo
can trace neither ``hashlib`` (the layer seeds) nor a ``torch.Generator`` argument. So making a
generator and drawing from one (:meth:`DeviceGenerators.rand`, ``randn``, ``randint``) run
eagerly, outside the compiled graph: no warning, no failed trace, and the same numbers as eager.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

#: the stream ``DeviceGenerators(seed)`` draws from when it is given no ``per_layer`` name
DEFAULT_STREAM = "device-generators"


def layer_seed(seed: int, index: int | str, stream: str = "feedback") -> int:
    """A 63-bit generator seed for layer ``index``, stable across runs, devices and versions.

    Hashing (seed, index, stream) makes each layer's draws independent of the other layers' shapes
    and of every other stream (name a stream after what it draws, e.g. ``"signsym-brsf"``). No
    seed it returns starts torch's global stream of the same spec seed (the weight init). Call it
    in ``__init__``: Dynamo cannot trace ``hashlib``, so inside a compiled step draw through
    :class:`DeviceGenerators`, which seeds its generators outside the compiled region.
    """
    digest = hashlib.sha256(f"altlearn-{stream}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


_EAGER: dict[Callable[..., Any], Callable[..., Any]] = {}


def _outside_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, run eagerly when a ``torch.compile``'d step calls it (a clean excursion, not a
    failed trace). Wrapped at the first ``DeviceGenerators`` a process makes, in a rule's
    ``__init__``: importing torch's compiler costs about a second, which a process that only
    imports altlearn.api should not pay."""
    if fn not in _EAGER:
        reason = "altlearn: seeded draws run eagerly"
        _EAGER[fn] = torch.compiler.disable(fn, reason=reason)  # type: ignore[no-untyped-call]
    return _EAGER[fn]


def _get(generators: DeviceGenerators, device: torch.device | str, layer: int | str) -> torch.Generator:
    device = torch.device(device)
    key = f"{layer}@{device}"
    generator = generators._generators.get(key)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(generators.seed_of(layer))
        pending = generators._pending.pop(key, None)
        if pending is not None:
            generator.set_state(pending)
        generators._generators[key] = generator
    return generator


def _draw(
    how: str,
    generators: DeviceGenerators,
    device: torch.device | str,
    layer: int | str,
    *args: Any,
    **kw: Any,
) -> torch.Tensor:
    generator = _get(generators, device, layer)
    return getattr(torch, how)(*args, generator=generator, device=device, **kw)  # type: ignore[no-any-return]


class DeviceGenerators:
    """Seeded ``torch.Generator`` objects created on first use, one per (layer, device).

    A generator lives on the device of the tensors it draws for (a CPU generator cannot draw on a
    GPU), which a rule only learns at its first step. The generator of layer ``i`` starts from
    ``layer_seed(seed, i, stream)``, ``stream`` being ``per_layer`` or, when that is None,
    :data:`DEFAULT_STREAM`: every layer draws an independent stream, and none of them is torch's
    global stream (the weight init) even when ``seed`` is the spec's seed. Two instances with the
    same seed and stream draw the same numbers, so a rule with several streams names each.

    :meth:`state` and :meth:`load_state` carry the generators through a checkpoint; a loaded state
    waits until its generator is first used (the checkpoint may name a device this process has not
    drawn on yet), and saving again before that keeps it. A state saved on a device kind this
    process does not use is kept but not used: that stream restarts from its seed.

    Inside a step draw with :meth:`rand`, :meth:`randn` or :meth:`randint`: they run eagerly even
    in a compiled step (a ``torch.rand(..., generator=...)`` written in the step breaks the graph).
    """

    def __init__(self, seed: int, per_layer: str | None = None) -> None:
        self.seed, self.per_layer = int(seed), per_layer
        self._exact = False
        self._generators: dict[str, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}
        # Resolved here, eagerly: a compiled step then finds functions Dynamo leaves alone.
        self._get: Callable[[DeviceGenerators, torch.device | str, int | str], torch.Generator]
        self._get = _outside_compile(_get)
        self._draw: Callable[..., torch.Tensor] = _outside_compile(_draw)

    def __getstate__(self) -> dict[str, Any]:
        # The compile-safe wrappers are torch's closures, which pickle cannot write: made anew.
        return {k: v for k, v in vars(self).items() if k not in ("_get", "_draw")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._get, self._draw = _outside_compile(_get), _outside_compile(_draw)

    @classmethod
    def exact(cls, seed: int) -> DeviceGenerators:
        """Generators that all start from ``seed`` itself, the same stream for every layer.

        Only for a seed that already belongs to one stream (GO-UP's ``seed + 7919``, kept so its
        recorded runs reproduce); never the spec's seed, whose stream is the weight init's.
        """
        generators = cls(seed)
        generators._exact = True
        return generators

    def seed_of(self, layer: int | str) -> int:
        """The seed the generator of ``layer`` starts from (on every device)."""
        if self._exact:
            return self.seed
        return layer_seed(self.seed, layer, self.per_layer or DEFAULT_STREAM)

    def get(self, device: torch.device | str, layer: int | str = 0) -> torch.Generator:
        """The generator of ``layer`` on ``device``, seeded (or restored) on first use."""
        return self._get(self, device, layer)

    def rand(
        self, size: Sequence[int], *, device: torch.device | str, layer: int | str = 0, **kw: Any
    ) -> torch.Tensor:
        """``torch.rand(size, generator=<the layer's>, device=device, **kw)``, run eagerly."""
        return self._draw("rand", self, device, layer, tuple(size), **kw)

    def randn(
        self, size: Sequence[int], *, device: torch.device | str, layer: int | str = 0, **kw: Any
    ) -> torch.Tensor:
        """``torch.randn`` from the layer's generator, run eagerly (see :meth:`rand`)."""
        return self._draw("randn", self, device, layer, tuple(size), **kw)

    def randint(
        self, low: int, high: int, size: Sequence[int], *, device: torch.device | str, layer: int | str = 0
    ) -> torch.Tensor:
        """``torch.randint(low, high, size)`` from the layer's generator, run eagerly."""
        return self._draw("randint", self, device, layer, low, high, tuple(size))

    def state(self) -> dict[str, torch.Tensor]:
        """Every generator's state (and every restored one not used yet), by "layer@device"."""
        states = dict(self._pending)
        states.update({key: generator.get_state() for key, generator in self._generators.items()})
        return states

    def load_state(self, states: dict[str, torch.Tensor]) -> None:
        """Continue from :meth:`state`; generators are re-made on first use from these states."""
        self._generators = {}
        self._pending = dict(states)
