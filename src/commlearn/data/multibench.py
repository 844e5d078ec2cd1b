"""MultiBench's published affect pickles (MOSI, MOSEI, UR-FUNNY, MUsTARD) and MIMIC (``im.pk``).

Formats, cleaning and splits follow the public loaders (DESIGN.md section 11); the code is ours. Both kinds of
file are pickles: they are read only from the path the user names in ``data.root``, through
:func:`~commlearn.data.files.read_pickle` (numpy arrays and plain containers only), and held in memory
(MOSEI's train split is ~1 GB of float32; MOSI ~40 MB; MIMIC ~45 MB).

Affect (Liang et al., MultiBench, NeurIPS 2021 Datasets & Benchmarks): a dict ``{train, valid, test}`` of
dicts of arrays with first axis N — ``vision`` (N, T, d_v), ``audio`` (N, T, d_a), ``text`` (N, T, 300) GloVe
vectors zero-padded at the front, ``labels`` one value per sample. Samples whose text is all zeros are
dropped; every modality starts at the first non-zero text step. The steps kept are moved to the front and the
rest is padding (mask True), so every encoder, adapter and augmentation sees the same valid steps and a GRU
reads no padding before the signal. NaN and ±inf (the audio features hold -inf) become 0.

MIMIC-III as pre-processed by MultiBench (credentialed access): ``ep_tdata`` (N, 24, 12) hourly vitals,
``adm_features_all`` (N, 5) static admission features, ``adm_labels_all`` (N, ≥6) mortality windows,
``y_icd9`` (N, ≥20) ICD-9 code groups.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from commlearn.config import ConfigError
from commlearn.data.base import ArrayDataset, ModalitySpec
from commlearn.data.files import DataFileError, check_array, read_pickle, require_key, resolve_file
from commlearn.data.splits import DataSplits

__all__ = ["AFFECT_DATASETS", "AffectInfo", "load_affect", "load_mimic", "mimic_split"]

AFFECT_MODALITIES = ("vision", "audio", "text")
_AFFECT_SPLITS = (("train", "train"), ("val", "valid"), ("test", "test"))  # (ours, the pickle's key)


@dataclass(frozen=True)
class AffectInfo:
    """One affect data set: its published file, its label task names and whether labels are continuous.

    Attributes:
        filename: the published pickle.
        binary_task: name of the binary task (label > 0).
        regression_task: name of the regression task (the raw label), or None if the labels are 0/1.
    """

    filename: str
    binary_task: str
    regression_task: str | None = None


AFFECT_DATASETS: dict[str, AffectInfo] = {
    "mosi": AffectInfo("mosi_data.pkl", "positive", "sentiment"),
    "mosei": AffectInfo("mosei_senti_data.pkl", "positive", "sentiment"),
    "ur-funny": AffectInfo("humor.pkl", "humor"),
    "mustard": AffectInfo("sarcasm.pkl", "sarcasm"),
}


def _choose(names: Sequence[str] | None, allowed: Sequence[str], option: str) -> list[str]:
    """Validate a modality selection (None: all, in the published order)."""
    if names is None:
        return list(allowed)
    chosen = list(names)
    unknown = [n for n in chosen if n not in allowed]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"data.options.{option} must list distinct names among {list(allowed)}, got {chosen}"
        )
    return chosen


def _finite(x: np.ndarray) -> np.ndarray:
    """float32 copy with NaN and ±inf set to 0."""
    return np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _left_align(x: np.ndarray, keep: np.ndarray, start: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Rows ``keep`` of ``x`` with steps ``start[i]:`` moved to the front, the rest zero, NaN/±inf → 0.

    Works through ``chunk`` rows at a time, so the peak memory is the float32 output plus one chunk.

    Args:
        x: (N, T, d) features.
        keep: (K,) int64 rows of ``x`` to keep.
        start: (K,) int64 first step kept per row.

    Returns:
        (K, T, d) float32.
    """
    t = x.shape[1]
    out = np.empty((len(keep), t, x.shape[2]), dtype=np.float32)
    for lo in range(0, len(keep), chunk):
        rows = keep[lo : lo + chunk]
        steps = start[lo : lo + chunk, None] + np.arange(t)[None, :]  # (k, T) source step of each output step
        block = np.take_along_axis(_finite(x[rows]), np.minimum(steps, t - 1)[:, :, None], axis=1)
        block[steps >= t] = 0.0
        out[lo : lo + chunk] = block
    return out


