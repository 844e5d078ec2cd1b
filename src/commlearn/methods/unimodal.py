"""Baselines on one encoder per modality: Cross (CLIP), Cross+Self (SLIP-like), CMC, SupCon and SimCLR.

They share the encoders of CoMM (pooled to a vector per modality), one projection head per modality, and
their probe features: the concatenated unimodal encoder outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from commlearn.config import ModelConfig, OptimConfig, keyword_options
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.cmc import CMCLoss
from commlearn.losses.cross import CrossLoss, CrossSelfLoss
from commlearn.losses.info_nce import check_temperature, nce_with_accuracy
from commlearn.losses.supcon import SupConLoss
from commlearn.methods.base import BaseMethod, BuildContext, concat_views
from commlearn.methods.supervised import select_targets
from commlearn.nn.encoders import pool_features
from commlearn.nn.factory import build_encoders, build_head, feature_dim


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


def unimodal_encoders(
    specs: Sequence[ModalitySpec], model: ModelConfig
) -> tuple[UnimodalEncoders, list[int]]:
    """The default encoder of each modality, pooled by ``model.unimodal_pool``, and each one's feature width."""
    encoders = build_encoders(specs, model)
    dims = [feature_dim(e, s, model.unimodal_pool) for e, s in zip(encoders, specs, strict=True)]
    return UnimodalEncoders(encoders, model.unimodal_pool), dims


def unimodal_modules(
    specs: Sequence[ModalitySpec], model: ModelConfig
) -> tuple[UnimodalEncoders, list[nn.Module]]:
    """:func:`unimodal_encoders` and a projection head for each."""
    encoders, dims = unimodal_encoders(specs, model)
    return encoders, [build_head(d, model) for d in dims]


class UnimodalMethod(BaseMethod):
    """Shared by the baselines on unimodal encoders: encoders, one head per modality, concatenated probe
    features, and a loss ``loss_type(temperature, **loss_options)``. The default :meth:`compute_loss` scores
    the projected embeddings of both augmented views (Cross+Self, CMC); Cross and SupCon override it.

    Args:
        encoders: one encoder per modality.
        heads: one projection head per modality.
        augment: two-view multimodal augmentation (None: the raw inputs).
        optim: optimiser settings.
        temperature: τ of the loss.
        loss_options: further keyword arguments of ``loss_type`` (a subclass's constructor names them).
    """

    loss_type: ClassVar[type[ContrastiveLoss]]

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        temperature: float = 0.1,
        **loss_options: Any,
    ) -> None:
        super().__init__(augment, optim)
        self.loss_fn = self.loss_type(temperature, **loss_options)
        if encoders.n_modalities < self.min_modalities:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_modalities} modalities, "
                f"got {encoders.n_modalities}"
            )
        if len(heads) != encoders.n_modalities:
            raise ValueError(f"got {len(heads)} heads for {encoders.n_modalities} modalities")
        self.encoders = encoders
        self.heads = nn.ModuleList(heads)

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> UnimodalMethod:
        encoders, heads = unimodal_modules(ctx.specs, ctx.model)
        return cls(encoders, heads, ctx.augment, ctx.optim, **options)

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

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        return self.loss_fn.compute(*self.project_views(batch))

    def feature_modalities(self, n_modalities: int) -> list[int]:
        return list(range(min(n_modalities, self.encoders.n_modalities)))

    def embed_modality(self, i: int, x: Tensor, padding: Tensor | None) -> Tensor:
        """Modality ``i``'s pooled encoder features (B, F_i)."""
        return self.encoders.forward_one(i, x, padding)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        """The present modalities' features, concatenated in modality order (B, ΣF_i); a sample that lacks a
        modality (``present`` mask of the batch) has zeros in that modality's F_i columns."""
        return torch.cat([p for p in parts if p is not None], dim=1)


class Cross(UnimodalMethod):
    """Cross (CLIP): align the projected unimodal embeddings of the modalities (all pairs for n > 2), one
    augmented view per step (:class:`~commlearn.losses.CrossLoss`)."""

    min_modalities = 2
    loss_type = CrossLoss

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        return self.loss_fn.compute(self.project(self.one_view(batch), batch.padding))


