"""Continue one of the authors' local-loss checkpoints with altlearn, to bisect a long run.

Nøkland & Eidnes' ``train.py`` (github.com/anokland/local-loss; not part of altlearn) with
``--save-dir`` writes ``chkp_epN_*.tar`` after every epoch, each holding its MLP's weights
(``state_dict``). This script loads one into the network that altlearn's spec builds and the
``localloss`` rule's heads, then trains the rest of the spec's schedule with altlearn's own trainer,
data pipeline and a fresh optimizer (as the authors' ``--resume`` does: it restores the weights
only), printing the test and training error after every epoch:

    python results/continue_localloss.py CHECKPOINT.tar \\
        [--spec specs/papers/nokland2019_localloss_fashion_3x1024.yaml] [-s train.epochs=200 ...]

``-s`` sets spec values as ``altlearn run -s`` does; give the schedule the whole run's epochs and
milestones: the script starts after the checkpoint's epoch, with the learning rate the schedule
has there. Whether the weights (what the first epochs made) or the training that follows them
decides a difference between two long runs: continue the authors' weights with altlearn and
compare the end with both runs' ends (docs/reproductions.md, Local losses, does this).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import torch

from altlearn.spec.load import load_spec
from altlearn.training.observers import Observer
from altlearn.training.trainer import Trainer

SPEC = (
    Path(__file__).resolve().parent.parent / "specs" / "papers" / "nokland2019_localloss_fashion_3x1024.yaml"
)
THEIR_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def load_authors_weights(state: dict[str, torch.Tensor], trainer: Trainer) -> None:
    """Copy the authors' MLP (``layers.i.encoder``/``bn``/``decoder_y``/``linear_loss``,
    ``layer_out``) into the trainer's network (flatten, then linear, batch norm, activation,
    dropout per block) and its rule's heads; a tensor either side lacks is an error."""
    rule: Any = trainer.rule
    network, heads = rule.network, rule.heads
    blocks = len(heads)
    with torch.no_grad():
        for i in range(blocks):
            linear, norm, head = network[1 + 4 * i], network[2 + 4 * i], heads[str(1 + 4 * i)]
            theirs = f"layers.{i}."
            linear.weight.copy_(state[theirs + "encoder.weight"])
            linear.bias.copy_(state[theirs + "encoder.bias"])
            for name in THEIR_NORM:
                getattr(norm, name).copy_(state[theirs + "bn." + name])
            if hasattr(head, "predict"):
                head.predict.weight.copy_(state[theirs + "decoder_y.weight"])
                head.predict.bias.copy_(state[theirs + "decoder_y.bias"])
            if hasattr(head, "project"):
                head.project.weight.copy_(state[theirs + "linear_loss.weight"])
        network[4 * blocks + 1].weight.copy_(state["layer_out.weight"])
        network[4 * blocks + 1].bias.copy_(state["layer_out.bias"])


class PrintErrors(Observer):
    """One line per epoch: the test and training error in percent, and the epoch's learning rate."""

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        test, train = 100 * (1 - metrics["test_accuracy"]), 100 * (1 - metrics["train_accuracy"])
        lr = metrics["lr"]
        print(
            f"epoch {epoch}: test error {test:.2f} % training error {train:.2f} % (lr {lr:.3g})", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="one of the authors' chkp_epN_*.tar")
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("-s", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    options = parser.parse_args()
    saved = torch.load(options.checkpoint, map_location="cpu", weights_only=False)
    trainer = Trainer(load_spec(options.spec, options.overrides), [PrintErrors()])
    load_authors_weights(saved["state_dict"], trainer)
    # Start after the checkpoint's epoch: the schedule is stepped per batch, so advancing it by
    # that many epochs of steps gives the learning rate the authors' run had there.
    trainer.epoch = int(saved["epoch"])
    trainer.global_step = trainer.epoch * trainer.steps_per_epoch
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(trainer.global_step):
            trainer.scheduler.step()
    start = trainer.evaluate_all()["test_accuracy"]
    print(f"after the authors' epoch {trainer.epoch}: test error {100 * (1 - start):.2f} %", flush=True)
    trainer.fit()


if __name__ == "__main__":
    main()
