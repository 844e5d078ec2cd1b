"""The generic loader for a user's own arrays: one ``.npz`` entry (or ``.npy`` file) per modality."""

from __future__ import annotations

import zipfile
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


def load_arrays(
    root: str | Path,
    modalities: Sequence[str] | None = None,
    labels: str | None = "labels",
    padding: Sequence[str | None] | None = None,
    task_type: TaskType = "multiclass",
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

    Raises:
        ValueError: missing file or entry, unreadable file, mismatched lengths, NaN/Inf values.
    """
    root = Path(root)
    if root.is_dir():
        entries = {p.stem: p for p in sorted(root.glob("*.npy"))}
        if not entries:
            raise ValueError(
                f"no .npy files in {root}: give a folder of <modality>.npy files or an .npz file"
            )
        get = lambda name: _read_array(entries[name])  # noqa: E731
        names = list(entries)
    elif root.is_file():
        try:
            archive = np.load(root, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"cannot read {root}: {e} (expected an .npz archive)") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{root} holds a single array; save one entry per modality with np.savez")
        names = list(archive.files)
        get = lambda name: archive[name]  # noqa: E731
    else:
        raise ValueError(f"data path not found: {root}")
    pad_names = [p for p in (padding or []) if p is not None]
    chosen = (
        list(modalities)
        if modalities is not None
        else [n for n in names if n != labels and n not in pad_names]
    )
    missing = [n for n in [*chosen, *pad_names] if n not in names]
    if missing:
        raise ValueError(f"entries {missing} not found in {root}; it has {names}")
    if not chosen:
        raise ValueError(f"no modality entries in {root}")
    inputs = [torch.from_numpy(np.ascontiguousarray(get(n))) for n in chosen]
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
        y = y.long()
    n_tasks = 0 if y is None else (1 if y.ndim == 1 else int(y.shape[1]))
    names_t = [labels or "label"] if n_tasks == 1 else [f"{labels}{k}" for k in range(n_tasks)]
    return ArrayDataset(inputs, specs, y, pads, task_names=names_t, task_type=task_type)
