"""The CoMM objective (Dufumier et al., "What to align in multimodal contrastive learning?", ICLR 2025)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.info_nce import nce_with_accuracy


def comm_terms(
    z1: Sequence[Tensor], z2: Sequence[Tensor], temperature: float
) -> list[tuple[str, Tensor, Tensor]]:
    """CoMM's n+1 terms ``½ [NCE(z'_k, z''_full) + NCE(z''_k, z'_full)]`` with their top-1 accuracies.

    Args:
        z1: n+1 embeddings (B, d) of view t': one per single-modality mask, the full one **last**.
        z2: the same for view t''.
        temperature: τ > 0.

    Returns:
        ``[(name, term, accuracy)]`` for ``m0 .. m{n-1}, full``; terms keep their gradient.
    """
    full1, full2 = z1[-1], z2[-1]
    n = len(z1) - 1
    out = []
    for k, (a1, a2) in enumerate(zip(z1, z2, strict=True)):
        l12, acc12 = nce_with_accuracy(a1, full2, temperature)
        if k == n:  # NCE is symmetric: NCE(z''_full, z'_full) equals NCE(z'_full, z''_full)
            out.append(("full", l12, acc12))
        else:
            l21, acc21 = nce_with_accuracy(a2, full1, temperature)
            out.append((f"m{k}", 0.5 * (l12 + l21), 0.5 * (acc12 + acc21)))
    return out


class CoMMLoss(ContrastiveLoss):
    """CoMM loss over ``n`` modalities (DESIGN §3).

    ``L = Σ_k w_k · ½ [NCE(z'_k, z''_full) + NCE(z''_k, z'_full)]`` with ``k = 1..n+1`` and
    ``z_{n+1} = z_full``; the weights default to ``1/(n+1)`` each (the mean). The ``k = n+1`` term aligns the
    two full views (≈ R + S + ΣU); the ``k = i`` terms align modality ``i`` alone with the full views
    (≈ R + U_i).

    Args:
        temperature: τ of every NCE term.
        weights: optional n+1 non-negative weights (masked terms in modality order, the full term last);
            normalised to sum to one.
    """

    def __init__(self, temperature: float = 0.1, weights: Sequence[float] | None = None) -> None:
        super().__init__(temperature)
        if weights is not None and (len(weights) < 2 or any(w < 0 for w in weights) or sum(weights) <= 0):
            raise ValueError(
                f"weights must be ≥ 2 non-negative numbers with a positive sum, got {list(weights)}"
            )
        self.weights = None if weights is None else [float(w) / sum(weights) for w in weights]

    def compute(self, z1: Sequence[Tensor], z2: Sequence[Tensor]) -> LossOutput:
        """The loss with its per-term values and SSL accuracies.

        Args:
            z1: n+1 embeddings (B, d) of view t' — one per single-modality mask in modality order, then the
                full (all-modality) embedding **last**.
            z2: the same for view t''.
        """
        if len(z1) != len(z2):
            raise ValueError(f"both views need the same number of embeddings, got {len(z1)} and {len(z2)}")
        if len(z1) < 2:
            raise ValueError(
                f"CoMM needs n+1 ≥ 2 embeddings per view (masked ones then the full one), got {len(z1)}"
            )
        weights = self.weights if self.weights is not None else [1.0 / len(z1)] * len(z1)
        if len(weights) != len(z1):
            raise ValueError(
                f"CoMMLoss has {len(weights)} weights but got {len(z1)} embeddings per view (n+1)"
            )
        loss = torch.zeros((), device=z1[-1].device, dtype=z1[-1].dtype)
        terms: dict[str, Tensor] = {}
        accs: dict[str, Tensor] = {}
        for (name, term, acc), w in zip(comm_terms(z1, z2, self.temperature), weights, strict=True):
            if w > 0:
                loss = loss + w * term
            terms[f"nce_{name}"] = term.detach()
            accs[name] = acc.detach()
        return LossOutput(loss=loss, terms=terms, accuracies=accs)
