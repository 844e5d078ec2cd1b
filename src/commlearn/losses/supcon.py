"""Multi-view supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn import dist
from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.info_nce import check_embeddings


class SupConLoss(ContrastiveLoss):
    """SupCon ``L^sup_out`` over V views of B labelled samples.

    The V·B embeddings are L2-normalised. For every anchor ``a`` (view v of sample i),
    ``A(a)`` = all other V·B − 1 embeddings and ``P(a) = {p ∈ A(a): y_p = y_i}`` — the other views of sample i
    and every view of the other samples with the same label. Then

    ``ℓ(a) = −1/|P(a)| Σ_{p ∈ P(a)} log [ exp(z_a·z_p/τ) / Σ_{b ∈ A(a)} exp(z_a·z_b/τ) ]``

    and the loss is the mean of ``ℓ(a)`` over the anchors with ``|P(a)| > 0`` (an anchor without any positive
    — possible only with V = 1 — is left out; if no anchor has a positive the loss is 0). This is Eq. 2 of
    the paper with ``base_temperature = τ`` (no extra ``τ / τ_base`` factor).

    Under ``torch.distributed`` the contrast set is gathered from every rank (with gradient) and each rank
    scores its own anchors; it divides their sum by the number of anchors with a positive on every rank (times
    W), so that the mean over ranks is the single-process loss on the global batch (``commlearn.dist``).

    Args:
        temperature: τ > 0.
    """

    def compute(self, views: Sequence[Tensor], labels: Tensor) -> LossOutput:
        """The loss, the share of anchors with a positive, and the top-1 neighbour label accuracy.

        Args:
            views: V ≥ 1 embeddings (B, d) of the same B samples (augmentations and/or modalities).
            labels: (B,) integer class labels.
        """
        if len(views) < 1:
            raise ValueError("SupCon needs at least one view, got none")
        for v in views:
            check_embeddings(views[0], v, "SupCon views")
        b = views[0].shape[0]
        if labels.ndim != 1 or labels.shape[0] != b:
            raise ValueError(f"labels must be (batch,) = ({b},), got shape {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
        n_views = len(views)
        local = F.normalize(torch.stack(list(views), dim=1), dim=-1)  # (B, V, d)
        glob = dist.gather_with_grad(local)  # (B_g, V, d)
        y_glob = dist.gather_with_grad(labels)
        anchors = local.reshape(b * n_views, -1)  # row b·V + v
        contrast = glob.reshape(glob.shape[0] * n_views, -1)
        y_anchor = labels.repeat_interleave(n_views)
        y_contrast = y_glob.repeat_interleave(n_views)
        rows = torch.arange(b * n_views, device=anchors.device)
        self_mask = torch.zeros(b * n_views, contrast.shape[0], dtype=torch.bool, device=anchors.device)
        self_mask[rows, dist.global_rows(b * n_views, anchors.device)] = True
        logits = (anchors @ contrast.T / self.temperature).masked_fill(self_mask, float("-inf"))
        positives = (y_anchor[:, None] == y_contrast[None, :]) & ~self_mask
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        n_pos = positives.sum(dim=1)
        has_pos = n_pos > 0
        pos_sum = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
        per_anchor = -pos_sum / n_pos.clamp_min(1)  # 0 for an anchor without a positive
        # the mean over the anchors of every rank that have a positive (0 when none has): this rank's sum over
        # the global count, times W, so that the mean over ranks is that mean
        n_with = dist.sum_over_ranks(has_pos.sum()).clamp_min(1).to(anchors.dtype)
        loss = per_anchor.sum() * (dist.world_size() / n_with)
        with torch.no_grad():
            nearest = logits.argmax(dim=1)
            accuracy = (y_contrast[nearest] == y_anchor).float().mean()
            share = has_pos.float().mean()
        return LossOutput(
            loss=loss, terms={"supcon": loss.detach(), "with_positive": share}, accuracies={"knn1": accuracy}
        )