def _affect_split(
    split: Any, where: str, modalities: Sequence[str], task: str, info: AffectInfo
) -> ArrayDataset:
    """One split of an affect pickle, cleaned (see the module docstring)."""
    expected_split = "a dict of arrays vision, audio, text (N, T, d) and labels (N, ...)"
    text = check_array(
        require_key(split, "text", where, expected_split), f"{where}/text", 3, "(N, T, 300) float"
    )
    n, t = text.shape[:2]
    raw = {"text": text}
    for name in modalities:
        if name != "text":
            raw[name] = check_array(
                require_key(split, name, where, expected_split),
                f"{where}/{name}",
                3,
                f"(N={n}, T={t}, d) float",
            )
            if raw[name].shape[:2] != (n, t):
                raise DataFileError(
                    f"{where}/{name} has shape {raw[name].shape}, expected (N={n}, T={t}, d) like {where}/text"
                )
    labels = check_array(
        require_key(split, "labels", where, expected_split),
        f"{where}/labels",
        (1, 2, 3),
        "one value per sample",
        rows=n,
    ).reshape(n, -1)
    if labels.shape[1] != 1:
        raise DataFileError(f"{where}/labels has {labels.shape[1]} values per sample, expected one")
    signal = np.zeros((n, t), dtype=bool)  # steps with a (finite, non-zero) word vector
    for lo in range(0, n, 2048):
        signal[lo : lo + 2048] = (_finite(text[lo : lo + 2048]) != 0).any(axis=2)
    keep = np.flatnonzero(signal.any(axis=1))
    start = signal[keep].argmax(axis=1)
    padding = torch.from_numpy(start[:, None] + np.arange(t)[None, :] >= t)  # (K, T) True = padding
    inputs, specs = [], []
    for name in modalities:
        inputs.append(torch.from_numpy(_left_align(raw[name], keep, start)))
        specs.append(ModalitySpec(name, "sequence", (t, int(raw[name].shape[2]))))
    pads: list[torch.Tensor | None] = [padding] * len(modalities)
    y_raw = _finite(labels[keep, 0])
    if task == "binary":
        y = torch.from_numpy(y_raw > 0).long()
        names = [info.binary_task]
    else:
        y = torch.from_numpy(y_raw)
        names = [info.regression_task or "label"]
    return ArrayDataset(
        inputs, specs, y, pads, task_names=names, task_type="multiclass" if task == "binary" else "regression"
    )


def load_affect(
    root: str | None,
    dataset: str,
    modalities: Sequence[str] | None = None,
    task: str = "binary",
) -> DataSplits:
    """An affect data set with its published train / valid / test split.

    Args:
        root: the pickle (``mosi_data.pkl``, ``mosei_senti_data.pkl``, ``humor.pkl``, ``sarcasm.pkl``) or its
            folder.
        dataset: ``"mosi"``, ``"mosei"``, ``"ur-funny"`` or ``"mustard"``.
        modalities: which of ``vision``, ``audio``, ``text`` to use, in this order (default: all three).
            Each is a ``sequence`` modality (T, d) with a padding mask (True = padding).
        task: ``"binary"`` (label > 0, probed by balanced accuracy) or, for MOSI / MOSEI, ``"regression"``
            (the sentiment score in [-3, 3], probed by MSE).

    Returns:
        ``DataSplits(train, test=test, val=valid)``.

    Raises:
        ConfigError: unknown data set, modality or task; ``root`` not set.
        DataFileError: missing, truncated or malformed file (the message names the file and the key).
    """
    if dataset not in AFFECT_DATASETS:
        raise ConfigError(f"unknown affect data set {dataset!r}; choose one of {sorted(AFFECT_DATASETS)}")
    info = AFFECT_DATASETS[dataset]
    chosen = _choose(modalities, AFFECT_MODALITIES, "modalities")
    tasks = ["binary"] + (["regression"] if info.regression_task else [])
    if task not in tasks:
        raise ConfigError(f"data.options.task for {dataset} must be one of {tasks}, got {task!r}")
    path = resolve_file(root, info.filename, dataset)
    content = read_pickle(
        path, "a dict with keys train, valid, test of dicts of arrays (vision, audio, text, labels)"
    )
    expected = "keys train, valid, test, each a dict of arrays (vision, audio, text, labels)"
    parts = {
        ours: _affect_split(
            require_key(content, key, str(path), expected), f"{path}: {key}", chosen, task, info
        )
        for ours, key in _AFFECT_SPLITS
    }
    dims = {p: [s.shape[1] for s in parts[p].modality_specs] for p in parts}
    if len({tuple(d) for d in dims.values()}) != 1:
        raise DataFileError(
            f"{path}: feature widths differ between splits ({dims}); expected the same everywhere"
        )
    return DataSplits(train=parts["train"], test=parts["test"], val=parts["val"])


# ---------------------------------------------------------------------------------------------------- MIMIC
MIMIC_MODALITIES = ("static", "vitals")
_MIMIC_EXPECTED = (
    "a dict with ep_tdata (N, 24, 12), adm_features_all (N, 5), adm_labels_all (N, ≥6), y_icd9 (N, ≥20)"
)


