"""FactorCL and FactorCL-SUP (Liang et al., "Factorized Contrastive Learning", NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.config import TASK_TYPES, ModelConfig, OptimConfig
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.losses.base import LossOutput
from commlearn.losses.factorcl import FactorCLLoss
from commlearn.methods.base import BaseMethod, BuildContext, concat_views
from commlearn.methods.supervised import select_targets
from commlearn.methods.unimodal import UnimodalEncoders, unimodal_encoders
from commlearn.nn.factory import build_head


def _factor_modules(
    specs: Sequence[ModalitySpec], model: ModelConfig
) -> tuple[UnimodalEncoders, list[nn.Module], list[nn.Module]]:
    """Encoders, shared heads and unique heads (one each per modality) of FactorCL."""
    encoders, dims = unimodal_encoders(specs, model)
    return encoders, [build_head(d, model) for d in dims], [build_head(d, model) for d in dims]


class _FactorCLBase(BaseMethod):
    """Encoders and the shared / unique heads of FactorCL; probe features ``[S_1, U_1, ..., S_n, U_n]``."""

    min_modalities = 2

    def __init__(
        self,
        encoders: UnimodalEncoders,
        shared_heads: Sequence[nn.Module],
        unique_heads: Sequence[nn.Module],
        augment: nn.Module | None,
        optim: OptimConfig | None,
    ) -> None:
        super().__init__(augment, optim)
        n = encoders.n_modalities
        if n < self.min_modalities:
            raise ValueError(f"FactorCL needs at least 2 modalities (it factorises pairs), got {n}")
        if len(shared_heads) != n or len(unique_heads) != n:
            raise ValueError(
                f"FactorCL needs one shared and one unique head per modality ({n}), "
                f"got {len(shared_heads)} and {len(unique_heads)}"
            )
        self.encoders = encoders
        self.shared_heads = nn.ModuleList(shared_heads)
        self.unique_heads = nn.ModuleList(unique_heads)

    def factors(
        self, xs: Sequence[Tensor], padding: Sequence[Tensor | None]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Shared and unique embeddings ``([S_i (B, d)], [U_i (B, d)])`` of a batch of inputs."""
        feats = self.encoders(xs, padding)
        shared = [h(f) for h, f in zip(self.shared_heads, feats, strict=True)]
        unique = [h(f) for h, f in zip(self.unique_heads, feats, strict=True)]
        return shared, unique

    def _check_batch(self, batch: MultimodalBatch) -> None:
        if batch.n_modalities != self.encoders.n_modalities:
            raise ValueError(
                f"FactorCL was built for {self.encoders.n_modalities} modalities, the batch has "
                f"{batch.n_modalities}"
            )

    def feature_modalities(self, n_modalities: int) -> list[int]:
        return list(range(min(n_modalities, self.encoders.n_modalities)))

    def embed_modality(self, i: int, x: Tensor, padding: Tensor | None) -> Tensor:
        """``[S_i, U_i]`` (B, 2·d) of modality ``i``."""
        f = self.encoders.forward_one(i, x, padding)
        return torch.cat([self.shared_heads[i](f), self.unique_heads[i](f)], dim=1)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        """``[S_i, U_i]`` of the present modalities, in modality order."""
        return torch.cat([p for p in parts if p is not None], dim=1)


