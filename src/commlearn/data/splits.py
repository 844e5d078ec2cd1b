"""The sample sets a data config describes, and row selection on in-memory data sets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from commlearn.data.base import ArrayDataset, MultimodalDataset

__all__ = ["DataSplits", "take_rows"]


@dataclass
class DataSplits:
    """The sample sets a data config describes.

    A published data set fills ``train``, ``val`` and ``test`` from its published split; ``probe_train`` is for
    data sets whose probes are fitted on other samples than the pre-training ones (Trifeature pairs).

    Attributes:
        train: the pre-training samples (the published train split).
        probe_train: the samples linear probes are fitted on (None: ``train``).
        test: the samples probes are scored on (None: the probe command holds out a random share of the
            probe-train samples).
        val: the published validation split (None: none published). Probes may choose their L2 cost on it
            instead of a held-out share of ``probe_train``; pre-training never sees it.
    """

    train: MultimodalDataset
    probe_train: MultimodalDataset | None = None
    test: MultimodalDataset | None = None
    val: MultimodalDataset | None = None


def take_rows(dataset: ArrayDataset, index: Tensor) -> ArrayDataset:
    """A new in-memory data set holding rows ``index`` (K,) int64 (or a (N,) bool mask) of ``dataset``."""
    if index.dtype == torch.bool:
        index = index.nonzero().flatten()
    return ArrayDataset(
        [x[index] for x in dataset.inputs],
        dataset.modality_specs,
        None if dataset.labels is None else dataset.labels[index],
        [None if p is None else p[index] for p in dataset.padding],
        task_names=dataset.task_names,
        task_type=dataset.task_type,
    )
