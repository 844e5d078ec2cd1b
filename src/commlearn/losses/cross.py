"""Cross-modal alignment baselines: Cross (CLIP) and Cross+Self (SLIP-like), for any n ≥ 2 modalities."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
from torch import Tensor

from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.info_nce import nce_with_accuracy


def cross_modal_terms(zs: Sequence[Tensor], temperature: float) -> LossOutput:
    """Mean symmetric InfoNCE over every pair (i < j) of unimodal embeddings ``zs[i]`` (B, d)."""
    if len(zs) < 2:
        raise ValueError(f"cross-modal alignment needs at least 2 modalities, got {len(zs)}")
    terms: dict[str, Tensor] = {}
    accs: dict[str, Tensor] = {}
    total = torch.zeros((), device=zs[0].device, dtype=zs[0].dtype)
    pairs = list(combinations(range(len(zs)), 2))
    for i, j in pairs:
        loss, acc = nce_with_accuracy(zs[i], zs[j], temperature)
        total = total + loss / len(pairs)
        terms[f"nce_m{i}_m{j}"] = loss.detach()
        accs[f"m{i}_m{j}"] = acc
    return LossOutput(loss=total, terms=terms, accuracies=accs)


class CrossLoss(ContrastiveLoss):
    """CLIP-style cross-modal InfoNCE: mean over all modality pairs of ``NCE(z_i, z_j)``.

    Args:
        temperature: τ > 0.
    """

    def compute(self, zs: Sequence[Tensor]) -> LossOutput:
        """Loss with per-pair terms and accuracies for n unimodal embeddings (B, d) of the same samples."""
        return cross_modal_terms(zs, self.temperature)


class CrossSelfLoss(ContrastiveLoss):
    """Cross+Self (SLIP-like): cross-modal InfoNCE plus within-modality SimCLR terms.

    ``L = ½ [Cross(z') + Cross(z'')] + ssl_scale · ½ Σ_i NCE(z'_i, z''_i)`` where ``z'_i, z''_i`` are the
    unimodal embeddings of modality ``i`` under the two augmentations. (The cross term uses both augmented
    views rather than a third, clean pass: no extra encoder pass per step.)

    Args:
        temperature: τ > 0.
        ssl_scale: weight of the within-modality terms.
    """

    def __init__(self, temperature: float = 0.1, ssl_scale: float = 1.0) -> None:
        super().__init__(temperature)
        if ssl_scale < 0:
            raise ValueError(f"ssl_scale must be ≥ 0, got {ssl_scale}")
        self.ssl_scale = ssl_scale

    def compute(self, z1: Sequence[Tensor], z2: Sequence[Tensor]) -> LossOutput:
        """Loss with its cross and self terms for two views, each n unimodal embeddings (B, d)."""
        if len(z1) != len(z2):
            raise ValueError(f"both views need the same number of modalities, got {len(z1)} and {len(z2)}")
        c1 = cross_modal_terms(z1, self.temperature)
        c2 = cross_modal_terms(z2, self.temperature)
        loss = 0.5 * (c1.loss + c2.loss)
        terms = {"cross": loss.detach()}
        accs = {k: 0.5 * (c1.accuracies[k] + c2.accuracies[k]) for k in c1.accuracies}
        for i, (a, b) in enumerate(zip(z1, z2, strict=True)):
            self_loss, acc = nce_with_accuracy(a, b, self.temperature)
            loss = loss + self.ssl_scale * 0.5 * self_loss
            terms[f"self_m{i}"] = self_loss.detach()
            accs[f"self_m{i}"] = acc
        return LossOutput(loss=loss, terms=terms, accuracies=accs)
