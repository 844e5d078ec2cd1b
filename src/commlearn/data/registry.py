"""Data set registry: a name (YAML ``data.name``) → a builder returning ``(train, validation-or-None)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from commlearn.data.arrays import load_arrays
from commlearn.data.base import ArrayDataset, MultimodalDataset
from commlearn.data.synthetic import make_synthetic

DatasetBuilder = Callable[..., MultimodalDataset]


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
) -> MultimodalDataset:
    if root is None:
        raise ValueError("data.root must name the .npz file or folder of .npy files for data.name=arrays")
    return load_arrays(root, modalities, labels, padding, task_type)  # type: ignore[arg-type]


def _trifeature(
    root: str | None,
    seed: int,
    preset: str = "cpu",
    biased: bool = False,
    n_pairs: int = 10_000,
    share: str = "shape",
    unique: str = "texture",
    synergy: list[str] | None = None,
) -> MultimodalDataset:
    from commlearn.data.trifeature import RenderSettings
    from commlearn.data.trifeature_pairs import Roles, build_trifeature

    if preset not in ("cpu", "paper"):
        raise ValueError(f"data.options.preset must be 'cpu' or 'paper', got {preset!r}")
    settings = RenderSettings.cpu() if preset == "cpu" else RenderSettings.paper()
    roles = Roles(share, unique, tuple(synergy or ("texture", "color")))  # type: ignore[arg-type]
    data = build_trifeature(settings, seed, roles, n_pairs, 2, 2, cache_dir=root)
    return data.pretrain_biased if biased else data.pretrain_unbiased


DATASETS: dict[str, DatasetBuilder] = {"synthetic": _synthetic, "arrays": _arrays, "trifeature": _trifeature}


def register_dataset(name: str, builder: DatasetBuilder) -> None:
    """Add a data set builder ``builder(root, seed, **options) -> MultimodalDataset``."""
    DATASETS[name] = builder


def build_dataset(name: str, root: str | None, seed: int, options: dict[str, Any]) -> MultimodalDataset:
    """Build data set ``name`` from ``root`` with ``options``.

    Raises:
        ValueError: unknown data set name or option.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    builder = DATASETS[name]
    allowed = [p for p in inspect.signature(builder).parameters if p not in ("root", "seed")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for data set {name!r}; valid options: {allowed}")
    return builder(root, seed, **options)


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


__all__ = ["DATASETS", "ArrayDataset", "Subset", "build_dataset", "register_dataset", "split_dataset"]
