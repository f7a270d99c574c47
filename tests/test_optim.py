"""Optimizers built from their options, and the learning-rate schedules' factors."""

import pytest
import torch
from pydantic import ValidationError

from altlearn.optim.losses import BCE, MSE, CrossEntropy
from altlearn.optim.optimizers import (
    SGD,
    Adam,
    AdamW,
    Constant,
    Cosine,
    Linear,
    RMSprop,
    Step,
    build_scheduler,
)
from altlearn.registry.registry import build_registry


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


# ------------------------------------------------------------------------------ optimizers


def test_builtins_are_registered_through_the_hooks_like_plugins():
    registry = build_registry()
    optimizers = {name: registry.get("optimizer", name) for name in registry.names("optimizer")}
    assert {name: c.load() for name, c in optimizers.items()} == {
        "sgd": SGD,
        "adam": Adam,
        "adamw": AdamW,
        "rmsprop": RMSprop,
    }
    schedules = {name: registry.load("schedule", name) for name in registry.names("schedule")}
    assert schedules == {"constant": Constant, "cosine": Cosine, "step": Step, "linear": Linear}
    losses = {name: registry.load("loss", name) for name in registry.names("loss")}
    assert losses == {"cross_entropy": CrossEntropy, "mse": MSE, "bce": BCE}
    assert {c.package for c in optimizers.values()} == {"altlearn"}


def test_sgd_builds_with_its_options():
    opt = SGD.build(SGD.Params(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4), params())
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        0.1,
        0.9,
        True,
        1e-4,
    )
    assert group["dampening"] == 0.0


def test_adam_and_adamw_build_with_their_options():
    adam = Adam.build(Adam.Params(lr=0.002, betas=[0.8, 0.95], eps=1e-6), params())
    assert type(adam) is torch.optim.Adam
    group = adam.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        0.002,
        (0.8, 0.95),
        1e-6,
        0.0,
    )
    adamw = AdamW.build(AdamW.Params(), params())
    assert type(adamw) is torch.optim.AdamW
    assert adamw.param_groups[0]["weight_decay"] == 0.01  # AdamW's decoupled decay is on by default
    assert adamw.param_groups[0]["lr"] == 1e-3


def test_rmsprop_divides_by_the_root_of_the_running_mean_square():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSprop.build(RMSprop.Params(lr=0.1, alpha=0.9, eps=1e-8), [p])
    assert type(opt) is torch.optim.RMSprop
    p.grad = torch.tensor([0.5, -4.0])
    opt.step()
    # mean square after one step: (1 - alpha) g^2, so the step is lr * g / (sqrt(0.1) |g|)
    expected = torch.tensor([1.0, -2.0]) - 0.1 * torch.tensor([1.0, -1.0]) / 0.1**0.5
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_rmsprop_options_reach_torch():
    opt = RMSprop.build(RMSprop.Params(momentum=0.5, centered=True, weight_decay=1e-4), params())
    group = opt.param_groups[0]
    assert (group["lr"], group["alpha"], group["momentum"], group["centered"], group["weight_decay"]) == (
        1e-3,
        0.99,
        0.5,
        True,
        1e-4,
    )


def test_defaults():
    assert SGD.Params().lr == 0.01 and SGD.Params().momentum == 0.0
    assert Adam.Params().lr == 1e-3 and Adam.Params().betas == (0.9, 0.999)


def test_sgd_step_moves_against_the_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = SGD.build(SGD.Params(lr=0.5), [p])
    p.grad = torch.tensor([1.0, 1.0])
    opt.step()
    assert p.detach().tolist() == [0.5, -2.5]


@pytest.mark.parametrize(
    "options", [{"nesterov": True}, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}]
)
def test_nesterov_needs_momentum_without_dampening(options):
    with pytest.raises(ValidationError, match="nesterov needs momentum"):
        SGD.Params(**options)


