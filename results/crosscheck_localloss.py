"""Cross-check altlearn's ``localloss`` step against the authors' own code, step by step.

Nøkland & Eidnes' ``train.py`` (github.com/anokland/local-loss; not part of altlearn, fetch it
yourself) builds its 3x1024 MLP and data loader; this script copies that network's weights into
altlearn's network and ``localloss`` heads, then trains both on the same batches in float64 and
prints the largest relative difference of any parameter or batch-norm statistic.

    python results/crosscheck_localloss.py PATH/TO/local-loss/train.py [--steps 30] [--loss predsim]

Set-up: the authors' flags for the Fashion-MNIST MLP (leaky ReLU, lr 5e-4, dropout 0.025); both
steps start from the same random state, so they draw the same dropout masks. Their script runs from
its own folder and reads (or downloads) its data from ``../data`` beside it, as it does when you
train with it; it needs torchvision. The
one step the comparison leaves out: under ``predsim`` the authors scale the output layer's loss by
1 - beta, which Adam's update ignores up to its epsilon (altlearn does not scale it).
``--stub-torchvision-ops``: for a torchvision wheel whose compiled operators do not load against
a CPU-only torch (their data loading uses none of them).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from altlearn.optim.losses import cross_entropy
from altlearn.rules.base import RuleContext
from altlearn.rules.local.localloss import LocalLoss

BLOCKS, WIDTH, CLASSES, LR = 3, 1024, 10, 5e-4


def authors_model(train_py: Path, loss: str, dataset: str, dropout: float) -> dict:
    """The globals of the authors' script after it built its model (zero epochs: no training)."""
    flags = ["--model", "mlp", "--dataset", dataset, "--dropout", str(dropout), "--num-layers", str(BLOCKS)]
    flags += ["--epochs", "0", "--nonlin", "leakyrelu", "--no-print-stats", "--lr", str(LR)]
    flags += ["--loss-sup", loss]
    sys.argv = [str(train_py), *flags]
    os.chdir(train_py.parent)
    return runpy.run_path(str(train_py), run_name="__main__")


def our_network(dropout: float) -> nn.Sequential:
    """The same MLP as altlearn's spec builds it (nokland2019_localloss_fashion_3x1024.yaml)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(BLOCKS):
        layers += [nn.Linear(784 if i == 0 else WIDTH, WIDTH), nn.BatchNorm1d(WIDTH)]
        layers += [nn.LeakyReLU(0.01), nn.Dropout(dropout)]
    layers.append(nn.Linear(WIDTH, CLASSES))
    return nn.Sequential(*layers).double()


def matched(theirs: Any, ours: nn.Sequential, rule: LocalLoss):
    """(name, their tensor, our tensor) for every parameter and running statistic."""
    for i, block in enumerate(theirs.layers):
        linear, norm = ours[1 + 4 * i], ours[2 + 4 * i]
        yield f"block {i} weight", block.encoder.weight, linear.weight
        yield f"block {i} bias", block.encoder.bias, linear.bias
        yield f"block {i} bn weight", block.bn.weight, norm.weight
        yield f"block {i} bn bias", block.bn.bias, norm.bias
        yield f"block {i} bn running mean", block.bn.running_mean, norm.running_mean
        yield f"block {i} bn running var", block.bn.running_var, norm.running_var
        head: Any = rule.heads[str(1 + 4 * i)]
        if hasattr(head, "predict"):
            yield f"block {i} prediction head", block.decoder_y.weight, head.predict.weight
            yield f"block {i} prediction head bias", block.decoder_y.bias, head.predict.bias
        if hasattr(head, "project"):
            yield f"block {i} similarity map", block.linear_loss.weight, head.project.weight
    yield "output weight", theirs.layer_out.weight, ours[-1].weight
    yield "output bias", theirs.layer_out.bias, ours[-1].bias


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| as a fraction of max |a|."""
    return (a - b).abs().max().item() / max(a.abs().max().item(), 1e-30)


def worst_difference(theirs: Any, ours: nn.Sequential, rule: LocalLoss) -> tuple[float, str]:
    return max((relative(a, b), name) for name, a, b in matched(theirs, ours, rule))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_py", type=Path, help="the authors' train.py")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--loss", choices=["pred", "sim", "predsim"], default="predsim")
    parser.add_argument("--dataset", choices=["MNIST", "FashionMNIST"], default="FashionMNIST")
    parser.add_argument("--dropout", type=float, default=0.025)
    parser.add_argument("--stub-torchvision-ops", action="store_true")
    options = parser.parse_args()
    if options.stub_torchvision_ops:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    torch.set_num_threads(1)
    their = authors_model(options.train_py.resolve(), options.loss, options.dataset, options.dropout)
    theirs, their_optimizer, loader = their["model"].double(), their["optimizer"], their["train_loader"]
    ours = our_network(options.dropout)
    context = RuleContext(ours, cross_entropy, num_classes=CLASSES, seed=0)
    rule = LocalLoss(LocalLoss.Params.model_validate({"loss": options.loss}), context).double()
    with torch.no_grad():
        for _, their_tensor, our_tensor in matched(theirs, ours, rule):
            our_tensor.copy_(their_tensor)
    optimizer = torch.optim.Adam([*ours.parameters(), *rule.heads.parameters()], lr=LR)
    theirs.set_learning_rate(LR)
    for group in their_optimizer.param_groups:
        group["lr"] = LR
    run(options.steps, loader, theirs, their_optimizer, ours, rule, optimizer)


def run(steps, loader, theirs, their_optimizer, ours, rule, optimizer) -> None:
    """``steps`` training steps of both on the same batches; the worst difference now and then."""
    theirs.train(), ours.train(), rule.train()
    start = [tensor.clone() for _, _, tensor in matched(theirs, ours, rule)]
    for step, (x, y) in enumerate(loader, start=1):
        x = x.double()
        randomness = torch.get_rng_state()  # the same dropout masks for both
        their_optimizer.zero_grad()
        theirs.optim_zero_grad()  # their blocks step inside their forward pass
        scores, _ = theirs(x, y, F.one_hot(y, CLASSES).double())
        F.cross_entropy(scores, y).backward()
        their_optimizer.step()
        torch.set_rng_state(randomness)
        optimizer.zero_grad()
        rule.train_step(x, y)
        optimizer.step()
        if step in (1, 2, 10) or step == steps:
            worst, where = worst_difference(theirs, ours, rule)
            moved = max(relative(now, then) for (_, _, now), then in zip(matched(theirs, ours, rule), start))
            print(
                f"after step {step}: largest relative difference {worst:.1e} ({where}); the parameters "
                f"moved by up to {moved:.1e} of their size",
                flush=True,
            )
        if step == steps:
            return


if __name__ == "__main__":
    main()
