"""Run the authors' local-loss ``train.py`` on this machine's Fashion-MNIST and keep its per-epoch
errors as CSV: how ``nokland2019-authors-code-fashion-predsim.csv`` was made, for more seeds.

Nøkland & Eidnes' ``train.py`` (github.com/anokland/local-loss) is not part of altlearn: fetch it
yourself. This script runs it unchanged with the ``run_experiments.sh`` command line of the MLP
3x1024 predsim row on Fashion-MNIST, from its own folder as the authors did, after putting Debian's
``dataset-fashion-mnist`` files where torchvision looks for them (``../data`` beside the script:
torchvision would download them otherwise). A row is written after every epoch, so a stopped run
keeps what it measured; their script cannot resume faithfully (its checkpoints hold no optimizer
state), so a run is one sitting: about 2.5 hours on this project's 2-core CPU with 2 threads.

    python results/authors_localloss.py PATH/TO/local-loss/train.py --seed 2 --out FILE.csv

It needs torch, torchvision and Pillow in the Python that runs it (a separate venv: torchvision's
wheel would pull a CUDA torch; install it with ``--no-deps`` after ``torch==2.13.0``).
``--stub-torchvision-ops``: for a torchvision wheel whose compiled operators do not load against a
CPU-only torch (the authors' data loading uses none of them).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import runpy
import shutil
import sys
import types
from pathlib import Path

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FLAGS = "--model mlp --dataset FashionMNIST --dropout 0.025 --lr 5e-4 --num-layers 3"
FLAGS += " --lr-decay-milestones 100 150 175 188 --nonlin leakyrelu"  # predsim: train.py's default
TRAIN = re.compile(r"Train epoch=(\d+), lr=([0-9.e+-]+),.*? error=([0-9.]+)%")
TEST = re.compile(r"Test loss_global=[0-9.e+-]+, error=([0-9.]+)%")


def place_data(folder: Path) -> None:
    """The IDX files, uncompressed, where torchvision's FashionMNIST('../data/FashionMNIST') reads."""
    raw = folder.parent / "data" / "FashionMNIST" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for packed in DEBIAN.glob("*-ubyte.gz"):
        target = raw / packed.name.removesuffix(".gz")
        if not target.exists():
            with gzip.open(packed) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)


class EpochRecorder:
    """Passes the script's output through and appends epoch,lr,train error,test error to the CSV
    as each epoch's test line arrives."""

    def __init__(self, stream, csv: Path):
        self.stream, self.csv, self.pending = stream, csv, ""
        self.train: tuple[str, ...] | None = None  # the epoch's training line, until its test line

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if match := TRAIN.search(line):
                self.train = match.groups()
            elif (match := TEST.search(line)) and self.train:
                epoch, lr, train_error = self.train
                with open(self.csv, "a") as out:
                    out.write(f"{epoch},{lr},{train_error},{match.group(1)}\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_py", type=Path)
    parser.add_argument("--seed", type=int, default=1, help="train.py's --seed (its default: 1)")
    parser.add_argument("--epochs", type=int, default=200, help="the row's 200; fewer to try it")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the kept run: 2)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write (must not exist)")
    parser.add_argument("--stub-torchvision-ops", action="store_true")
    options = parser.parse_args()
    script = options.train_py.resolve()
    out = options.out.resolve()
    if out.exists():
        parser.error(f"{out} exists: choose a new file (a run's rows are never mixed with another's)")
    if options.stub_torchvision_ops:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torch

    torch.set_num_threads(options.threads)
    place_data(script.parent)
    out.write_text(
        f"# The authors' train.py, {FLAGS} --epochs {options.epochs} --seed {options.seed}; torch {torch.__version__}, "
        f"torch threads {options.threads}, CPU kernels {torch.backends.cpu.get_cpu_capability()}\n"
        "epoch,lr,train_error_percent,test_error_percent\n"
    )
    os.chdir(script.parent)
    save_dir = out.with_suffix(".checkpoints")
    flags = [*FLAGS.split(), "--epochs", str(options.epochs), "--seed", str(options.seed)]
    sys.argv = [str(script), *flags, "--save-dir", str(save_dir)]
    sys.stdout = EpochRecorder(sys.stdout, out)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