@pytest.mark.parametrize(
    "model, options",
    [
        (SGD.Params, {"lr": 0}),
        (SGD.Params, {"momentum": 1.0}),
        (SGD.Params, {"weight_decay": -1}),
        (Adam.Params, {"eps": 0}),
        (Adam.Params, {"betas": [0.9]}),
        (Adam.Params, {"amsgrad": True}),
        (RMSprop.Params, {"alpha": 1.0}),
        (RMSprop.Params, {"eps": 0}),
    ],
)
def test_invalid_options_are_rejected(model, options):
    with pytest.raises(ValidationError):
        model(**options)


# ------------------------------------------------------------------------------ schedules


def factor(schedule, total=100, per_epoch=10, **options):
    f = schedule.factor(schedule.Params(**options))
    return lambda step: f(step, total, per_epoch)


def test_constant():
    f = factor(Constant)
    assert [f(s) for s in (0, 50, 100)] == [1.0, 1.0, 1.0]


def test_cosine_goes_from_one_to_min_factor():
    f = factor(Cosine, min_factor=0.1)
    assert f(0) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.55)  # half-way: the mean of 1 and min_factor
    assert f(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + 2**-0.5))
    assert f(100) == pytest.approx(0.1)
    assert f(150) == pytest.approx(0.1)  # stays at the end value
    values = [f(s) for s in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert factor(Cosine)(100) == pytest.approx(0.0)


def test_step_decays_every_step_size_epochs():
    f = factor(Step, per_epoch=10, step_size=2, gamma=0.5)
    assert f(0) == f(19) == 1.0  # epochs 0 and 1
    assert f(20) == f(39) == 0.5
    assert f(40) == 0.25
    assert f(99) == pytest.approx(0.5**4)


def test_step_decays_at_milestones():
    f = factor(Step, per_epoch=10, milestones=[5, 8], gamma=0.1)
    assert f(0) == f(49) == 1.0  # epochs 0-4
    assert f(50) == f(79) == pytest.approx(0.1)
    assert f(80) == f(99) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"milestones": [5, 8], "step_size": 3}, "not both"),
        ({"milestones": [8, 5]}, "increasing"),
        ({"milestones": [5, 5]}, "increasing"),
    ],
)
def test_step_milestones_are_checked(options, message):
    with pytest.raises(ValidationError, match=message):
        Step.Params(**options)


def test_linear_decays_to_end_factor():
    f = factor(Linear, end_factor=0.1)
    assert f(0) == 1.0
    assert f(50) == pytest.approx(0.55)
    assert f(100) == pytest.approx(0.1)
    assert f(120) == pytest.approx(0.1)


def test_linear_holds_until_start_fraction():
    f = factor(Linear, end_factor=0.0, start_fraction=0.5)
    assert f(0) == f(25) == f(50) == 1.0
    assert f(75) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0)


def lrs(schedule, options, steps, total, per_epoch, lr=0.1):
    opt = SGD.build(SGD.Params(lr=lr), params())
    scheduler = build_scheduler(schedule, schedule.Params(**options), opt, total, per_epoch)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def test_warmup_ramps_up_linearly_then_follows_the_schedule():
    got = lrs(Constant, {"warmup_epochs": 1}, steps=14, total=40, per_epoch=10)
    assert got[:10] == pytest.approx([0.01 * (i + 1) for i in range(10)])
    assert got[10:] == pytest.approx([0.1] * 4)


def test_fractional_warmup_multiplies_the_schedule():
    got = lrs(Cosine, {"warmup_epochs": 0.5, "min_factor": 0.0}, steps=20, total=20, per_epoch=10)
    cosine = factor(Cosine, total=20, per_epoch=10)
    for step in range(5):  # 5 warm-up steps
        assert got[step] == pytest.approx(0.1 * cosine(step) * (step + 1) / 5)
    for step in range(5, 20):
        assert got[step] == pytest.approx(0.1 * cosine(step))


def test_scheduler_steps_per_training_step():
    got = lrs(Step, {"step_size": 1, "gamma": 0.1}, steps=7, total=9, per_epoch=3, lr=1.0)
    assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])


