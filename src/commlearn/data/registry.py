"""Data set registry: a name (YAML ``data.name``) → a builder of the data a config describes.

A builder takes ``(root, seed, **options)``; its keyword arguments are the data set's options (YAML
``data.options``), so they and their defaults are written once, there. It returns a :class:`DataSplits` (or a
single data set, used for everything).

Published data sets (``mosi``, ``mosei``, ``ur-funny``, ``mustard``, ``mimic``, ``vision-touch``, ``mm-imdb``,
``mm-imdb-raw``, ``hateful-memes``) are read from the files ``data.root`` names, with their published split;
nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from commlearn.config import ConfigError, DataConfig, TaskType, check_options
from commlearn.data.base import MultimodalDataset
from commlearn.data.splits import DataSplits
from commlearn.data.synthetic import make_synthetic

DatasetBuilder = Callable[..., "MultimodalDataset | DataSplits"]


def _synthetic(
    root: str | None,
    seed: int,
    n_samples: int = 512,
    kinds: list[str] | None = None,
    dim: int = 16,
    seq_len: int = 12,
    image_size: int = 16,
) -> MultimodalDataset:
    return make_synthetic(n_samples, tuple(kinds or ("vector", "vector")), dim, seq_len, image_size, seed)  # type: ignore[arg-type]


def _arrays(
    root: str | None,
    seed: int,
    modalities: list[str] | None = None,
    labels: str | None = "labels",
    padding: list[str | None] | None = None,
    task_type: str = "multiclass",
    split: str | None = None,
    val: str | None = None,
    test: str | None = None,
    standardize: bool = True,
) -> DataSplits:
    """A user's arrays (see :func:`~commlearn.data.user_arrays.load_user_arrays`): ``split`` names an entry of
    train/val/test (or 0/1/2) per row, or ``val``/``test`` name separate files; ``standardize`` scales float
    vector modalities with the training rows' statistics."""
    if root is None:
        raise ConfigError("data.root must name the .npz file or folder of .npy files for data.name=arrays")
    if task_type not in ("multiclass", "multilabel", "regression"):
        raise ConfigError(
            f"data.options.task_type must be multiclass, multilabel or regression, got {task_type!r}"
        )
    from commlearn.data.user_arrays import load_user_arrays

    task: TaskType = task_type  # type: ignore[assignment]
    return load_user_arrays(root, modalities, labels, padding, task, split, val, test, standardize)