class FactorCL(_FactorCLBase):
    """Self-supervised FactorCL: conditions on, and targets, the second augmented view.

    One step: views ``x = t'(x)``, ``x' = t''(x)`` go through the encoders in one 2B batch; per modality the
    shared head gives ``S_i(x), S_i(x')`` and the unique head ``U_i(x), U_i(x')``. The
    :class:`~commlearn.losses.FactorCLLoss` gets ``S = S(x)``, ``U = U(x)``, shared conditions ``S(x')``,
    unique conditions ``U(x')`` and targets ``U(x')`` — i.e. ``I(X_i; Y) → I(X_i; X_i')`` and
    ``I(X_1; X_2 | Y) → I(X_1; X_2 | X_1', X_2')`` (the paper's Eq. 8). The paper's "optimal multimodal
    augmentation" (augmenting one modality given the other) is not built in: the views come from
    ``augment``.

    Args:
        encoders: one encoder per modality (pooled to vectors).
        shared_heads: per modality, features (B, F_i) → ``S_i`` (B, dim).
        unique_heads: per modality, features (B, F_i) → ``U_i`` (B, dim).
        dim: output width of the heads.
        augment: two-view multimodal augmentation.
        optim: optimiser settings.
        critic_hidden: hidden width of the critics.
        critic_layers: hidden-to-hidden layers of the critics.
    """

    def __init__(
        self,
        encoders: UnimodalEncoders,
        shared_heads: Sequence[nn.Module],
        unique_heads: Sequence[nn.Module],
        dim: int,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        critic_hidden: int = 512,
        critic_layers: int = 1,
    ) -> None:
        super().__init__(encoders, shared_heads, unique_heads, augment, optim)
        self.loss_fn = FactorCLLoss(encoders.n_modalities, dim, dim, dim, critic_hidden, critic_layers)

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> FactorCL:
        return cls(
            *_factor_modules(ctx.specs, ctx.model), ctx.model.head_out, ctx.augment, ctx.optim, **options
        )

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        b = batch.batch_size
        v1, v2 = self.views(batch)
        xs, pads = concat_views(v1, v2, batch.padding)
        shared, unique = self.factors(xs, pads)
        s, s_aug = [t[:b] for t in shared], [t[b:] for t in shared]
        u, u_aug = [t[:b] for t in unique], [t[b:] for t in unique]
        return self.loss_fn.compute(s, u, s_aug, u_aug, u_aug)


class FactorCLSup(_FactorCLBase):
    """FactorCL-SUP: conditions on, and targets, the labels Y.

    Labels are encoded as one-hot vectors (multiclass, column ``label_column``), multi-hot vectors
    (multilabel) or the target values (regression), of width ``label_dim``; they are the conditions of both
    conditional terms and the targets of ``I_NCE(U_i; Y)``. Each step sees one augmented view.

    Args:
        encoders, shared_heads, unique_heads, dim: as for :class:`FactorCL`.
        task_type: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        label_dim: number of classes (multiclass), labels (multilabel) or targets (regression).
        label_column: label column of a multiclass task.
        augment: multimodal augmentation (None: raw inputs).
        optim: optimiser settings.
        critic_hidden, critic_layers: critic size.
    """

    needs_labels = True

    def __init__(
        self,
        encoders: UnimodalEncoders,
        shared_heads: Sequence[nn.Module],
        unique_heads: Sequence[nn.Module],
        dim: int,
        task_type: str,
        label_dim: int,
        label_column: int = 0,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        critic_hidden: int = 512,
        critic_layers: int = 1,
    ) -> None:
        super().__init__(encoders, shared_heads, unique_heads, augment, optim)
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {list(TASK_TYPES)}, got {task_type!r}")
        if label_dim < 1:
            raise ValueError(f"label_dim must be ≥ 1, got {label_dim}")
        self.task_type = task_type
        self.label_dim = label_dim
        self.label_column = label_column
        n = encoders.n_modalities
        self.loss_fn = FactorCLLoss(n, dim, label_dim, label_dim, critic_hidden, critic_layers)

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> FactorCLSup:
        task, modules = ctx.labels, _factor_modules(ctx.specs, ctx.model)
        head_out, label = ctx.model.head_out, (task.task_type, task.n_outputs, task.label_column)
        return cls(*modules, head_out, *label, ctx.augment, ctx.optim, **options)

    def encode_labels(self, labels: Tensor | None) -> Tensor:
        """Labels → (B, label_dim) float: one-hot, multi-hot or values."""
        y = select_targets(labels, self.task_type, self.label_column, "factorcl_sup")
        if self.task_type == "multiclass":
            if bool((y < 0).any()) or bool((y >= self.label_dim).any()):
                raise ValueError(f"class labels must be in 0..{self.label_dim - 1}")
            return F.one_hot(y, self.label_dim).float()
        if y.shape[1] != self.label_dim:
            raise ValueError(f"expected {self.label_dim} label columns, got labels of shape {tuple(y.shape)}")
        return y

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        y = self.encode_labels(batch.labels)
        shared, unique = self.factors(self.one_view(batch), batch.padding)
        ys = [y.to(shared[0].dtype)] * len(shared)
        return self.loss_fn.compute(shared, unique, ys, ys, ys)