def test_schedule_option_bounds():
    for schedule, options in (
        (Cosine, {"min_factor": 1.5}),
        (Step, {"gamma": 0}),
        (Step, {"step_size": 0}),
        (Linear, {"start_fraction": 1.0}),
        (Constant, {"warmup_epochs": -1}),
    ):
        with pytest.raises(ValidationError):
            schedule.Params(**options)


def test_a_step_schedule_renders_back_and_keeps_its_sweep_key():
    """Milestones replace step_size: the rendered spec leaves it out (and reads back), and the
    values a sweep's trial key hashes are those of earlier versions: {type: step} is {type: step}."""
    from altlearn.spec.load import load_spec_text

    base = (
        "name: x\ndata: {type: digits}\nnetwork: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\n"
        "rule: {type: bp}\noptimizer: {type: sgd, lr: 0.1}\n"
    )
    plain = load_spec_text(base + "schedule: {type: step}\n", source="plain")
    assert plain.to_dict(explicit=True)["schedule"] == {"type": "step"}
    assert plain.to_dict()["schedule"]["step_size"] == 10
    staged = load_spec_text(base + "schedule: {type: step, milestones: [2, 4]}\n", source="staged")
    assert staged.to_dict(explicit=True)["schedule"] == {"type": "step", "milestones": [2, 4]}
    assert "step_size" not in staged.to_dict()["schedule"]
    assert load_spec_text(staged.to_yaml(), source="again").to_dict() == staged.to_dict()


def test_a_per_epoch_schedule_holds_each_epochs_lr_at_its_start():
    """loeweX's FF cool-down, exactly: lr x 1 through epoch 51 (0-based), then x 2(1 + 100 - e)/100
    once per epoch, 0.98 at epoch 52 down to 0.04 at epoch 99 (its src/utils.py); per step, the
    same linear schedule would fall within each epoch."""
    options = {"start_fraction": 0.51, "end_factor": 0.02, "per_epoch": True}
    got = lrs(Linear, options, steps=100 * 3, total=100 * 3, per_epoch=3, lr=1.0)
    by_epoch = [got[3 * e : 3 * e + 3] for e in range(100)]
    assert all(len(set(epoch)) == 1 for epoch in by_epoch)  # constant within every epoch
    expected = [1.0 if e <= 51 else 2 * (1 + 100 - e) / 100 for e in range(100)]
    assert [epoch[0] for epoch in by_epoch] == pytest.approx(expected)
    per_step = lrs(Linear, {**options, "per_epoch": False}, steps=300, total=300, per_epoch=3, lr=1.0)
    assert per_step[3 * 60 + 1] < per_step[3 * 60]  # the default still decays within an epoch


def test_cpu_parameters_get_torchs_fused_adam_where_it_has_one_and_never_fused_sgd():
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    expected = True if "cpu" in _get_fused_kernels_supported_devices() else None
    for cls in (Adam, AdamW):
        assert cls.build(cls.Params(), params()).param_groups[0]["fused"] is expected, cls
    assert RMSprop.build(RMSprop.Params(), params()).param_groups[0].get("fused") is None
    # torch's fused SGD fails when a parameter's first gradient comes after the others' (FF's
    # greedy schedule): altlearn's SGD steps such a group as torch's default does
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    sgd = SGD.build(SGD.Params(lr=0.1, momentum=0.9), [a, b])
    assert not sgd.param_groups[0].get("fused")
    a.grad = torch.ones(3)
    sgd.step()
    b.grad = torch.ones(3)
    sgd.step()
    assert torch.allclose(b.detach(), torch.full((3,), 0.9))


