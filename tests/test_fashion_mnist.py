"""Real Fashion-MNIST (Debian's dataset-fashion-mnist, which .ci/run and the README's set-up
install): the files load with the declared shape, and the shipped LeNet-5 spec learns from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from altlearn.data.datasets import FASHION_MNIST_DEBIAN
from altlearn.spec.load import load_spec
from altlearn.training.trainer import Trainer

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture(scope="module")
def installed():
    if not Path(FASHION_MNIST_DEBIAN, "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is not in {FASHION_MNIST_DEBIAN}: the tests need it; install it with "
            "apt-get update && apt-get install -y dataset-fashion-mnist"
        )


def test_fashion_mnist_loads_its_60000_and_10000_images(installed):
    from altlearn.data.datasets import FashionMNIST

    params = FashionMNIST.Params()
    splits = FashionMNIST.load(params)
    assert splits.train_x.shape == (60000, 1, 28, 28) and splits.test_x.shape == (10000, 1, 28, 28)
    assert float(splits.train_x.min()) == 0.0 and float(splits.train_x.max()) == 1.0
    # the published class balance: 6000 training and 1000 test images per class
    assert splits.train_y.bincount().tolist() == [6000] * 10
    assert splits.test_y.bincount().tolist() == [1000] * 10


def test_the_shipped_lenet5_spec_learns_fashion_mnist(installed, one_thread):
    overrides = [
        "data.train_subset=3000",
        "data.test_subset=1000",
        "data.batch_size=64",
        "train.epochs=2",
        "train.device=cpu",
        "optimizer.lr=0.003",
    ]
    trainer = Trainer(load_spec(SPECS / "fashion_lenet5_bp.yaml", overrides))
    metrics = trainer.fit()
    assert metrics["test_accuracy"] > 0.6, metrics  # chance is 0.1; the full spec reaches ~0.9
