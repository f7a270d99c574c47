"""The plugin contract: the hooks a plugin implements.

A plugin is any module or object with functions marked ``@altlearn.hookimpl`` whose names match the
hooks below. Each hook receives a ``register`` callback; call it once per component::

    @hookimpl
    def altlearn_register_rules(register: Register) -> None:
        register("signsym", "altlearn_signsym.rules:SignSymmetry", summary="sign-symmetric feedback")

The second argument is the component class or, better, a ``"module:attribute"`` string: strings are
imported only when a spec uses the component, so ``altlearn plugins`` and ``--help`` stay fast.
This module imports nothing but pluggy (and typing), on purpose.
"""

from __future__ import annotations

from typing import Protocol

import pluggy

PROJECT = "altlearn"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback every hook receives: ``register(name, target, summary="")``, once per component.

    ``target`` is the component class or a ``"module:attr"`` string naming it.
    """

    def __call__(self, name: str, target: type | str, summary: str = "") -> None: ...


@hookspec
def altlearn_register_rules(register: Register) -> None:
    """Register learning rules: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Rule` (or a ``"module:attr"`` path to one).
    ``name`` is what a spec writes as ``rule.type``.
    """


@hookspec
def altlearn_register_datasets(register: Register) -> None:
    """Register data sets: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Dataset`; ``name`` is the spec's ``data.type``.
    """


@hookspec
def altlearn_register_layers(register: Register) -> None:
    """Register network layers: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Layer`; ``name`` is a layer's ``type`` in
    ``network.layers``.
    """


@hookspec
def altlearn_register_optimizers(register: Register) -> None:
    """Register optimizers: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Optimizer`: ``Params`` and
    ``build(params, parameters) -> torch.optim.Optimizer``; ``name`` is the spec's ``optimizer.type``.
    """


@hookspec
def altlearn_register_schedules(register: Register) -> None:
    """Register learning-rate schedules: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Schedule`: ``Params`` and
    ``factor(params) -> f(step, total_steps, steps_per_epoch)``, the multiplier of the base lr;
    ``name`` is the spec's ``schedule.type``.
    """


@hookspec
def altlearn_register_losses(register: Register) -> None:
    """Register training losses: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Loss`: ``Params`` and
    ``build(params) -> loss(scores (B, K), labels (B,)) -> scalar``; ``name`` is the spec's
    ``train.loss`` (or ``train.loss.type``).
    """


@hookspec
def altlearn_register_networks(register: Register) -> None:
    """Register named network architectures: ``register(name, target, summary="")``.

    ``target`` is a subclass of :class:`altlearn.api.Architecture`: ``Params`` and
    ``layers(params, data_info) -> [{type: ..., ...}, ...]``, the ordinary layer blocks it stands
    for; ``name`` is what a spec writes as ``network.type``.
    """
