"""CIFAR-10 batches are read by a restricted unpickler: a crafted data file runs no code (the file
it would create is never created) and is refused with exit 2 naming the file; real-format batches,
as any numpy and pickle protocol writes them, still load."""

import builtins
import os
import pickle

import numpy as np
import pytest
from click.testing import CliRunner
from test_data import write_cifar_folder

from altlearn.cli.commands import main
from altlearn.data.datasets import read_cifar_batch
from altlearn.data.safe_pickle import RefusedPickle, load_data_pickle
from altlearn.errors import DataUnavailable


class Payload:
    """Unpickling this calls ``function(*args)``: what an attacker's data_batch_1 would do."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker):
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.exec": Payload(builtins.exec, code),
        "builtins.open": Payload(builtins.open, str(marker), "w"),
    }


def crafted_batch(marker, name: str) -> bytes:
    """A real-looking batch dict whose data entry is the payload."""
    batch = {b"batch_label": b"x", b"labels": [1], b"data": payloads(marker)[name]}
    return pickle.dumps(batch, protocol=2)


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.open"])
def test_a_crafted_batch_creates_no_file_and_is_refused_naming_it(tmp_path, name):
    control = tmp_path / "control"
    pickle.loads(crafted_batch(control, name))  # the payload is real: plain pickle runs it
    assert control.exists()

    marker, path = tmp_path / "marker", tmp_path / "data_batch_1"
    path.write_bytes(crafted_batch(marker, name))
    with pytest.raises(DataUnavailable) as info:
        read_cifar_batch(path)
    assert not marker.exists()
    message = str(info.value)
    # As the pickle names them: protocol 2 writes builtins as Python 2's __builtin__
    pickled_name = {"os.system": f"{os.system.__module__}.system", "builtins.exec": "__builtin__.exec"}
    assert (
        f"{path} is not a CIFAR-10 batch and was not read: it names {pickled_name.get(name, 'io.open')}"
        in message
    )
    assert "could run code" in message


def test_altlearn_run_on_a_crafted_data_folder_exits_2_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(root)
    marker = tmp_path / "marker"
    (root / "data_batch_3").write_bytes(crafted_batch(marker, "os.system"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: c\ndata: {{type: cifar10, root: {root}}}\n"
        "network: {layers: [{type: flatten}, {type: linear, out_features: 10}]}\n"
        "rule: {type: bp}\ntrain: {epochs: 1, device: cpu}\n"
    )
    result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert result.exit_code == 2, result.output
    assert not marker.exists()
    assert f"{root / 'data_batch_3'} is not a CIFAR-10 batch and was not read: it names" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "content, refusal",
    [
        # ndarray((10**12,)): the array class itself, called with a size of the file's choosing
        (
            b"\x80\x02cnumpy\nndarray\n\x8a\x06" + (10**12).to_bytes(6, "little") + b"\x85\x85R.",
            "ndarray directly",
        ),
        (pickle.dumps(np.array([1, "x"], dtype=object), protocol=2), "numpy type object"),
        (pickle.dumps(np.zeros(2, dtype=[("a", "u1")]), protocol=2), "only plain numbers"),
        (pickle.dumps(np.zeros(2, dtype="U3"), protocol=2), "numpy type <U3"),
    ],
    ids=["ndarray-call", "object-array", "structured-array", "string-array"],
)
def test_the_admitted_numpy_helpers_check_their_arguments(tmp_path, content, refusal):
    path = tmp_path / "b"
    path.write_bytes(content)
    with pytest.raises(RefusedPickle, match=refusal):
        load_data_pickle(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_real_format_batches_load_in_every_pickle_protocol(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {b"batch_label": b"b", b"labels": [7, 2], b"data": data, b"filenames": [b"a.png", b"b.png"]}
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_batch(path)
    assert labels.tolist() == [7, 2] and images.shape == (2, 3, 32, 32)
    assert np.array_equal(images.reshape(2, 3072), data)
    assert images.flags.writeable  # torch.from_numpy warns on read-only arrays


def python2_batch(row: bytes, label: int) -> bytes:
    """A one-image batch opcode by opcode as Python 2's cPickle and numpy 1 wrote the real files:
    byte-string keys and types, numpy.core.multiarray._reconstruct, the pixels as one BINSTRING."""

    def short(text: bytes) -> bytes:  # SHORT_BINSTRING: a Python 2 str
        return b"U" + bytes([len(text)]) + text

    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short(b"b")
        + b"\x87R"
        + b"(K\x01K\x01M\x00\x0c\x86"  # state: version 1, shape (1, 3072)
        + b"cnumpy\ndtype\n"
        + short(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + short(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"  # dtype state
        + b"\x89T"
        + len(row).to_bytes(4, "little")
        + row
        + b"tb"  # not Fortran order, the pixels
    )
    return b"\x80\x02}(" + short(b"data") + array + short(b"labels") + b"]K" + bytes([label]) + b"au."


def test_a_batch_as_python_2_and_numpy_1_wrote_it_loads(tmp_path):
    row = bytes(range(256)) * 12
    path = tmp_path / "data_batch_1"
    path.write_bytes(python2_batch(row, 6))
    plain = pickle.loads(path.read_bytes(), encoding="bytes")  # the stream is what numpy reads
    assert plain[b"data"].shape == (1, 3072) and plain[b"data"].tobytes() == row
    images, labels = read_cifar_batch(path)
    assert labels.tolist() == [6] and images.shape == (1, 3, 32, 32)
    assert images.reshape(-1).tobytes() == row


@pytest.mark.parametrize(
    "batch, why",
    [
        ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [1]}, "2 images but 1 labels"),
        ({b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [10]}, "labels outside 0..9"),
        ({b"data": np.zeros((1, 3072), dtype=np.float32), b"labels": [1]}, "not rows of 3072 bytes"),
        ({b"data": np.zeros((1, 100), dtype=np.uint8), b"labels": [1]}, "not rows of 3072 bytes"),
        ({"data": np.zeros((1, 3072), dtype=np.uint8), "labels": ["a"]}, "labels are not whole numbers"),
    ],
    ids=["count-mismatch", "label-range", "float-data", "short-rows", "text-labels"],
)
def test_a_batch_of_the_wrong_shape_is_a_data_error_naming_it(tmp_path, batch, why):
    path = tmp_path / "data_batch_2"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataUnavailable, match="damaged or not a CIFAR-10 python batch") as info:
        read_cifar_batch(path)
    assert why in str(info.value) and str(path) in str(info.value)