def mimic_split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The published MIMIC split of ``n`` samples: shuffle with Python's ``random.seed(10)``, then
    val = the first n // 10, test = the next n // 5 - n // 10, train = the rest.

    Returns:
        ``(train, val, test)`` index arrays into the file's rows.
    """
    order = list(range(n))
    random.Random(10).shuffle(order)  # the same permutation as random.seed(10); random.shuffle(...)
    idx = np.asarray(order, dtype=np.int64)
    return idx[n // 5 :], idx[: n // 10], idx[n // 10 : n // 5]


def _zscore(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Standardise per feature over ``axes`` (population std; a constant feature is only centred)."""
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _mimic_task(name: str, content: Any, path: Path, n: int) -> tuple[np.ndarray, str]:
    """Labels (N,) int64 of one MIMIC task: ``mortality`` (6 classes) or ``icd9_<k>`` (binary)."""
    if name == "mortality":
        adm = check_array(
            require_key(content, "adm_labels_all", str(path), _MIMIC_EXPECTED),
            f"{path}: adm_labels_all",
            2,
            "(N, ≥6) mortality windows",
            rows=n,
            min_shape=(None, 6),
        )
        # class k in 1..5: the first window k with a positive entry; 0: none
        positive = _finite(adm[:, 1:6]) > 0
        return np.where(positive.any(axis=1), positive.argmax(axis=1) + 1, 0).astype(np.int64), name
    group = name.removeprefix("icd9_")
    if not name.startswith("icd9_") or not group.isdigit():
        raise ConfigError(
            f"MIMIC task {name!r} is unknown: use 'mortality' or 'icd9_<k>' (k = 0..19, the paper: 7)"
        )
    k = int(group)
    icd = check_array(
        require_key(content, "y_icd9", str(path), _MIMIC_EXPECTED),
        f"{path}: y_icd9",
        2,
        f"(N, ≥{k + 1}) ICD-9 groups",
        rows=n,
        min_shape=(None, k + 1),
    )
    return (_finite(icd[:, k]) > 0).astype(np.int64), name


def load_mimic(
    root: str | None,
    modalities: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> DataSplits:
    """MIMIC-III (MultiBench's ``im.pk``) with its published split.

    ``static`` — the (5,) admission features, a ``vector`` modality; ``vitals`` — (24, 12) hourly
    measurements, a ``sequence`` modality (no padding). NaN and ±inf become 0; static features are z-scored
    per feature over all N samples, vitals per feature over all samples and hours (the published protocol).

    Args:
        root: ``im.pk`` or its folder.
        modalities: which of ``static``, ``vitals`` to use, in this order (default: both).
        tasks: label columns, each ``"mortality"`` (6 classes: 0 = none, k = the first positive of mortality
            windows 1..5 of ``adm_labels_all``) or ``"icd9_<k>"`` (column k of ``y_icd9`` > 0, binary).
            Default ``["icd9_7", "mortality"]``: the paper's task (ICD-9 group 7) first.

    Returns:
        ``DataSplits(train, test=test, val=val)``, labels (N, K) int64.

    Raises:
        ConfigError: unknown modality or task; ``root`` not set.
        DataFileError: missing, truncated or malformed file.
    """
    chosen = _choose(modalities, MIMIC_MODALITIES, "modalities")
    task_list = list(tasks) if tasks is not None else ["icd9_7", "mortality"]
    if not task_list or len(set(task_list)) != len(task_list):
        raise ConfigError(f"data.options.tasks must list distinct MIMIC tasks, got {task_list}")
    path = resolve_file(root, "im.pk", "mimic")
    content = read_pickle(path, _MIMIC_EXPECTED)
    vitals = check_array(
        require_key(content, "ep_tdata", str(path), _MIMIC_EXPECTED),
        f"{path}: ep_tdata",
        3,
        "(N, 24, 12) float",
    )
    n = int(vitals.shape[0])
    static = check_array(
        require_key(content, "adm_features_all", str(path), _MIMIC_EXPECTED),
        f"{path}: adm_features_all",
        2,
        "(N, 5) float",
        rows=n,
    )
    arrays = {"static": _zscore(_finite(static), (0,)), "vitals": _zscore(_finite(vitals), (0, 1))}
    labels = [_mimic_task(name, content, path, n) for name in task_list]
    y = torch.from_numpy(np.stack([lab for lab, _ in labels], axis=1))
    specs = [
        ModalitySpec("static", "vector", (int(static.shape[1]),))
        if name == "static"
        else ModalitySpec("vitals", "sequence", (int(vitals.shape[1]), int(vitals.shape[2])))
        for name in chosen
    ]
    inputs = [torch.from_numpy(arrays[name]) for name in chosen]
    names = [name for _, name in labels]

    def part(index: np.ndarray) -> ArrayDataset:
        rows = torch.from_numpy(index)
        return ArrayDataset(
            [x[rows] for x in inputs], specs, y[rows], task_names=names, task_type="multiclass"
        )

    train, val, test = mimic_split(n)
    if min(len(train), len(val), len(test)) == 0:
        raise DataFileError(f"{path} holds {n} samples: too few for the published 80/10/10 split")
    return DataSplits(train=part(train), test=part(test), val=part(val))
