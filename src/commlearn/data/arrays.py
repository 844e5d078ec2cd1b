"""The generic loader for a user's own arrays: one ``.npz`` entry (or ``.npy`` file) per modality."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from commlearn.config import TaskType
from commlearn.data.base import ArrayDataset, infer_spec


def _read_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"cannot read array file {path}: {e} (is it a valid .npy file?)") from None


def _archive_entry(archive: np.lib.npyio.NpzFile, name: str, root: Path) -> np.ndarray:
    """Entry ``name`` of an open ``.npz`` archive; a damaged member (bad CRC, truncated) is a one-line error."""
    try:
        return np.asarray(archive[name])
    except (ValueError, zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        if "allow_pickle" in str(e):
            raise ValueError(
                f"entry {name!r} of {root} holds Python objects (a pickled array), which are not read: store "
                "numeric arrays"
            ) from None
        raise ValueError(
            f"cannot read entry {name!r} of {root}: {e}; the file is damaged: write it again"
        ) from None


_KIND_NAMES = {"U": "strings", "S": "byte strings", "O": "Python objects", "c": "complex numbers"}


def _numeric(array: np.ndarray, name: str, root: Path) -> np.ndarray:
    """``array`` if it holds numbers or booleans; else a one-line ValueError naming the entry."""
    if array.dtype.kind not in "biuf":
        what = _KIND_NAMES.get(array.dtype.kind, "values that are not numbers")
        raise ValueError(
            f"entry {name!r} of {root} holds {what} (dtype {array.dtype}): store numbers (features, token "
            "ids, or class ids 0..K-1 for labels)"
        )
    return array


def _open_npz(root: Path) -> np.lib.npyio.NpzFile:
    """The ``.npz`` archive at ``root``, or a one-line ValueError."""
    try:
        archive = np.load(root, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read {root}: {e} (expected an .npz archive)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{root} holds a single array; save one entry per modality with np.savez")
    return archive


def _as_model_dtype(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x


def load_arrays(
    root: str | Path,
    modalities: Sequence[str] | None = None,
    labels: str | None = "labels",
    padding: Sequence[str | None] | None = None,
    task_type: TaskType = "multiclass",
    split: str | None = None,
    present: str | None = None,
) -> ArrayDataset:
    """Load modalities from ``root``: an ``.npz`` file (one entry per modality) or a folder of ``.npy`` files.

    Array conventions: images (N, C, H, W) (uint8 or float in [0, 1]); sequences (N, T, d) float; vectors
    (N, d) float; token ids (N, T) int. Labels (N,) or (N, K).

    Args:
        root: the ``.npz`` file or the folder holding ``<name>.npy`` files.
        modalities: entry names, in order (default: every entry except the labels and padding entries).
        labels: entry holding labels, or None (absent labels are fine when the entry does not exist).
        padding: per modality, None or the entry holding its (N, T) bool padding mask (True = padding).
        task_type: how labels are probed.
        split: entry naming each row's split (read with :func:`read_entry`); never taken as a modality.
        present: entry holding an (N, n) presence mask (bool, or 0/1), one column per modality in order: False
            where a sample lacks that modality (its values there are ignored, NaN allowed).

    Raises:
        ValueError: missing file or entry, unreadable or damaged file, entries that are not numbers (strings,
            objects), mismatched lengths, NaN/Inf values, class labels (``task_type="multiclass"``) that are
            not integers ≥ 0, a presence mask of the wrong shape or with a sample lacking every modality.
    """
    root = Path(root)
    if root.is_dir():
        entries = {p.stem: p for p in sorted(root.glob("*.npy"))}
        if not entries:
            raise ValueError(
                f"no .npy files in {root}: give a folder of <modality>.npy files or an .npz file"
            )
        read = lambda name: _read_array(entries[name])  # noqa: E731
        names = list(entries)
    elif root.is_file():
        archive = _open_npz(root)
        names = list(archive.files)
        read = lambda name: _archive_entry(archive, name, root)  # noqa: E731
    else:
        raise ValueError(f"data path not found: {root}")
    get = lambda name: _numeric(read(name), name, root)  # noqa: E731
    pad_names = [p for p in (padding or []) if p is not None]
    chosen = (
        list(modalities)
        if modalities is not None
        else [n for n in names if n not in (labels, split, present) and n not in pad_names]
    )
    missing = [n for n in [*chosen, *pad_names, *([present] if present else [])] if n not in names]
    if missing:
        raise ValueError(f"entries {missing} not found in {root}; it has {names}")
    if not chosen:
        raise ValueError(f"no modality entries in {root}")
    # float64 (NumPy's default) and float16 modalities become float32, the models' precision
    inputs = [_as_model_dtype(torch.from_numpy(np.ascontiguousarray(get(n)))) for n in chosen]
    pads: list[torch.Tensor | None] = (
        [None if p is None else torch.from_numpy(get(p).astype(bool)) for p in padding]
        if padding
        else [None] * len(chosen)
    )
    y = torch.from_numpy(get(labels)) if labels is not None and labels in names else None
    specs = [
        replace(infer_spec(x, i), name=name) for i, (x, name) in enumerate(zip(inputs, chosen, strict=True))
    ]
    if y is not None and task_type == "multiclass":
        _check_class_ids(y, f"labels entry {labels!r} of {root}")
        y = y.long()
    n_tasks = 0 if y is None else (1 if y.ndim == 1 else int(y.shape[1]))
    names_t = [labels or "label"] if n_tasks == 1 else [f"{labels}{k}" for k in range(n_tasks)]
    mask = None if present is None else _presence(get(present), present, root)
    return ArrayDataset(inputs, specs, y, pads, task_names=names_t, task_type=task_type, present=mask)


def _presence(values: np.ndarray, name: str, root: Path) -> torch.Tensor:
    """A presence entry (N, n) of booleans or 0/1 → a bool tensor; else a one-line ValueError."""
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        raise ValueError(
            f"presence entry {name!r} of {root} must hold booleans or 0/1 (True = the sample has the modality)"
        )
    return torch.from_numpy(values.astype(bool))


def _check_class_ids(y: torch.Tensor, what: str) -> None:
    """Raise a one-line ValueError unless ``y`` holds integer class ids ≥ 0 (as ints or whole floats)."""
    if y.is_floating_point():
        bad = ~(y == y.round())  # NaN fails too
        if bool(bad.any()):
            value = float(y[bad].flatten()[0])
            raise ValueError(
                f"{what} holds non-integer values (e.g. {value:g}) but the task type is multiclass: store "
                "class ids 0..K-1, or set data.options.task_type to regression or multilabel"
            )
    if y.numel() and y.dtype != torch.bool and bool((y < 0).any()):
        raise ValueError(f"{what} holds negative class ids (e.g. {int(y.min())}): store class ids 0..K-1")


def read_entry(root: str | Path, name: str) -> np.ndarray:
    """One entry of an ``.npz`` file, or ``<name>.npy`` of a folder (e.g. a split column).

    Raises:
        ValueError: missing or unreadable file or entry.
    """
    root = Path(root)
    if root.is_dir():
        path = root / f"{name}.npy"
        if not path.is_file():
            raise ValueError(f"entry {name!r} not found: no {path}")
        return _read_array(path)
    if not root.is_file():
        raise ValueError(f"data path not found: {root}")
    with _open_npz(root) as archive:
        if name not in archive.files:
            raise ValueError(f"entry {name!r} not found in {root}; it has {archive.files}")
        return _archive_entry(archive, name, root)
