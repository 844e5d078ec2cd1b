"""CMC (Tian et al., "Contrastive Multiview Coding", ECCV 2020) with modalities as views, full graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from commlearn.data.base import MultimodalBatch
from commlearn.losses.cmc import CMCLoss
from commlearn.losses.comm import LossOutput
from commlearn.methods.cross import UnimodalEncoders, _UnimodalMethod


class CMC(_UnimodalMethod):
    """CMC: InfoNCE between every pair of modalities, across the two augmented views (see
    :class:`~commlearn.losses.CMCLoss` for the exact loss and how it differs from Cross).

    Both views go through the encoders in one 2B batch. Probe features: the concatenated unimodal encoder
    outputs.

    Args:
        encoders: one encoder per modality.
        heads: one projection head per modality.
        augment: two-view multimodal augmentation.
        temperature: τ of the loss.
        **kwargs: optimiser settings of :class:`BaseMethod`.
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
        if encoders.n_modalities < 2:
            raise ValueError(f"CMC needs at least 2 modalities, got {encoders.n_modalities}")
        self.loss_fn = CMCLoss(temperature)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        return self.loss_fn.compute(*self.project_views(batch))
