"""Data set registry: a name (YAML ``data.name``) → a builder of the data a config describes.

A builder takes ``(root, seed, **options)``; its keyword arguments are the data set's options (YAML
``data.options``), so they and their defaults are written once, there (a :class:`Loader` entry takes them from
its loader function instead). It returns a :class:`DataSplits` (or a single data set, used for everything).

Published data sets (``mosi``, ``mosei``, ``ur-funny``, ``mustard``, ``mimic``, ``vision-touch``, ``mm-imdb``,
``mm-imdb-raw``, ``hateful-memes``) are read from the files ``data.root`` names, with their published split;
nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from commlearn.config import ConfigError, DataConfig, check_options, keyword_options
from commlearn.data.base import MultimodalDataset
from commlearn.data.hateful_memes import load_hateful_memes
from commlearn.data.mmimdb import load_mmimdb_hdf5, load_mmimdb_raw
from commlearn.data.multibench import AFFECT_DATASETS, load_affect, load_mimic
from commlearn.data.shards import shard_splits
from commlearn.data.splits import DataSplits
from commlearn.data.synthetic import make_synthetic
from commlearn.data.user_arrays import load_user_arrays
from commlearn.data.vision_touch import load_vision_touch

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


@dataclass(frozen=True)
class Loader:
    """A data set read by ``load(root, **fixed, **options)``: the published files (with their published split)
    or a user's arrays, so the run seed is unused. Its options and their defaults are ``load``'s keyword
    arguments, written there once; ``fixed`` are the ones the data set's name sets."""

    load: Callable[..., DataSplits]
    fixed: dict[str, Any] = field(default_factory=dict)

    def __call__(self, root: str | None, seed: int, **options: Any) -> DataSplits:
        return self.load(root, **self.fixed, **options)


DATASETS: dict[str, DatasetBuilder] = {
    "synthetic": _synthetic,
    "arrays": Loader(load_user_arrays),
    "trifeature": _trifeature,
    **{name: Loader(load_affect, {"dataset": name}) for name in AFFECT_DATASETS},
    "mimic": Loader(load_mimic),
    "vision-touch": Loader(load_vision_touch),
    "mm-imdb": Loader(load_mmimdb_hdf5),
    "mm-imdb-raw": Loader(load_mmimdb_raw),
    "hateful-memes": Loader(load_hateful_memes),
    "shards": Loader(shard_splits),
}


def register_dataset(name: str, builder: DatasetBuilder) -> None:
    """Add a data set builder ``builder(root, seed, **options) -> MultimodalDataset | DataSplits``."""
    DATASETS[name] = builder


def _option_source(builder: DatasetBuilder) -> tuple[Callable[..., Any], tuple[str, ...]]:
    """The function whose keyword arguments are ``builder``'s options, and the arguments that are not."""
    if isinstance(builder, Loader):
        return builder.load, ("root", *builder.fixed)
    return builder, ("root", "seed")


def dataset_options(name: str) -> dict[str, Any]:
    """The options (``data.options``) of the registered data set ``name`` and their defaults."""
    function, skip = _option_source(DATASETS[name])
    return keyword_options(function, skip)


def build_data(cfg: DataConfig, seed: int) -> DataSplits:
    """The data ``cfg`` describes, for the run seed ``seed``.

    Raises:
        ConfigError: unknown data set name or option.
        ValueError: unreadable or inconsistent data.
    """
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown data set {cfg.name!r}; choose one of {sorted(DATASETS)}")
    builder = DATASETS[cfg.name]
    function, skip = _option_source(builder)
    check_options(function, cfg.options, f"data set {cfg.name!r}", skip)
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


__all__ = [
    "DATASETS",
    "DataSplits",
    "Loader",
    "Subset",
    "build_data",
    "dataset_options",
    "register_dataset",
    "split_dataset",
]
