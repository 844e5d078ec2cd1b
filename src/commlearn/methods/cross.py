"""Cross-modal baselines on unimodal encoders: Cross (CLIP) and Cross+Self (SLIP-like)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from commlearn.data.base import MultimodalBatch
from commlearn.losses.comm import LossOutput
from commlearn.losses.cross import CrossLoss, CrossSelfLoss
from commlearn.methods.base import BaseMethod, concat_views
from commlearn.nn.encoders import pool_features


class UnimodalEncoders(nn.Module):
    """One encoder per modality followed by pooling to a vector (B, F_i).

    Args:
        encoders: one module per modality (same architectures as CoMM's).
        pool: ``"flatten"`` keeps every position of a feature map / sequence (B, C·h·w); ``"mean"`` averages.
    """

    def __init__(self, encoders: Sequence[nn.Module], pool: str = "flatten") -> None:
        super().__init__()
        if pool not in ("flatten", "mean"):
            raise ValueError(f"pool must be 'flatten' or 'mean', got {pool!r}")
        self.encoders = nn.ModuleList(encoders)
        self.pool = pool

    @property
    def n_modalities(self) -> int:
        return len(self.encoders)

    def forward_one(self, i: int, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """Features (B, F_i) of modality ``i``."""
        f = self.encoders[i](x) if padding is None else self.encoders[i](x, padding)
        if self.pool == "flatten" and f.ndim > 2:
            if padding is not None and f.ndim == 3:
                f = f.masked_fill(padding.unsqueeze(-1), 0.0)
            return f.flatten(1)
        return pool_features(f, padding)

    def forward(self, xs: Sequence[Tensor], padding: Sequence[Tensor | None] | None = None) -> list[Tensor]:
        """Per-modality features, a list of (B, F_i)."""
        if len(xs) != self.n_modalities:
            raise ValueError(f"expected {self.n_modalities} modality inputs, got {len(xs)}")
        pads = list(padding) if padding is not None else [None] * len(xs)
        return [self.forward_one(i, x, p) for i, (x, p) in enumerate(zip(xs, pads, strict=True))]


class _UnimodalMethod(BaseMethod):
    """Shared by the unimodal-encoder baselines: encoders, one head per modality, concatenated probe features."""

    def __init__(
        self, encoders: UnimodalEncoders, heads: Sequence[nn.Module], augment: nn.Module | None, **kwargs: Any
    ) -> None:
        super().__init__(augment=augment, **kwargs)
        if len(heads) != encoders.n_modalities:
            raise ValueError(f"got {len(heads)} heads for {encoders.n_modalities} modalities")
        self.encoders = encoders
        self.heads = nn.ModuleList(heads)

    def project(self, xs: Sequence[Tensor], padding: Sequence[Tensor | None]) -> list[Tensor]:
        """Projected unimodal embeddings, a list of (B, head_out)."""
        return [h(f) for h, f in zip(self.heads, self.encoders(xs, padding), strict=True)]

    def project_views(self, batch: MultimodalBatch) -> tuple[list[Tensor], list[Tensor]]:
        """Projected unimodal embeddings of both augmented views, one encoder pass on the 2B batch.

        Returns:
            ``(z1, z2)``: n embeddings (B, head_out) each, of views t' and t''.
        """
        b = batch.batch_size
        v1, v2 = self.views(batch)
        z = self.project(*concat_views(v1, v2, batch.padding))
        return [t[:b] for t in z], [t[b:] for t in z]

    def embed(self, batch: MultimodalBatch) -> Tensor:
        return torch.cat(self.encoders(batch.inputs, batch.padding), dim=1)

    def part_modalities(self, n_modalities: int) -> list[int] | None:
        return list(range(n_modalities)) if n_modalities == self.encoders.n_modalities else None

    def embed_part(self, i: int, x: Tensor, padding: Tensor | None) -> Tensor:
        """Modality ``i``'s pooled encoder features (B, F_i)."""
        return self.encoders.forward_one(i, x, padding)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        return torch.cat(list(parts), dim=1)


class Cross(_UnimodalMethod):
    """Cross (CLIP): align the projected unimodal embeddings of the modalities (all pairs for n > 2).

    One augmented view per step. Probe features: the concatenated unimodal encoder outputs.
    """

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        augment: nn.Module | None = None,
        temperature: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoders, heads, augment, **kwargs)
        self.loss_fn = CrossLoss(temperature)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        return self.loss_fn.compute(self.project(self.one_view(batch), batch.padding))


class CrossSelf(_UnimodalMethod):
    """Cross+Self (SLIP-like): Cross on both augmented views plus SimCLR within each modality."""

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        augment: nn.Module | None = None,
        temperature: float = 0.1,
        ssl_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoders, heads, augment, **kwargs)
        self.loss_fn = CrossSelfLoss(temperature, ssl_scale)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        return self.loss_fn.compute(*self.project_views(batch))
