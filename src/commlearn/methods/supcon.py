"""SupCon (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020) on unimodal encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from commlearn.data.base import MultimodalBatch
from commlearn.losses.comm import LossOutput
from commlearn.losses.supcon import SupConLoss
from commlearn.methods.cross import UnimodalEncoders, _UnimodalMethod
from commlearn.methods.supervised import select_targets


class SupCon(_UnimodalMethod):
    """SupCon with 2n views per sample: the two augmented views of each of the n modalities.

    Every modality has its own encoder and projection head; the 2n projected embeddings of a sample are
    positives of each other and of every embedding of a same-label sample
    (:class:`~commlearn.losses.SupConLoss`). With n = 2 and no augmentation this is FactorCL's SupCon
    baseline (modalities as views). Probe features: the concatenated unimodal encoder outputs.

    Args:
        encoders: one encoder per modality.
        heads: one projection head per modality (equal output widths).
        label_column: the multiclass label column to use.
        augment: two-view multimodal augmentation.
        temperature: τ of the loss.
        **kwargs: optimiser settings of :class:`BaseMethod`.
    """

    def __init__(
        self,
        encoders: UnimodalEncoders,
        heads: Sequence[nn.Module],
        label_column: int = 0,
        augment: nn.Module | None = None,
        temperature: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoders, heads, augment, **kwargs)
        self.label_column = label_column
        self.loss_fn = SupConLoss(temperature)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        labels = select_targets(batch.labels, "multiclass", self.label_column, "supcon")
        z1, z2 = self.project_views(batch)
        return self.loss_fn.compute(z1 + z2, labels)
