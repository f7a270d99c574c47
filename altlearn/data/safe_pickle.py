"""Reading pickled data files (CIFAR-10's python batches) without letting them run code.

``pickle.load`` calls whatever functions a file names: a crafted ``data_batch_1`` in a data folder
could run any command. This reader admits only what those files need: the plain values pickle
builds by itself (dicts, lists, tuples, str, bytes, numbers) and numeric numpy arrays, rebuilt
through the few numpy functions their pickles name (each wrapped here so that its arguments are
checked too). Any other name in the file stops the read with :class:`RefusedPickle`.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class RefusedPickle(pickle.UnpicklingError):
    """The file names something a data file has no reason to contain."""


class _ArrayClass:
    """Stands in for ``numpy.ndarray`` inside the file: it can only be passed to the array
    rebuilder, never called (``ndarray(10**12)`` would allocate whatever the file asks)."""

    def __call__(self, *args: Any) -> None:
        raise RefusedPickle("it calls numpy.ndarray directly")


_ARRAY_CLASS = _ArrayClass()


def _dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if isinstance(spec, bytes):  # Python 2 pickles spell the type as a byte string
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise RefusedPickle(f"a numpy type given as {type(spec).__name__}, not a name")
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise RefusedPickle(f"numpy type {dtype} (only plain numbers are data)")
    return dtype


def _empty_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``: an empty array, that the pickle then fills with its data."""
    if subtype is not _ARRAY_CLASS or not isinstance(dtype, (np.dtype, str, bytes)):
        raise RefusedPickle("an array rebuilt from something other than numpy.ndarray")
    if not isinstance(shape, tuple) or shape != (0,):  # numpy writes (0,); the data comes next
        raise RefusedPickle(f"an array started with shape {shape!r}")
    return np.ndarray((0,), dtype=dtype if isinstance(dtype, np.dtype) else _dtype(dtype))


def _array_from_buffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (pickle protocol 5): the array's bytes, shaped."""
    if not isinstance(buffer, (bytes, bytearray)) or not isinstance(dtype, np.dtype):
        raise RefusedPickle("an array rebuilt from something other than bytes")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode``: how Python 3 pickles bytes for protocols 0-2 (only latin-1 is used)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickle(f"_codecs.encode of {type(text).__name__} with codec {encoding!r}")
    return text.encode("latin-1")


_ADMITTED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "ndarray"): _ARRAY_CLASS,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x spellings
    _ADMITTED[(_module, "_reconstruct")] = _empty_array
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ADMITTED[(_module, "_frombuffer")] = _array_from_buffer


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"it names {module}.{name}") from None


def load_data_pickle(path: Path) -> Any:
    """The values pickled in ``path`` (Python 2 strings as bytes); RefusedPickle if the file
    names anything but the admitted numpy helpers, other pickle errors if it is damaged."""
    data = Path(path).read_bytes()
    return _DataUnpickler(io.BytesIO(data), encoding="bytes").load()
