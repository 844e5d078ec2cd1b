"""InfMasking (Wen et al., "InfMasking: Unleashing Synergistic Information by Contrastive Multimodal
Interactions", NeurIPS 2025): CoMM plus fused embeddings of randomly token-masked inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from commlearn.config import OptimConfig
from commlearn.data.base import MultimodalBatch
from commlearn.losses.base import LossOutput
from commlearn.losses.infmasking import InfMaskingLoss, draw_token_keep_masks
from commlearn.methods.base import FusionMethod, concat_views
from commlearn.nn.fusion import MMFusion, TokenSeq


class InfMasking(FusionMethod):
    """CoMM's fusion and terms, plus for each augmented view ``n_masked_views`` fusions in which a share
    ``mask_ratio`` of every modality's tokens (per sample) is replaced by a learned mask token; the unmasked
    fused embedding is aligned with them by the InfMasking term (:class:`~commlearn.losses.InfMaskingLoss`).

    One step: both views through the encoders once (2B); the n+1 CoMM fusions; the T masked full fusions of
    both views in ONE fusion call on (T·2B, ΣL_i) tokens; one head for every embedding. Probe features: the
    fused Z, as for CoMM. Defaults: the paper's Trifeature settings (r = 0.7, T = 6, λ = 1, τ = 0.1).

    Args:
        model, head, augment, optim: as for :class:`~commlearn.methods.CoMM`.
        temperature: τ of every term.
        mask_ratio: share r of each modality's tokens masked in a masked view (at least one token is kept).
        n_masked_views: masked fusions T per view.
        mask_lambda: final weight λ of the masked views' covariance (ramped linearly over the epochs).
        loss_weights: optional n+3 weights of ``[inf_v1, inf_v2, nce_m0, …, nce_full]`` (averaged, not
            normalised, as in the paper's code).
    """

    def __init__(
        self,
        model: MMFusion,
        head: nn.Module,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        temperature: float = 0.1,
        mask_ratio: float = 0.7,
        n_masked_views: int = 6,
        mask_lambda: float = 1.0,
        loss_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(augment, optim)
        self.model = model
        self.head = head
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        if n_masked_views < 1:
            raise ValueError(f"n_masked_views must be ≥ 1, got {n_masked_views}")
        self.mask_ratio = mask_ratio
        self.n_masked_views = n_masked_views
        self.mask_token = nn.Parameter(torch.zeros(model.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.loss_fn = InfMaskingLoss(temperature, mask_lambda, loss_weights)

    def masked_fusions(self, tokens: Sequence[TokenSeq]) -> Tensor:
        """Fused embeddings of ``n_masked_views`` random token masks of every sample.

        Args:
            tokens: every modality's ``(tokens (B, L_i, D), padding (B, L_i) or None)``.

        Returns:
            (T, B, D): view t of sample b keeps ``max(1, ⌊L_i (1 − r)⌋)`` random tokens of each modality i and
            has the mask token in the other places (the sequence keeps its length and padding).
        """
        b = tokens[0][0].shape[0]
        t = self.n_masked_views
        keep = draw_token_keep_masks(
            [tok.shape[1] for tok, _ in tokens], b, self.mask_ratio, t, device=tokens[0][0].device
        )
        masked: list[TokenSeq | None] = []
        for (tok, pad), kept in zip(tokens, keep, strict=True):
            seq = torch.where(kept[..., None], tok.unsqueeze(0), self.mask_token.to(tok.dtype))
            flat_pad = None if pad is None else pad.unsqueeze(0).expand(t, -1, -1).reshape(t * b, -1)
            masked.append((seq.reshape(t * b, *tok.shape[1:]), flat_pad))
        fused = self.model.fuse(masked)  # one fusion call on (T·B, ΣL_i, D)
        return fused.view(t, b, -1)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        b = batch.batch_size
        v1, v2 = self.views(batch)
        tokens = self.model.tokenize(*concat_views(v1, v2, batch.padding))
        present = [t for t in tokens if t is not None]
        z1, z2 = self.project_views(self.model.fuse_all_masks(present), b)  # n+1 × (B, d) each
        masked = self.masked_fusions(present)  # (T, 2B, D)
        h = self.head(masked.flatten(0, 1)).view(self.n_masked_views, 2 * b, -1)
        epochs = self.trainer.max_epochs if self._trainer is not None else None
        epoch, total = (self.current_epoch, epochs) if epochs is not None and epochs > 0 else (0, 1)
        return self.loss_fn.compute(z1, z2, h[:, :b], h[:, b:], epoch=min(epoch, total - 1), max_epochs=total)