class CrossSelf(UnimodalMethod):
    """Cross+Self (SLIP-like): Cross on both augmented views plus SimCLR within each modality.

    Args:
        encoders, heads, augment, optim: see :class:`UnimodalMethod`.
        temperature: τ of the loss.
        ssl_scale: weight of the within-modality terms.
    """

    min_modalities = 2
    loss_type = CrossSelfLoss

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        temperature: float = 0.1,
        ssl_scale: float = 1.0,
    ) -> None:
        super().__init__(encoders, heads, augment, optim, temperature=temperature, ssl_scale=ssl_scale)


class CMC(UnimodalMethod):
    """CMC (Tian et al., "Contrastive Multiview Coding", ECCV 2020) with modalities as views, full graph:
    InfoNCE between every pair of modalities across the two augmented views (see
    :class:`~commlearn.losses.CMCLoss` for the exact loss and how it differs from Cross)."""

    min_modalities = 2
    loss_type = CMCLoss


class SupCon(UnimodalMethod):
    """SupCon (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020) with 2n views per sample: the
    two augmented views of each of the n modalities.

    The 2n projected embeddings of a sample are positives of each other and of every embedding of a
    same-label sample (:class:`~commlearn.losses.SupConLoss`). With n = 2 and no augmentation this is
    FactorCL's SupCon baseline (modalities as views).

    Args:
        encoders, heads (equal output widths), augment, optim: see :class:`UnimodalMethod`.
        label_column: the multiclass label column to use.
        temperature: τ of the loss.
    """

    needs_labels = True
    multiclass_only = True
    loss_type = SupConLoss

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        label_column: int = 0,
        *,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(encoders, heads, augment, optim, temperature=temperature)
        self.label_column = label_column

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> SupCon:
        encoders, heads = unimodal_modules(ctx.specs, ctx.model)
        return cls(encoders, heads, ctx.augment, ctx.optim, ctx.labels.label_column, **options)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        labels = select_targets(batch.labels, "multiclass", self.label_column, "supcon")
        z1, z2 = self.project_views(batch)
        return self.loss_fn.compute(z1 + z2, labels)


class SimCLR(BaseMethod):
    """SimCLR on one modality (Chen et al., ICML 2020): NT-Xent (DESIGN §3) between its two augmented views.

    The other modalities are ignored (they are augmented with the batch, then dropped). Probe features: that
    modality's pooled encoder features.

    Args:
        encoder: the encoder of the chosen modality (a one-modality :class:`UnimodalEncoders`).
        head: projection head features (B, F) → (B, d).
        augment: two-view multimodal augmentation (None: the loss sees identical views).
        optim: optimiser settings.
        modality: index of the modality in the batch.
        temperature: τ of the loss.
    """

    def __init__(
        self,
        encoder: UnimodalEncoders,
        head: nn.Module,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        modality: int = 0,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(augment, optim)
        if encoder.n_modalities != 1:
            raise ValueError(f"SimCLR takes the encoder of one modality, got {encoder.n_modalities}")
        if modality < 0:
            raise ValueError(f"modality must be ≥ 0, got {modality}")
        check_temperature(temperature)
        self.encoder = encoder
        self.head = head
        self.modality = modality
        self.temperature = temperature

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> SimCLR:
        modality = options.get("modality", keyword_options(cls)["modality"])
        if not 0 <= modality < len(ctx.specs):
            raise ValueError(f"simclr option modality must be in 0..{len(ctx.specs) - 1}, got {modality}")
        encoders, heads = unimodal_modules([ctx.specs[modality]], ctx.model)
        return cls(encoders, heads[0], ctx.augment, ctx.optim, **options)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self.feature_modalities(batch.n_modalities)
        m, b = self.modality, batch.batch_size
        v1, v2 = self.views(batch)
        pad = batch.padding[m]
        x = torch.cat([v1[m], v2[m]], dim=0)
        z = self.head(self.encoder.forward_one(0, x, None if pad is None else torch.cat([pad, pad], dim=0)))
        loss, acc = nce_with_accuracy(z[:b], z[b:], self.temperature)
        return LossOutput(loss=loss, terms={f"nce_m{m}": loss.detach()}, accuracies={f"m{m}": acc})

    def feature_modalities(self, n_modalities: int) -> list[int]:
        if self.modality >= n_modalities:
            raise ValueError(f"SimCLR uses modality {self.modality} but the data has {n_modalities}")
        return [self.modality]

    def embed_modality(self, i: int, x: Tensor, padding: Tensor | None) -> Tensor:
        """The pooled encoder features (B, F) of modality ``i`` (only ``i == modality`` is used)."""
        return self.encoder.forward_one(0, x, padding)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        return parts[self.modality]  # type: ignore[no-any-return]
