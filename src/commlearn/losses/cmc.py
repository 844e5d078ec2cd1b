"""Contrastive Multiview Coding, full-graph objective (Tian, Krishnan, Isola, "Contrastive Multiview Coding",
ECCV 2020), with modalities as the views."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn import dist
from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.info_nce import check_embeddings, check_temperature


def cross_view_nce(anchor: Tensor, target: Tensor, temperature: float = 0.1) -> tuple[Tensor, Tensor]:
    """One-directional InfoNCE ``L^{anchor→target}``: negatives come from the target view only.

    ``ℓ = mean_k −log [ exp(â_k·t̂_k/τ) / Σ_l exp(â_k·t̂_l/τ) ]`` with ``â, t̂`` L2-normalised — a B-way
    softmax per anchor (no negatives from the anchor's own view). Under ``torch.distributed`` the targets are
    gathered from every rank (with gradient) and each rank takes its own anchors.

    Args:
        anchor: (B, d) embeddings.
        target: (B, d) embeddings of the same samples in another view.
        temperature: τ > 0.

    Returns:
        ``(loss, accuracy)``, 0-dim; accuracy is the share of anchors whose most similar target is their own.
    """
    check_embeddings(anchor, target)
    check_temperature(temperature)
    a = F.normalize(anchor, dim=-1)
    t_all = dist.gather_with_grad(F.normalize(target, dim=-1))
    positives = dist.global_rows(a.shape[0], a.device)
    logits = a @ t_all.T / temperature
    loss = F.cross_entropy(logits, positives)
    with torch.no_grad():
        accuracy = (logits.argmax(dim=1) == positives).float().mean()
    return loss, accuracy


class CMCLoss(ContrastiveLoss):
    """CMC full-graph loss over ``n ≥ 2`` modalities and two augmented views.

    ``L = 1/(n(n−1)) Σ_{i ≠ j} ½ [ L^{z'_i → z''_j} + L^{z''_j → z'_i} ]``

    where ``z'_i`` / ``z''_i`` are the projected unimodal embeddings of modality ``i`` under the augmentations
    ``t'`` / ``t''`` and ``L^{a→b}`` is :func:`cross_view_nce` (a B-way softmax whose negatives are the other
    samples *of the other modality*). Every unordered pair {i, j} contributes two positives per sample:
    ``(z'_i, z''_j)`` and ``(z'_j, z''_i)``. This is the CMC paper's full graph ``Σ_{i<j} L(V_i, V_j)``
    with ``L(V_i, V_j) = L^{V_i,V_j} + L^{V_j,V_i}`` (the symmetric two-view loss, then the "full graph"
    paradigm of its Sec. 3), averaged instead of summed so the scale does not grow with n.

    How it differs from :class:`~commlearn.losses.CrossLoss` (Cross / CLIP in this library): Cross applies the
    NT-Xent of DESIGN §3 — a 2B-way softmax that also uses the other samples *of the anchor's own modality* as
    negatives — to the n modalities of a single augmented view. CMC has no intra-modality negatives, and it
    pairs modality i of one augmentation with modality j of the other (no pair ever shares an augmentation
    draw), using both draws in every step. Neither contrasts two views of the *same* modality (that is
    Cross+Self / SimCLR).

    Args:
        temperature: τ > 0.
    """

    def compute(self, z1: Sequence[Tensor], z2: Sequence[Tensor]) -> LossOutput:
        """The loss with a term and an accuracy per ordered modality pair ``mi_mj`` (i: view t', j: t'').

        Args:
            z1, z2: n unimodal embeddings (B, d) each, of views t' and t''.
        """
        if len(z1) != len(z2):
            raise ValueError(f"both views need the same number of modalities, got {len(z1)} and {len(z2)}")
        n = len(z1)
        if n < 2:
            raise ValueError(f"CMC needs at least 2 modalities, got {n}")
        terms: dict[str, Tensor] = {}
        accs: dict[str, Tensor] = {}
        total = torch.zeros((), device=z1[0].device, dtype=z1[0].dtype)
        n_pairs = n * (n - 1)
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                l_ij, acc_ij = cross_view_nce(z1[i], z2[j], self.temperature)
                l_ji, acc_ji = cross_view_nce(z2[j], z1[i], self.temperature)
                term = 0.5 * (l_ij + l_ji)
                total = total + term / n_pairs
                terms[f"nce_m{i}_m{j}"] = term.detach()
                accs[f"m{i}_m{j}"] = 0.5 * (acc_ij + acc_ji)
        return LossOutput(loss=total, terms=terms, accuracies=accs)
