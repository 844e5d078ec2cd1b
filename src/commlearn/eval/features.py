"""Features of a whole data set from a trained method, each distinct input encoded once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from commlearn.data.base import MultimodalDataset, SharedSourceDataset
from commlearn.methods.base import BaseMethod


def _cat_parts(chunks: Sequence[Any]) -> Any:
    """Concatenate batch-first parts (tensors, None or tuples of them) along the batch axis."""
    first = chunks[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return torch.cat(list(chunks))
    return tuple(_cat_parts([c[k] for c in chunks]) for k in range(len(first)))


def _take_parts(part: Any, index: Tensor) -> Any:
    """Rows ``index`` of a batch-first part (a tensor, None or a tuple of them)."""
    if part is None:
        return None
    if isinstance(part, Tensor):
        return part[index]
    return tuple(_take_parts(p, index) for p in part)


@torch.no_grad()
def extract_features(
    method: BaseMethod,
    dataset: MultimodalDataset,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    modalities: Sequence[int] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Probe features of a whole data set, in order, in eval mode (:meth:`BaseMethod.embed` of every batch).

    For a :class:`~commlearn.data.base.SharedSourceDataset` (many samples reusing the same inputs, as
    Trifeature pairs reuse images), each distinct source row that some sample uses goes through the method's
    :meth:`~BaseMethod.embed_modality` once and only :meth:`~BaseMethod.embed_joint` runs per sample. Both
    paths give the same features (up to float rounding).

    Args:
        method: a trained method.
        dataset: the samples.
        batch_size: samples (or source rows) per forward pass.
        device: where to compute (default: the method's device).
        modalities: modalities to use, the others treated as missing (default: all the method uses).

    Returns:
        ``(features (N, F) float32 on CPU, labels (N,) / (N, K) or None)``.
    """
    chosen = method.check_modalities(len(dataset.modality_specs), modalities)
    was_training = method.training
    method.eval()
    dev = torch.device(device) if device is not None else next(method.parameters()).device
    try:
        if isinstance(dataset, SharedSourceDataset):
            return _extract_shared(method, dataset, chosen, batch_size, dev)
        feats: list[Tensor] = []
        labels: list[Tensor] = []
        for start in range(0, len(dataset), batch_size):
            index = torch.arange(start, min(start + batch_size, len(dataset)))
            batch = dataset.get_batch(index).to(dev)
            feats.append(method.embed(batch, chosen).float().cpu())
            if batch.labels is not None:
                labels.append(batch.labels.cpu())
        return torch.cat(feats), (torch.cat(labels) if labels else None)
    finally:
        method.train(was_training)


def _extract_shared(
    method: BaseMethod,
    dataset: SharedSourceDataset,
    modalities: list[int],
    batch_size: int,
    dev: torch.device,
) -> tuple[Tensor, Tensor | None]:
    """:func:`extract_features` of a shared-source data set: parts of each used source row once (kept on
    ``dev``, (U_i, ...)), then the joint stage on parts gathered per batch of samples."""
    sources = dataset.modality_sources()
    parts: list[Any] = [None] * len(sources)
    rows: list[Tensor | None] = [None] * len(sources)  # per modality: (N,) row of each sample in parts[i]
    for i in modalities:
        source, index = sources[i]
        used, inverse = torch.unique(index.to(source.device), return_inverse=True)
        chunks = [
            method.embed_modality(i, source[used[s : s + batch_size]].to(dev), None)
            for s in range(0, len(used), batch_size)
        ]
        parts[i] = _cat_parts(chunks)
        rows[i] = inverse.to(dev)
    feats: list[Tensor] = []
    for start in range(0, len(dataset), batch_size):
        index = torch.arange(start, min(start + batch_size, len(dataset)), device=dev)
        batch_parts = [
            None if r is None else _take_parts(p, r[index]) for p, r in zip(parts, rows, strict=True)
        ]
        feats.append(method.embed_joint(batch_parts).float().cpu())
    labels = dataset.labels
    return torch.cat(feats), (None if labels is None else labels.to("cpu", copy=True))
