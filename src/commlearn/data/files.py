"""Reading the published data files: where they are, what they must hold, one-line errors when they don't.

Every loader of a published data set goes through these helpers, so a missing file, a missing key, a wrong
shape and a truncated file all end in one line that names the file and what was expected. Nothing here
downloads: the user points ``data.root`` at the files.

Pickles are read only from the path the user names, and through a restricted unpickler that rebuilds
numpy arrays and plain Python containers and refuses every other global: a published data pickle holds
nothing else, and a tampered one cannot run code.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from commlearn.config import ConfigError

__all__ = [
    "DataFileError",
    "check_array",
    "read_pickle",
    "require_key",
    "resolve_file",
]


class DataFileError(ValueError):
    """A data file is missing, unreadable, or does not hold what its format promises (one line, with the path)."""


def resolve_file(root: str | None, filename: str, dataset: str) -> Path:
    """The published file ``filename`` of ``dataset``: ``root`` itself, or ``root/filename`` for a folder.

    Args:
        root: ``data.root`` as configured (a file or the folder holding it).
        filename: the published file name, e.g. ``"mosi_data.pkl"``.
        dataset: the data set name for messages.

    Raises:
        ConfigError: ``root`` is not set.
        DataFileError: the file does not exist.
    """
    if root is None:
        raise ConfigError(
            f"data.root is not set: give data.root=<path to {filename} or the folder holding it> "
            f"(the {dataset} files are never downloaded)"
        )
    path = Path(root).expanduser()
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise DataFileError(
            f"{path} not found: data.root must name the {dataset} file {filename} or its folder"
        )
    return path


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_PLAIN_GLOBALS = {
    ("builtins", name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float")
} | {("builtins", "complex"), ("builtins", "bool"), ("collections", "OrderedDict"), ("_codecs", "encode")}


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global that a data file never holds."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and plain containers only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS or (module, name) in _PLAIN_GLOBALS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core → numpy._core on numpy 2
                return super().find_class(module, name)
        found = getattr(np, name, None) if module == "numpy" else None
        if isinstance(found, type) and issubclass(found, np.generic):
            return found  # scalar types (np.float32, ...)
        raise _ForbiddenGlobal(f"it refers to {module}.{name}")


def read_pickle(path: Path, expected: str) -> Any:
    """Unpickle a published data file (numpy arrays and plain containers only).

    Args:
        path: the file the user named.
        expected: what the file should hold, for messages (e.g. ``"a dict with keys train, valid, test"``).

    Raises:
        DataFileError: unreadable, truncated, not a pickle, or holding objects a data file never holds.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataFileError(f"cannot read {path}: {e.strerror or e}") from None
    last: Exception | None = None
    for encoding in ("ASCII", "latin1"):  # latin1: pickles of numpy arrays written by Python 2
        try:
            return _ArrayUnpickler(io.BytesIO(data), encoding=encoding).load()
        except UnicodeDecodeError as e:
            last = e
        except _ForbiddenGlobal as e:
            raise DataFileError(
                f"{path} is not a plain data pickle ({e}); commlearn only unpickles numpy arrays and "
                f"containers, and expected {expected}"
            ) from None
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            MemoryError,
        ) as e:
            last = e
            break
    raise DataFileError(
        f"{path} is truncated or not a pickle ({type(last).__name__}): expected {expected}"
    ) from None


def require_key(mapping: Any, key: str, where: str, expected: str) -> Any:
    """``mapping[key]``, or a one-line DataFileError naming ``where`` and what it should hold."""
    if not isinstance(mapping, Mapping):
        raise DataFileError(f"{where} is a {type(mapping).__name__}, expected {expected}")
    if key not in mapping:
        keys = ", ".join(sorted(map(str, mapping)))
        raise DataFileError(f"{where} has no key {key!r} (it has: {keys}); expected {expected}")
    return mapping[key]


def check_array(
    value: Any,
    where: str,
    ndim: int | Sequence[int],
    expected: str,
    rows: int | None = None,
    min_shape: Sequence[int | None] = (),
) -> np.ndarray:
    """Check that ``value`` is a numeric array of rank ``ndim`` (and ``rows`` rows); return it.

    Args:
        value: what the file holds at ``where``.
        where: file and key, for messages (``"mosi_data.pkl: train/text"``).
        ndim: the rank (or ranks) the format promises.
        expected: the shape as the format describes it, e.g. ``"(N, 50, 300) float"``.
        rows: the number of rows it must have (its first axis), if known.
        min_shape: per axis, the smallest size allowed (None: any).

    Raises:
        DataFileError: not an array, not numeric, wrong rank, row count or size.
    """
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError):
            raise DataFileError(
                f"{where} is a {type(value).__name__}, expected an array {expected}"
            ) from None
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if value.dtype.kind not in "biuf":
        raise DataFileError(f"{where} has dtype {value.dtype}, expected a numeric array {expected}")
    if value.ndim not in ranks:
        raise DataFileError(f"{where} has shape {value.shape}, expected {expected}")
    if rows is not None and value.shape[0] != rows:
        raise DataFileError(
            f"{where} has {value.shape[0]} rows, expected {rows} (one per sample): {expected}"
        )
    for axis, low in enumerate(min_shape):
        if low is not None and value.shape[axis] < low:
            raise DataFileError(f"{where} has shape {value.shape}, expected {expected}")
    return value
