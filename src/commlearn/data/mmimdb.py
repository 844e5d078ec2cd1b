"""MM-IMDb (Arevalo et al., 2017): the JSON + JPEG release (posters and plots) and MultiBench's hdf5 features.

**JSON + JPEG release** (:func:`load_mmimdb_raw`, ``data.name: mm-imdb-raw``): ``<root>/split.json`` holds the
``train``, ``dev`` and ``test`` lists of film ids (15 552 / 2 608 / 7 799); per film ``<root>/dataset/<id>.json``
holds ``plot`` (a list of plot summaries; the first one is the text) and ``genres`` (a list of names; those
among the 23 of :data:`GENRES`, compared lower-cased, make the multi-hot labels, others are left out) and
``<root>/dataset/<id>.jpeg`` is the poster. Posters stay on disk and are decoded per batch
(:mod:`commlearn.data.images`); plots become token ids (:mod:`commlearn.data.text`).

**hdf5 features** (:func:`load_mmimdb_hdf5`, ``data.name: mm-imdb``): MultiBench's ``multimodal_imdb.hdf5``
holds ``features`` (N, 300) — the plot as averaged word2vec vectors —, ``vgg_features`` (N, 4096) — the poster
through VGG-16 —, ``genres`` (N, 23) multi-hot, ``images`` (the posters) and ``imdb_ids``. Rows are in split
order: train [0, 15 552), dev [15 552, 18 160), test [18 160, 25 959). The 23 genres, in the column order of
``genres``, are :data:`GENRES`.

Both feature matrices are read into memory (float32: 4096 + 300 values per film, ≈ 460 MB for the 25 959
films); the posters (``images``) are not read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from commlearn.config import ConfigError
from commlearn.data.base import ArrayDataset, ModalitySpec
from commlearn.data.files import DataFileError, check_array, require_key, resolve_file
from commlearn.data.images import ImageTextSplit, image_text_splits
from commlearn.data.splits import DataSplits

__all__ = ["GENRES", "MMIMDB_MODALITIES", "MMIMDB_SPLIT_SIZES", "load_mmimdb_hdf5", "load_mmimdb_raw"]

GENRES = (
    "action", "adventure", "animation", "biography", "comedy", "crime", "documentary", "drama", "family",
    "fantasy", "film-noir", "history", "horror", "music", "musical", "mystery", "romance", "sci-fi", "short",
    "sport", "thriller", "war", "western",
)  # fmt: skip
#: modality name → dataset of the hdf5 file
MMIMDB_MODALITIES = {"image": "vgg_features", "text": "features"}
#: the published train / dev / test sizes (rows in this order)
MMIMDB_SPLIT_SIZES = (15_552, 2_608, 7_799)
_EXPECTED = "datasets features (N, 300), vgg_features (N, 4096), genres (N, 23) as in MultiBench's release"


def _read(handle: Any, key: str, path: Path) -> Any:
    if key not in handle:
        raise DataFileError(
            f"{path} has no dataset {key!r} (it has: {', '.join(sorted(handle))}); expected {_EXPECTED}"
        )
    return handle[key]


def load_mmimdb_hdf5(
    root: str | None,
    modalities: Sequence[str] | None = None,
    split_sizes: Sequence[int] = MMIMDB_SPLIT_SIZES,
    standardize: bool = True,
) -> DataSplits:
    """MM-IMDb features with the published split by row ranges.

    Args:
        root: ``multimodal_imdb.hdf5`` or its folder.
        modalities: names among ``image`` (``vgg_features``, a (4096,) vector) and ``text`` (``features``, a
            (300,) vector), in this order (default: both).
        split_sizes: rows of the train, dev and test splits, in file order (the release: 15 552 / 2 608 /
            7 799; the file must hold exactly their sum).
        standardize: standardise each feature with the train rows' mean and standard deviation (a pure
            function of the file, so a checkpoint's rebuilt data is the same), which gives the Gaussian-noise
            augmentation (σ = 0.1) the same meaning for both modalities.

    Returns:
        ``DataSplits(train, test=test, val=dev)``; labels (N, 23) float multi-hot, task ``multilabel`` (weighted
        and macro F1).

    Raises:
        ConfigError: unknown modality, bad ``split_sizes``; ``root`` not set.
        DataFileError: missing, truncated or malformed file.
    """
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency of the data extras
        raise ConfigError("reading multimodal_imdb.hdf5 needs h5py: pip install h5py") from None
    chosen = list(modalities) if modalities is not None else list(MMIMDB_MODALITIES)
    if not chosen or len(set(chosen)) != len(chosen) or any(m not in MMIMDB_MODALITIES for m in chosen):
        raise ConfigError(
            f"data.options.modalities must list distinct names among {list(MMIMDB_MODALITIES)}, got {chosen}"
        )
    sizes = [int(s) for s in split_sizes]
    if len(sizes) != 3 or min(sizes) < 1:
        raise ConfigError(
            f"data.options.split_sizes must be three positive row counts (train, dev, test), got {sizes}"
        )
    path = resolve_file(root, "multimodal_imdb.hdf5", "mm-imdb")
    total = sum(sizes)
    try:
        handle = h5py.File(path, "r")
    except OSError as e:
        raise DataFileError(
            f"cannot read {path}: truncated or not an HDF5 file ({e}); expected {_EXPECTED}"
        ) from None
    try:
        with handle:
            genres_ds = _read(handle, "genres", path)
            if genres_ds.ndim != 2 or genres_ds.shape[1] != len(GENRES):
                raise DataFileError(
                    f"{path}: genres has shape {genres_ds.shape}, expected (N, {len(GENRES)}) multi-hot"
                )
            if genres_ds.shape[0] != total:
                raise DataFileError(
                    f"{path}: genres has {genres_ds.shape[0]} rows, but the split sizes {sizes} need {total}; "
                    "set data.options.split_sizes for another release"
                )
            genres = check_array(genres_ds[()], f"{path}: genres", 2, "(N, 23) multi-hot")
            features = []
            for name in chosen:
                key = MMIMDB_MODALITIES[name]
                ds = _read(handle, key, path)
                width = 4096 if key == "vgg_features" else 300
                if ds.ndim != 2 or ds.shape[0] != total:
                    raise DataFileError(
                        f"{path}: {key} has shape {ds.shape}, expected ({total}, {width}) float"
                    )
                features.append(
                    np.nan_to_num(
                        check_array(ds[()], f"{path}: {key}", 2, f"(N, {width})").astype(np.float32)
                    )
                )
    except OSError as e:
        raise DataFileError(
            f"cannot read {path}: truncated or damaged HDF5 file ({e}); expected {_EXPECTED}"
        ) from None
    if standardize:
        for x in features:
            train = x[: sizes[0]].astype(np.float64)
            std = train.std(axis=0)
            x -= train.mean(axis=0).astype(np.float32)
            x /= np.where(std > 0, std, 1.0).astype(np.float32)
    labels = torch.from_numpy((genres > 0).astype(np.float32))
    inputs = [torch.from_numpy(x) for x in features]
    specs = [
        ModalitySpec(name, "vector", (int(x.shape[1]),)) for name, x in zip(chosen, features, strict=True)
    ]
    bounds = np.cumsum([0, *sizes])

    def part(k: int) -> ArrayDataset:
        rows = slice(int(bounds[k]), int(bounds[k + 1]))
        return ArrayDataset(
            [x[rows] for x in inputs], specs, labels[rows], task_names=list(GENRES), task_type="multilabel"
        )

    return DataSplits(train=part(0), test=part(2), val=part(1))


# ------------------------------------------------------------------------------------ JSON + JPEG release
_SPLIT_KEYS = {"train": "train", "val": "dev", "test": "test"}
_FILM = "a JSON object with plot (a list of strings) and genres (a list of strings)"


def _read_json(path: Path, expected: str) -> Any:
    """The JSON document of ``path``, or a one-line DataFileError naming it and ``expected``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path} not found: expected {expected}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataFileError(f"cannot read {path}: truncated or not JSON ({e}); expected {expected}") from None


