"""CoMM: contrastive multimodal learning (Dufumier, Castillo-Navarro, Tuia, Thiran, ICLR 2025)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from commlearn.config import OptimConfig
from commlearn.data.base import MultimodalBatch
from commlearn.losses.base import LossOutput
from commlearn.losses.comm import CoMMLoss
from commlearn.methods.base import FusionMethod, concat_views
from commlearn.nn.fusion import MMFusion


class CoMM(FusionMethod):
    """CoMM: align the fused embedding of two augmented views, and each single-modality embedding with them.

    One step: ``t', t''`` → views; both views go through the encoders in one batched pass (2B); the fusion
    gives the n+1 embeddings per view (each modality alone, then all); the head projects each; the
    :class:`~commlearn.losses.CoMMLoss` is applied. Probe features are the fused Z (before the head).

    Args:
        model: the multimodal encoder.
        head: projection head applied to every embedding.
        augment: two-view multimodal augmentation.
        optim: optimiser settings.
        temperature: τ of the loss.
        loss_weights: optional n+1 weights of the loss terms (masked terms in modality order, then the full
            term): ``[0, …, 0, 1]`` keeps only the full-view term L, ``[1, …, 1, 0]`` only the
            single-modality terms Σ L_i (the paper's loss ablation, Fig. 6).
    """

    def __init__(
        self,
        model: MMFusion,
        head: nn.Module,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        temperature: float = 0.1,
        loss_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(augment, optim)
        self.model = model
        self.head = head
        self.loss_fn = CoMMLoss(temperature, loss_weights)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        b = batch.batch_size
        v1, v2 = self.views(batch)
        xs, pads = concat_views(v1, v2, batch.padding)
        embeddings = self.model.forward_all_masks(xs, pads)  # n+1 × (2B, D)
        return self.loss_fn.compute(*self.project_views(embeddings, b))