def test_a_gradient_laid_out_unlike_its_parameter_falls_back_to_the_default_step():
    from altlearn.optim.fused import unfuse_for_strided_grads

    torch.manual_seed(0)
    x, e = torch.randn(16, 4), torch.randn(16, 3)
    results = []
    for fallback in (False, True):
        weight = torch.nn.Parameter(torch.zeros(3, 4))  # (out, in), row-major
        adam = Adam.build(Adam.Params(lr=0.1), [weight])
        for _ in range(3):
            weight.grad = (x.T @ e).T  # the right values, column-major: a rule may set .grad so
            if fallback:
                unfuse_for_strided_grads(adam)
            adam.step()
        results.append(weight.detach().clone())
    reference = torch.nn.Parameter(torch.zeros(3, 4))
    default = torch.optim.Adam([reference], lr=0.1)
    for _ in range(3):
        reference.grad = (x.T @ e).T.contiguous()
        default.step()
    assert torch.allclose(results[1], reference.detach(), atol=1e-6)
    if Adam.build(Adam.Params(), params()).param_groups[0]["fused"]:  # torch's fused CPU kernel
        assert not torch.allclose(results[0], reference.detach(), atol=1e-3)  # why the fallback exists


def test_fused_chooses_torchs_step_and_false_is_torchs_default_bit_for_bit():
    """auto: the fused kernel where the device has one; false: torch's default step, the one most
    papers' code ran, so a reproduction can follow it step for step; true: fused."""
    from altlearn.optim.fused import _fused_devices

    cpu_fused = "cpu" in _fused_devices()
    for cls in (Adam, AdamW):
        groups = {
            choice: cls.build(cls.Params(fused=choice), params()).param_groups[0]
            for choice in ("auto", False)
        }
        assert groups["auto"]["fused"] is (True if cpu_fused else None), cls
        assert groups[False]["fused"] is None and groups[False]["foreach"] is None, cls  # as torch's own
    if cpu_fused:
        assert Adam.build(Adam.Params(fused=True), params()).param_groups[0]["fused"] is True
    torch.manual_seed(0)
    grads = [torch.randn(5, 7) for _ in range(4)]
    ours, reference = torch.nn.Parameter(torch.ones(5, 7)), torch.nn.Parameter(torch.ones(5, 7))
    stepped = Adam.build(Adam.Params(lr=0.01, fused=False), [ours])
    default = torch.optim.Adam([reference], lr=0.01)
    for grad in grads:
        ours.grad, reference.grad = grad.clone(), grad.clone()
        stepped.step()
        default.step()
    assert torch.equal(ours.detach(), reference.detach())


def test_fused_true_where_torch_has_no_kernel_names_the_device(monkeypatch):
    from altlearn.errors import DeviceUnavailable
    from altlearn.optim import fused

    monkeypatch.setattr(fused, "_fused_devices", lambda: {"cuda"})
    with pytest.raises(DeviceUnavailable, match=r"optimizer\.fused: true.*kernels for cpu.*fused: false"):
        Adam.build(Adam.Params(fused=True), params())
    assert Adam.build(Adam.Params(), params()).param_groups[0]["fused"] is None  # auto: torch's default


def test_fused_is_one_choice_per_optimizer_and_auto_keeps_sweep_keys():
    """A group cannot set fused (one kind of step per optimizer), SGD has none to choose, and the
    default is left out of a rendered spec, so a sweep's trial keys stay those of earlier versions."""
    from altlearn.errors import SpecError
    from altlearn.spec.load import load_spec_text

    base = (
        "name: x\ndata: {type: digits}\nnetwork: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\n"
        "rule: {type: bp}\n"
    )
    assert load_spec_text(base + "optimizer: {type: adam}\n", source="auto").to_dict(explicit=True)[
        "optimizer"
    ] == {"type": "adam"}
    chosen = load_spec_text(base + "optimizer: {type: adam, fused: false}\n", source="false")
    assert chosen.to_dict(explicit=True)["optimizer"] == {"type": "adam", "fused": False}
    assert load_spec_text(chosen.to_yaml(), source="again").to_dict() == chosen.to_dict()
    grouped = base + "optimizer: {type: adam, groups: [{params: 'network.layers[1]', fused: false}]}\n"
    with pytest.raises(SpecError, match=r"optimizer\.groups\[0\]\.fused"):
        load_spec_text(grouped, source="grouped")
    with pytest.raises(SpecError, match=r"optimizer\.fused"):
        load_spec_text(base + "optimizer: {type: sgd, fused: false}\n", source="sgd")