def _trifeature(
    root: str | None,
    seed: int,
    render: dict[str, Any] | None = None,
    biased: bool = False,
    n_pairs: int = 10_000,
    n_probe_train_pairs: int = 6_000,
    n_probe_test_pairs: int | None = None,
    share: str = "shape",
    unique: str = "texture",
    synergy: list[str] | None = None,
) -> DataSplits:
    """Bimodal Trifeature (``root``: the image cache folder). ``render``: :class:`RenderSettings` fields;
    ``biased``: pre-train on pairs that follow the synergy mapping; the probe sets are unbiased."""
    from commlearn.data.trifeature import RenderSettings
    from commlearn.data.trifeature_pairs import Roles, build_trifeature

    fields = [f.name for f in dataclasses.fields(RenderSettings)]
    unknown = sorted(set(render or {}) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in data.options.render; valid keys: {fields}")
    roles = Roles(share, unique, tuple(synergy or ("texture", "color")))  # type: ignore[arg-type]
    data = build_trifeature(
        RenderSettings(**(render or {})), seed, roles, n_pairs, n_probe_train_pairs, n_probe_test_pairs, root
    )
    train = data.pretrain_biased if biased else data.pretrain_unbiased
    return DataSplits(train=train, probe_train=data.probe_train, test=data.probe_test)


def _affect(dataset: str) -> DatasetBuilder:
    def build(
        root: str | None, seed: int, modalities: list[str] | None = None, task: str = "binary"
    ) -> DataSplits:
        from commlearn.data.multibench import load_affect

        return load_affect(root, dataset, modalities, task)

    info = {
        "mosi": "mosi_data.pkl",
        "mosei": "mosei_senti_data.pkl",
        "ur-funny": "humor.pkl",
        "mustard": "sarcasm.pkl",
    }
    build.__doc__ = (
        f"{dataset} from MultiBench's {info[dataset]} (``root``: the file or its folder); ``modalities`` among "
        "vision, audio, text; ``task``: binary (label > 0) or, for mosi/mosei, regression."
    )
    return build


def _mimic(
    root: str | None, seed: int, modalities: list[str] | None = None, tasks: list[str] | None = None
) -> DataSplits:
    """MIMIC from MultiBench's ``im.pk``: ``modalities`` among static, vitals; ``tasks`` among mortality and
    icd9_<k> (default icd9_7, mortality)."""
    from commlearn.data.multibench import load_mimic

    return load_mimic(root, modalities, tasks)


def _vision_touch(
    root: str | None,
    seed: int,
    modalities: list[str] | None = None,
    task: str = "ee_yaw_next",
    image_size: int | None = None,
    force_window: int = 32,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Vision&Touch episodes (``root``: the triangle_real_data folder of .h5 files): ``modalities`` among image,
    force, proprio; ``task``: ee_yaw_next (regression) or contact_next (binary)."""
    from commlearn.data.vision_touch import load_vision_touch

    return load_vision_touch(root, modalities, task, image_size, force_window, test_fraction)


def _mmimdb(
    root: str | None,
    seed: int,
    modalities: list[str] | None = None,
    split_sizes: list[int] | None = None,
    standardize: bool = True,
) -> DataSplits:
    """MM-IMDb features from MultiBench's ``multimodal_imdb.hdf5``: ``modalities`` among image (VGG features)
    and text (word2vec features); ``split_sizes``: train/dev/test rows (default: the release's);
    ``standardize``: per-feature scaling with the train rows' statistics."""
    from commlearn.data.mmimdb import MMIMDB_SPLIT_SIZES, load_mmimdb_hdf5

    return load_mmimdb_hdf5(root, modalities, split_sizes or MMIMDB_SPLIT_SIZES, standardize)


def _mmimdb_raw(
    root: str | None,
    seed: int,
    modalities: list[str] | None = None,
    image_size: int = 128,
    max_length: int = 128,
    vocab_size: int = 20_000,
    min_count: int = 2,
    tokenizer: str | None = None,
    num_workers: int = 2,
) -> DataSplits:
    """MM-IMDb's JSON + JPEG release (``root``: the folder of ``split.json`` and ``dataset/``): ``modalities``
    among image (the poster, decoded per batch at ``image_size`` px by ``num_workers`` DataLoader workers) and
    text (the plot as ``max_length`` token ids of a word vocabulary of ``vocab_size`` ids built from the train
    plots, words seen ``min_count`` times; or of the local Hugging Face ``tokenizer``). A separate name from
    ``mm-imdb`` (the hdf5 features): the two releases share no option."""
    from commlearn.data.mmimdb import load_mmimdb_raw

    return load_mmimdb_raw(
        root, modalities, image_size, max_length, vocab_size, min_count, tokenizer, num_workers
    )


def _hateful_memes(
    root: str | None,
    seed: int,
    modalities: list[str] | None = None,
    image_size: int = 128,
    max_length: int = 64,
    vocab_size: int = 10_000,
    min_count: int = 1,
    tokenizer: str | None = None,
    num_workers: int = 2,
    val_file: str = "dev_seen.jsonl",
    test_file: str = "test_seen.jsonl",
) -> DataSplits:
    """Hateful Memes (``root``: the folder of ``img/`` and the ``.jsonl`` files): options as ``mm-imdb-raw``'s,
    and ``val_file``/``test_file``, the validation and test files (default: the ``*_seen`` ones)."""
    from commlearn.data.hateful_memes import load_hateful_memes

    return load_hateful_memes(
        root, modalities, image_size, max_length, vocab_size, min_count, tokenizer, num_workers, val_file,
        test_file,
    )  # fmt: skip


def _shards(root: str | None, seed: int, num_workers: int = 2, shuffle_batches: int = 16) -> DataSplits:
    """WebDataset tar shards written by ``commlearn shards`` (``root``: their folder), streamed while training:
    ``num_workers`` DataLoader workers per process read them; each epoch visits the shards in a new order and
    every process shuffles ``shuffle_batches`` batches' worth of samples at a time."""
    if root is None:
        raise ConfigError("data.root must name the folder written by `commlearn shards` for data.name=shards")
    from commlearn.data.shards import shard_splits

    return shard_splits(root, num_workers, shuffle_batches)


DATASETS: dict[str, DatasetBuilder] = {
    "synthetic": _synthetic,
    "arrays": _arrays,
    "trifeature": _trifeature,
    **{name: _affect(name) for name in ("mosi", "mosei", "ur-funny", "mustard")},
    "mimic": _mimic,
    "vision-touch": _vision_touch,
    "mm-imdb": _mmimdb,
    "mm-imdb-raw": _mmimdb_raw,
    "hateful-memes": _hateful_memes,
    "shards": _shards,
}


def register_dataset(name: str, builder: DatasetBuilder) -> None:
    """Add a data set builder ``builder(root, seed, **options) -> MultimodalDataset | DataSplits``."""
    DATASETS[name] = builder


def build_data(cfg: DataConfig, seed: int) -> DataSplits:
    """The data ``cfg`` describes, for the run seed ``seed``.

    Raises:
        ConfigError: unknown data set name or option.
        ValueError: unreadable or inconsistent data.
    """
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown data set {cfg.name!r}; choose one of {sorted(DATASETS)}")
    builder = DATASETS[cfg.name]
    check_options(builder, cfg.options, f"data set {cfg.name!r}", skip=("root", "seed"))
    built = builder(cfg.root, seed, **cfg.options)
    return built if isinstance(built, DataSplits) else DataSplits(train=built)


class Subset:
    """Rows ``index`` of a batch-indexed data set (itself batch-indexed)."""

    def __init__(self, dataset: MultimodalDataset, index: torch.Tensor) -> None:
        self.dataset = dataset
        self.index = index
        self.modality_specs = dataset.modality_specs
        self.task_names = dataset.task_names
        self.task_type = dataset.task_type

    def __len__(self) -> int:
        return int(self.index.numel())

    def get_batch(self, index: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.dataset.get_batch(self.index[index])


def split_dataset(
    dataset: MultimodalDataset, fraction: float, seed: int
) -> tuple[MultimodalDataset, MultimodalDataset | None]:
    """Hold out a random ``fraction`` of ``dataset`` → ``(train, held_out or None)``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return dataset, None
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    n_val = max(2, int(round(fraction * len(dataset))))
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])


__all__ = ["DATASETS", "DataSplits", "Subset", "build_data", "register_dataset", "split_dataset"]
