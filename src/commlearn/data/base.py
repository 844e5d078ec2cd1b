"""Core data types: a batch of several modalities, what each modality is, and batch-indexed data sets.

Data sets in commlearn are *batch-indexed*: they hand out a whole batch for a tensor of indices
(``get_batch``), so a training step costs one gather per modality instead of B Python ``__getitem__``
calls and a collate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from commlearn.config import TaskType

ModalityKind = Literal["image", "sequence", "vector", "tokens"]
MODALITY_KINDS: tuple[str, ...] = ("image", "sequence", "vector", "tokens")


@dataclass(frozen=True)
class ModalitySpec:
    """What one modality looks like, without the batch axis.

    Attributes:
        name: human-readable name (``"image"``, ``"audio"``, ``"force"``...).
        kind: ``"image"`` (C, H, W) uint8 or float; ``"sequence"`` (T, d) float with an optional
            padding mask (T,) bool, True = padding; ``"vector"`` (d,) float; ``"tokens"`` (T,) int64 ids.
        shape: the per-sample shape, e.g. ``(3, 64, 64)`` or ``(50, 20)``.
    """

    name: str
    kind: ModalityKind
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality kind must be one of {MODALITY_KINDS}, got {self.kind!r}")
        expected = {"image": 3, "sequence": 2, "vector": 1, "tokens": 1}[self.kind]
        if len(self.shape) != expected:
            raise ValueError(
                f"modality {self.name!r} of kind {self.kind!r} needs a {expected}-d shape, got {self.shape}"
            )


@dataclass
class MultimodalBatch:
    """A batch of ``n`` modalities.

    Attributes:
        inputs: n tensors, each with the batch size B as first axis.
        padding: n entries, each None or a bool tensor (B, T) with True where a sequence is padding.
        labels: None, (B,) or (B, K) — K label columns (several tasks or multi-label targets).
        present: None (every modality of every sample is there) or a bool tensor (B, n), False where sample b
            lacks modality i; that sample's inputs of modality i are placeholders that embeddings ignore.
    """

    inputs: list[Tensor]
    padding: list[Tensor | None] = field(default_factory=list)
    labels: Tensor | None = None
    present: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.padding:
            self.padding = [None] * len(self.inputs)
        if len(self.padding) != len(self.inputs):
            raise ValueError(
                f"padding has {len(self.padding)} entries but there are {len(self.inputs)} modalities"
            )
        if self.present is not None:
            expected = (self.batch_size, self.n_modalities)
            if self.present.dtype != torch.bool or tuple(self.present.shape) != expected:
                raise ValueError(
                    f"present must be a bool {expected} mask (batch, modalities), got "
                    f"{self.present.dtype} {tuple(self.present.shape)}"
                )

    @property
    def n_modalities(self) -> int:
        return len(self.inputs)

    @property
    def batch_size(self) -> int:
        return int(self.inputs[0].shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MultimodalBatch:
        """Move every tensor to ``device``."""
        return MultimodalBatch(
            inputs=[x.to(device, non_blocking=non_blocking) for x in self.inputs],
            padding=[None if p is None else p.to(device, non_blocking=non_blocking) for p in self.padding],
            labels=None if self.labels is None else self.labels.to(device, non_blocking=non_blocking),
            present=None if self.present is None else self.present.to(device, non_blocking=non_blocking),
        )


@runtime_checkable
class MultimodalDataset(Protocol):
    """A data set that returns whole batches.

    Implementations hold (or memory-map) their arrays and gather rows for a tensor of indices.
    ``task_names`` names the label columns (one per task); ``task_type`` is how they are probed. A data set may
    also have an ``ids`` attribute, one id per sample (numbers or strings), which exported embeddings carry
    (:func:`sample_ids`), and batches with a ``present`` mask when some samples lack a modality.
    """

    modality_specs: list[ModalitySpec]
    task_names: list[str]
    task_type: TaskType

    def __len__(self) -> int: ...

    def get_batch(self, index: Tensor) -> MultimodalBatch: ...


@runtime_checkable
class SharedSourceDataset(MultimodalDataset, Protocol):
    """Optional protocol: a data set whose modality inputs are rows gathered from shared sources.

    For data where many samples reuse the same input (e.g. pairs drawn from a fixed set of images), it lets
    :meth:`~commlearn.methods.base.BaseMethod.extract_features` encode each distinct input once instead of
    once per sample. Only data sets without padding and presence masks implement it: every
    ``get_batch(...).padding`` entry and ``get_batch(...).present`` are None.

    Attributes:
        labels: (N,) / (N, K) labels of every sample (``get_batch(idx).labels == labels[idx]``), or None.
    """

    labels: Tensor | None

    def modality_sources(self) -> list[tuple[Tensor, Tensor]]:
        """Per modality i, ``(source_i (U_i, ...), index_i (N,) int64 into source_i)`` such that
        ``get_batch(idx).inputs[i]`` equals ``source_i[index_i[idx]]``. Sources may hold rows no sample uses."""
        ...


class ArrayDataset:
    """A batch-indexed data set over in-memory tensors, one per modality.

    Args:
        inputs: n tensors with equal first axis N.
        specs: n modality specs; inferred from the tensors when omitted (4-d → image, 3-d float →
            sequence, 2-d int → tokens, 2-d float → vector).
        labels: None, (N,) or (N, K).
        padding: optional n entries of None or bool (N, T), True = padding.
        task_names: names of the label columns.
        task_type: how the labels are probed.
        present: optional (N, n) bool, False where sample b lacks modality i (every sample needs at least one
            modality). The inputs of a missing modality are placeholders: any values, NaN included (they are
            stored as zeros).

    Raises:
        ValueError: on mismatched lengths, non-finite values where a modality is present, shapes that disagree
            with ``specs``, or a presence mask of the wrong shape or with a sample lacking every modality.
    """

    def __init__(
        self,
        inputs: Sequence[Tensor],
        specs: Sequence[ModalitySpec] | None = None,
        labels: Tensor | None = None,
        padding: Sequence[Tensor | None] | None = None,
        task_names: Sequence[str] | None = None,
        task_type: TaskType = "multiclass",
        present: Tensor | None = None,
    ) -> None:
        if len(inputs) < 1:
            raise ValueError("an ArrayDataset needs at least one modality")
        n = int(inputs[0].shape[0])
        if present is not None:
            _check_present(present, n, len(inputs))
        inputs = list(inputs)
        for i, x in enumerate(inputs):
            if int(x.shape[0]) != n:
                raise ValueError(f"modality {i} has {x.shape[0]} samples but modality 0 has {n}")
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                bad = ~torch.isfinite(x)
                if present is None or bool(bad.flatten(1).any(1)[present[:, i]].any()):
                    where = "" if present is None else " where it is present"
                    raise ValueError(
                        f"modality {i} contains NaN or Inf values{where}; clean or impute them first"
                    )
                inputs[i] = x.masked_fill(bad, 0.0)  # only in samples that lack the modality
        if labels is not None and int(labels.shape[0]) != n:
            raise ValueError(f"labels have {labels.shape[0]} rows but the modalities have {n} samples")
        self.present = present
        self.inputs = inputs
        self.padding: list[Tensor | None] = list(padding) if padding is not None else [None] * len(inputs)
        if len(self.padding) != len(self.inputs):
            raise ValueError(f"padding has {len(self.padding)} entries for {len(self.inputs)} modalities")
        self.labels = labels
        self.modality_specs = (
            list(specs) if specs is not None else [infer_spec(x, i) for i, x in enumerate(inputs)]
        )
        if len(self.modality_specs) != len(self.inputs):
            raise ValueError(f"{len(self.modality_specs)} specs given for {len(self.inputs)} modalities")
        for spec, x in zip(self.modality_specs, self.inputs, strict=True):
            if tuple(x.shape[1:]) != spec.shape:
                raise ValueError(
                    f"modality {spec.name!r}: spec shape {spec.shape} but data shape {tuple(x.shape[1:])}"
                )
        n_tasks = 0 if labels is None else (1 if labels.ndim == 1 else int(labels.shape[1]))
        self.task_names = list(task_names) if task_names is not None else [f"task{k}" for k in range(n_tasks)]
        self.task_type: TaskType = task_type

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        """Gather rows ``index`` (B,) int64 of every modality."""
        return MultimodalBatch(
            inputs=[x[index] for x in self.inputs],
            padding=[None if p is None else p[index] for p in self.padding],
            labels=None if self.labels is None else self.labels[index],
            present=None if self.present is None else self.present[index],
        )


def _check_present(present: Tensor, n_samples: int, n_modalities: int) -> None:
    """Raise a one-line ValueError unless ``present`` is a (N, n) bool mask with a modality in every sample."""
    expected = (n_samples, n_modalities)
    if present.dtype != torch.bool or tuple(present.shape) != expected:
        raise ValueError(
            f"the presence mask must be bool {expected} (samples, modalities), got {present.dtype} "
            f"{tuple(present.shape)}"
        )
    empty = (~present).all(dim=1).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"samples {empty[:5].tolist()} ({empty.numel()} in all) have no modality present: leave them out"
        )


def sample_ids(dataset: MultimodalDataset) -> np.ndarray:
    """The id of every sample, (N,): the data set's own ``ids`` (numbers or strings) when it has that
    attribute, else the sample indices 0..N-1.

    Raises:
        ValueError: ``ids`` that are not one per sample.
    """
    n = len(dataset)
    ids = getattr(dataset, "ids", None)
    if ids is None:
        return np.arange(n)
    out = ids.detach().cpu().numpy() if isinstance(ids, Tensor) else np.asarray(ids)
    if out.shape != (n,):
        raise ValueError(f"the data set's ids have shape {out.shape}, expected ({n},): one id per sample")
    return out


def infer_spec(x: Tensor, i: int) -> ModalitySpec:
    """Guess the modality spec of a data tensor ``x`` (N, ...) from its rank and dtype."""
    name = f"m{i}"
    if x.ndim == 4:
        return ModalitySpec(name, "image", tuple(int(s) for s in x.shape[1:]))
    if x.ndim == 3:
        return ModalitySpec(name, "sequence", tuple(int(s) for s in x.shape[1:]))
    if x.ndim == 2:
        kind: ModalityKind = "vector" if x.is_floating_point() else "tokens"
        return ModalitySpec(name, kind, (int(x.shape[1]),))
    raise ValueError(
        f"modality {i} has shape {tuple(x.shape)}: expected (N, C, H, W) images, (N, T, d) sequences "
        "or (N, d) vectors/tokens"
    )