def _strings(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFileError(f"{where}: {what} is a {type(value).__name__}, expected a list of strings")
    return value


def _film(folder: Path, film: str) -> tuple[str, list[float]]:
    """The plot and the multi-hot genres (23,) of one film."""
    path = folder / f"{film}.json"
    doc = _read_json(path, _FILM)
    plots = _strings(require_key(doc, "plot", str(path), _FILM), str(path), "plot")
    names = {g.lower() for g in _strings(require_key(doc, "genres", str(path), _FILM), str(path), "genres")}
    return (plots[0] if plots else ""), [1.0 if g in names else 0.0 for g in GENRES]


def load_mmimdb_raw(
    root: str | None,
    modalities: Sequence[str] | None = None,
    image_size: int = 128,
    max_length: int = 128,
    vocab_size: int = 20_000,
    min_count: int = 2,
    tokenizer: str | None = None,
    num_workers: int = 2,
) -> DataSplits:
    """MM-IMDb's JSON + JPEG release with its published split (module docstring).

    Args:
        root: the folder holding ``split.json`` and ``dataset/``.
        modalities: names among ``image`` (the poster, (3, S, S) uint8, read from disk per batch) and ``text``
            (the plot, (T,) token ids with a padding mask), in this order (default: both).
        image_size: S: posters are resized (shorter side) and centre-cropped to S × S pixels.
        max_length: T: tokens per plot (longer plots are cut).
        vocab_size, min_count: the word vocabulary built from the train plots (ids 0 = padding, 1 = unknown;
            the model's ``vocab_size`` must be at least this).
        tokenizer: a local Hugging Face tokenizer folder used instead of the word vocabulary.
        num_workers: DataLoader worker processes that decode the training posters.

    Returns:
        ``DataSplits(train, val=dev, test=test)``; labels (N, 23) float multi-hot in the order of
        :data:`GENRES`, task ``multilabel`` (weighted and macro F1); ``ids``: the film ids.

    Raises:
        ConfigError: bad options; ``root`` not set.
        DataFileError: a missing, truncated or malformed file.
    """
    split_file = resolve_file(root, "split.json", "mm-imdb-raw")
    base = split_file.parent
    folder = base / "dataset"
    expected = "a JSON object with train, dev and test lists of film ids"
    index = _read_json(split_file, expected)
    parts: dict[str, ImageTextSplit] = {}
    for split, key in _SPLIT_KEYS.items():
        ids = require_key(index, key, str(split_file), expected)
        if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids) or not ids:
            raise DataFileError(
                f"{split_file}: {key} is not a non-empty list of film ids; expected {expected}"
            )
        films = [str(i) for i in ids]
        texts, labels = zip(*(_film(folder, f) for f in films), strict=True)
        images = [folder / f"{f}.jpeg" for f in films]
        missing = next((p for p in images if not p.is_file()), None)
        if missing is not None:
            raise DataFileError(
                f"{missing} not found: {split_file} lists the film, expected its poster there"
            )
        parts[split] = ImageTextSplit(
            list(films), images, list(texts), torch.tensor(np.array(labels, dtype=np.float32))
        )
    return image_text_splits(
        parts, modalities, GENRES, "multilabel", image_size, max_length, vocab_size, min_count, tokenizer,
        num_workers,
    )  # fmt: skip
