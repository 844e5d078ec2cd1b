"""A user's own arrays with their own split: a split entry, or separate train / val / test files.

Vector modalities are standardised (per feature: minus the mean, divided by the standard deviation) with
statistics of the training rows only, by default. The statistics are not stored anywhere: they are a pure
function of the training rows, and a checkpoint rebuilds its data from the stored ``data`` config (same
files, same split), so rebuilding recomputes them identically. (Pointing ``data.root`` at other files when
probing a checkpoint standardises with those files' training rows instead.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from commlearn.config import TASK_TYPES, ConfigError, TaskType
from commlearn.data.arrays import load_arrays, read_entry
from commlearn.data.base import ArrayDataset
from commlearn.data.splits import DataSplits, take_rows

__all__ = ["SPLIT_CODES", "Standardizer", "load_user_arrays", "split_codes"]

#: accepted values of a split entry → 0 (train), 1 (val), 2 (test)
SPLIT_CODES: dict[str | int, int] = {"train": 0, "val": 1, "test": 2, 0: 0, 1: 1, 2: 2}


def split_codes(values: np.ndarray, where: str) -> Tensor:
    """A split entry (N,) of ``train``/``val``/``test`` strings or 0/1/2 integers → (N,) int64 codes 0/1/2.

    Raises:
        ValueError: another shape, or values outside those.
    """
    if values.ndim != 1:
        raise ValueError(
            f"split entry {where} has shape {values.shape}, expected (N,) of train/val/test or 0/1/2"
        )
    if values.dtype.kind in "US":
        text = np.char.lower(np.char.strip(values.astype(str)))
        codes = np.full(len(text), -1, dtype=np.int64)
        for name in ("train", "val", "test"):
            codes[text == name] = SPLIT_CODES[name]
        bad = sorted(set(text[codes < 0].tolist()))
    elif values.dtype.kind in "biu" or (values.dtype.kind == "f" and np.all(values == np.round(values))):
        ints = values.astype(np.int64)
        codes = np.where(np.isin(ints, [0, 1, 2]), ints, -1)
        bad = sorted(set(ints[codes < 0].tolist()))
    else:
        raise ValueError(
            f"split entry {where} has dtype {values.dtype}: store train/val/test strings or 0/1/2"
        )
    if bad:
        raise ValueError(f"split entry {where} holds {bad[:5]}; allowed values: train/val/test or 0/1/2")
    return torch.from_numpy(codes)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature ``(x - mean) / std`` of the vector modalities, with statistics from training rows.

    Attributes:
        stats: per modality, None (not a float vector: unchanged) or ``(mean (d,), std (d,))`` float32; a
            constant feature has std 1 (only centred).
    """

    stats: tuple[tuple[Tensor, Tensor] | None, ...]

    @classmethod
    def fit(cls, train: ArrayDataset) -> Standardizer:
        """Statistics of the float vector modalities of ``train`` (float64 sums, population std)."""
        stats: list[tuple[Tensor, Tensor] | None] = []
        for spec, x in zip(train.modality_specs, train.inputs, strict=True):
            if spec.kind != "vector" or not x.is_floating_point() or len(x) == 0:
                stats.append(None)
                continue
            x64 = x.double()
            mean, std = x64.mean(0), x64.std(0, unbiased=False)
            std = torch.where(std > 0, std, torch.ones_like(std))
            stats.append((mean.float(), std.float()))
        return cls(tuple(stats))

    def apply(self, data: ArrayDataset) -> ArrayDataset:
        """A copy of ``data`` with its vector modalities standardised."""
        inputs = [
            x if s is None else ((x.float() - s[0]) / s[1]).to(x.dtype)
            for x, s in zip(data.inputs, self.stats, strict=True)
        ]
        return ArrayDataset(
            inputs,
            data.modality_specs,
            data.labels,
            data.padding,
            task_names=data.task_names,
            task_type=data.task_type,
        )


def _same_layout(first: ArrayDataset, other: ArrayDataset, path: str, root: str) -> None:
    if other.modality_specs != first.modality_specs:
        got = ", ".join(f"{s.name} {s.kind} {s.shape}" for s in other.modality_specs)
        want = ", ".join(f"{s.name} {s.kind} {s.shape}" for s in first.modality_specs)
        raise ValueError(
            f"{path} holds modalities [{got}] but {root} holds [{want}]: give files with the same entries"
        )
    if (first.labels is None) != (other.labels is None):
        raise ValueError(f"{path} and {root} must both have labels or both have none")


def load_user_arrays(
    root: str | Path | None,
    modalities: Sequence[str] | None = None,
    labels: str | None = "labels",
    padding: Sequence[str | None] | None = None,
    task_type: TaskType = "multiclass",
    split: str | None = None,
    val: str | None = None,
    test: str | None = None,
    standardize: bool = True,
) -> DataSplits:
    """A user's arrays (see :func:`~commlearn.data.arrays.load_arrays`) with their split.

    Args:
        root: the ``.npz`` file or folder of ``.npy`` files (all rows, or the training rows when ``val`` /
            ``test`` name separate files).
        modalities, labels, padding, task_type: as :func:`~commlearn.data.arrays.load_arrays`.
        split: entry (N,) naming each row's split: ``train``/``val``/``test`` or 0/1/2.
        val, test: separate files of the same entries holding the validation / test rows.
        standardize: standardise float vector modalities with the training rows' statistics.

    Returns:
        ``DataSplits(train, test=test or None, val=val or None)``.

    Raises:
        ConfigError: ``root`` not set, an unknown ``task_type``, ``split`` together with ``val``/``test`` files.
        ValueError: unreadable files, unknown split values, files whose entries differ, an empty training split.
    """
    if root is None:
        raise ConfigError("data.root must name the .npz file or folder of .npy files for data.name=arrays")
    if task_type not in TASK_TYPES:
        raise ConfigError(f"data.options.task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    if split is not None and (val is not None or test is not None):
        raise ConfigError("give data.options.split (one file with a split entry) or val/test files, not both")
    full = load_arrays(root, modalities, labels, padding, task_type, split=split)
    names = [s.name for s in full.modality_specs]
    parts: dict[str, ArrayDataset | None] = {"train": full, "val": None, "test": None}
    if split is not None:
        codes = split_codes(read_entry(root, split), f"{split!r} of {root}")
        if len(codes) != len(full):
            raise ValueError(
                f"split entry {split!r} of {root} has {len(codes)} rows, the modalities {len(full)}"
            )
        for name, code in (("train", 0), ("val", 1), ("test", 2)):
            rows = take_rows(full, codes == code)
            parts[name] = rows if len(rows) or name == "train" else None
    for name, path in (("val", val), ("test", test)):
        if path is not None:
            other = load_arrays(path, names, labels, padding, task_type)
            _same_layout(full, other, str(path), str(root))
            parts[name] = other
    train = parts["train"]
    assert train is not None
    if len(train) == 0:
        raise ValueError(f"no training rows in {root}: the split entry {split!r} has no 'train' (0) rows")
    if standardize:
        scaler = Standardizer.fit(train)
        parts = {k: None if v is None else scaler.apply(v) for k, v in parts.items()}
    assert parts["train"] is not None
    return DataSplits(train=parts["train"], test=parts["test"], val=parts["val"])
