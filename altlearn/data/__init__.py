"""Data sets and how a training loop reads them.

- ``datasets``: the built-in data sets (MNIST, Fashion-MNIST, CIFAR-10, scikit-learn's digits) and
  their file readers (IDX, CIFAR's pickled batches);
- ``safe_pickle``: the restricted unpickler CIFAR's batches are read with;
- ``check``: loading a spec's splits and checking what a data set returned;
- ``batches``: the splits on the training device, shuffled or ordered batches of them.
"""

from altlearn.data.batches import DeviceData, num_batches, ordered_batches, prepare, shuffled_batches
from altlearn.data.check import load_splits
from altlearn.data.datasets import CIFAR10, MNIST, Digits, FashionMNIST

__all__ = [
    "CIFAR10",
    "MNIST",
    "DeviceData",
    "Digits",
    "FashionMNIST",
    "load_splits",
    "num_batches",
    "ordered_batches",
    "prepare",
    "shuffled_batches",
]
