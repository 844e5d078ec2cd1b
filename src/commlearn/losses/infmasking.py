"""The InfMasking objective (Wen et al., "InfMasking: Unleashing Synergistic Information by Contrastive
Multimodal Interactions", NeurIPS 2025, arXiv:2509.25270).

InfMasking keeps CoMM's n+1 NCE terms and adds, for each augmented view, one term that aligns the unmasked
fused embedding with the fused embeddings of T random token masks. Per anchor ``i`` of a view, with
L2-normalised anchor ``q_i`` and masked embeddings ``k_{t,i}`` (t = 1..T):

* ``μ_i = mean_t k_{t,i}`` and ``Σ_i = mean_t (k_{t,i} − μ_i)(k_{t,i} − μ_i)ᵀ`` (biased, 1/T);
* ``λ_e = λ · (e + 1) / E`` at epoch ``e`` (0-based) of ``E`` (a linear ramp of the variance weight);
* ``s⁺_i = q_iᵀμ_i / τ + λ_e q_iᵀΣ_i q_i / (2τ²)``;
* negatives ``N_i``: ``q_iᵀk_{t,j} / τ`` for every t and every j ≠ i, and ``q_iᵀq_j / τ`` for j ≠ i;
* ``ℓ_i = −q_iᵀμ_i / τ + log(exp(s⁺_i) + Σ_{n ∈ N_i} exp(n))``; the term is the mean of ``ℓ_i``.

``ℓ_i`` is the closed-form (Jensen) upper bound of the expected InfoNCE loss over infinitely many masked views
when the masked embedding is modelled as ``k ~ N(μ_i, λ_e Σ_i)``, using
``E[exp(qᵀk/τ)] = exp(qᵀμ/τ + qᵀ(λ_e Σ)q / (2τ²))``. See ``docs/infmasking.md``.

The total over n modalities is the mean of n+3 weighted terms, in this order:
``[inf_v1, inf_v2, nce_m0, ..., nce_m{n-1}, nce_full]`` — the InfMasking terms of views t' and t'', then
CoMM's terms ``½[NCE(z'_k, z''_full) + NCE(z''_k, z'_full)]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn import dist
from commlearn.losses.base import ContrastiveLoss, LossOutput
from commlearn.losses.comm import comm_terms
from commlearn.losses.info_nce import check_embeddings, check_finite, check_temperature

# Slack for n·(1 − r) computed in binary floating point (50 · (1 − 0.8) = 9.999999999999998 must give 10).
_FLOOR_SLACK = 1e-9


def num_kept_tokens(n_tokens: int, mask_ratio: float) -> int:
    """Tokens kept out of ``n_tokens`` at ``mask_ratio``: ``max(1, ⌊n_tokens · (1 − mask_ratio)⌋)``.

    Args:
        n_tokens: sequence length L ≥ 1 of one modality.
        mask_ratio: share r of the tokens to mask, 0 ≤ r < 1.

    Returns:
        The number of kept tokens, in ``1..n_tokens``.

    Raises:
        ValueError: ``n_tokens < 1`` or ``mask_ratio`` outside [0, 1).
    """
    if n_tokens < 1:
        raise ValueError(f"every modality needs at least 1 token, got {n_tokens}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, math.floor(n_tokens * (1.0 - mask_ratio) + _FLOOR_SLACK))


def draw_token_keep_masks(
    n_tokens: Sequence[int],
    batch_size: int,
    mask_ratio: float,
    n_views: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Draw which tokens each masked view keeps, per modality, per sample and per view.

    For modality i, each (view, sample) row keeps exactly ``num_kept_tokens(L_i, mask_ratio)`` tokens (≥ 1),
    chosen uniformly at random without replacement; rows are independent across views, samples and modalities.

    Args:
        n_tokens: token counts ``[L_1, ..., L_n]`` of the n modalities, each ≥ 1.
        batch_size: B ≥ 1.
        mask_ratio: share r of each modality's tokens to mask, 0 ≤ r < 1.
        n_views: number T ≥ 1 of masked views to draw.
        generator: optional source of randomness; it must live on ``device``.
        device: where the masks are made; defaults to the generator's device, else the CPU.

    Returns:
        n boolean tensors, the i-th of shape (T, B, L_i), True where the token is kept.

    Raises:
        ValueError: invalid counts, ratio, or a generator on another device.
    """
    if len(n_tokens) == 0:
        raise ValueError("n_tokens must list the token count of at least one modality")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if n_views < 1:
        raise ValueError(f"n_views must be ≥ 1, got {n_views}")
    kept = [num_kept_tokens(int(n), mask_ratio) for n in n_tokens]
    if device is None:
        where = generator.device if generator is not None else torch.device("cpu")
    else:
        where = torch.device(device)
    if generator is not None and generator.device.type != where.type:
        raise ValueError(f"the generator is on {generator.device} but the masks are asked on {where}")
    masks = []
    for length, k in zip(n_tokens, kept, strict=True):
        noise = torch.rand((n_views, batch_size, int(length)), generator=generator, device=where)
        chosen = noise.argsort(dim=-1)[..., :k]
        keep = torch.zeros(noise.shape, dtype=torch.bool, device=where)
        masks.append(keep.scatter_(-1, chosen, True))
    return masks


def infmasking_term(
    anchor: Tensor, masked: Tensor, temperature: float, variance_weight: float
) -> tuple[Tensor, Tensor]:
    """The InfMasking term of one view (module docstring) and its top-1 accuracy.

    Under ``torch.distributed`` the negatives (masked embeddings and anchors of the other samples) are
    gathered from every rank with gradient and each rank computes its own rows, so the mean over ranks is the
    single-process value on the global batch; ``μ_i`` and ``Σ_i`` are per sample and stay local.

    Args:
        anchor: (B, d) unmasked fused embeddings of the view; normalised here.
        masked: (T, B, d) embeddings of T masked fusions of the same view; normalised here.
        temperature: τ > 0.
        variance_weight: ``λ_e ≥ 0``, the weight of ``Σ_i`` (0 drops the variance correction).

    Returns:
        ``(loss, accuracy)``: 0-dim tensors; accuracy (detached) is the fraction of anchors whose
        ``q_iᵀμ_i`` beats every negative (the uncorrected positive, so it does not drift with ``λ_e``).
    """
    if masked.ndim != 3 or masked.shape[1:] != anchor.shape:
        raise ValueError(
            f"masked must be (T, B, d) with (B, d) = {tuple(anchor.shape)}, got {tuple(masked.shape)}"
        )
    if masked.shape[0] < 1:
        raise ValueError("the InfMasking term needs at least one masked view (T ≥ 1)")
    check_embeddings(anchor, masked[0], "anchor and masked embeddings")
    check_finite("masked embeddings", masked)
    check_temperature(temperature)
    if variance_weight < 0:
        raise ValueError(f"variance_weight must be ≥ 0, got {variance_weight}")
    q = F.normalize(anchor, dim=-1)
    k = F.normalize(masked, dim=-1)
    n_local = q.shape[0]
    mean = k.mean(dim=0)  # (B, d): μ_i
    spread = torch.einsum("bd,tbd->tb", q, k - mean)  # q_iᵀ(k_{t,i} − μ_i)
    quad = spread.pow(2).mean(dim=0)  # (B,): q_iᵀ Σ_i q_i without forming Σ_i
    positive = (q * mean).sum(dim=-1) / temperature
    correction = variance_weight * quad / (2.0 * temperature**2)

    q_all = dist.gather_with_grad(q)  # (B_global, d)
    k_all = dist.gather_with_grad(k.transpose(0, 1).contiguous())  # (B_global, T, d)
    rows = torch.arange(n_local, device=q.device)
    own = dist.global_rows(n_local, q.device)
    self_mask = torch.zeros(n_local, q_all.shape[0], dtype=torch.bool, device=q.device)
    self_mask[rows, own] = True
    neg_masked = torch.einsum("bd,jtd->btj", q, k_all) / temperature  # (B, T, B_global)
    neg_masked = neg_masked.masked_fill(self_mask[:, None, :], float("-inf")).flatten(1)
    neg_anchor = (q @ q_all.T / temperature).masked_fill(self_mask, float("-inf"))
    negatives = torch.cat([neg_masked, neg_anchor], dim=1)  # (B, (T + 1) · B_global)

    logits = torch.cat([(positive + correction)[:, None], negatives], dim=1)
    targets = torch.zeros(n_local, dtype=torch.long, device=q.device)
    # CE over [s⁺, N] is −s⁺ + LSE; adding the correction back leaves −q_iᵀμ_i/τ + LSE.
    loss = F.cross_entropy(logits, targets) + correction.mean()
    with torch.no_grad():
        accuracy = (positive > negatives.max(dim=1).values).float().mean()
    return loss, accuracy


def _as_views(masked: Tensor | Sequence[Tensor], name: str) -> Tensor:
    if isinstance(masked, Tensor):
        if masked.ndim != 3:
            raise ValueError(
                f"{name} must be (T, B, d) or a list of T (B, d) tensors, got {tuple(masked.shape)}"
            )
        return masked
    if len(masked) == 0:
        raise ValueError(f"{name} needs at least one masked embedding (T ≥ 1)")
    shapes = {tuple(m.shape) for m in masked}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"{name} must hold (B, d) tensors of one shape, got shapes {sorted(shapes)}")
    return torch.stack(list(masked), dim=0)


class InfMaskingLoss(ContrastiveLoss):
    """InfMasking = CoMM's n+1 NCE terms plus one infinite-masking term per augmented view.

    ``L = 1/(n+3) · Σ_j w_j L_j`` over ``[inf_v1, inf_v2, nce_m0, ..., nce_m{n-1}, nce_full]`` (module
    docstring). As in the paper's code, the weighted terms are *averaged* (divided by n+3, not by ``Σ w``):
    ``weights=[1, 1, 1, 1, 5]`` for n = 2 gives ``(inf_v1 + inf_v2 + nce_m0 + nce_m1 + 5 nce_full) / 5``.

    Args:
        temperature: τ of every term.
        mask_lambda: λ ≥ 0, the final weight of the masked-view covariance; epoch e of E uses
            ``λ (e + 1) / E``.
        weights: optional n+3 non-negative weights in the term order above; None weighs every term 1.
    """

    def __init__(
        self, temperature: float = 0.1, mask_lambda: float = 1.0, weights: Sequence[float] | None = None
    ) -> None:
        super().__init__(temperature)
        if mask_lambda < 0:
            raise ValueError(f"mask_lambda must be ≥ 0, got {mask_lambda}")
        if weights is not None and (len(weights) < 4 or any(w < 0 for w in weights) or sum(weights) <= 0):
            raise ValueError(
                f"weights must be ≥ 4 (n+3) non-negative numbers with a positive sum, got {list(weights)}"
            )
        self.mask_lambda = mask_lambda
        self.weights = None if weights is None else [float(w) for w in weights]

    def variance_weight(self, epoch: int, max_epochs: int) -> float:
        """``λ_e = λ (epoch + 1) / max_epochs`` for the 0-based ``epoch`` of ``max_epochs``."""
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be ≥ 1, got {max_epochs}")
        if not 0 <= epoch < max_epochs:
            raise ValueError(f"epoch must be in 0..{max_epochs - 1} (0-based), got {epoch}")
        return self.mask_lambda * (epoch + 1) / max_epochs

    def compute(
        self,
        z1: Sequence[Tensor],
        z2: Sequence[Tensor],
        masked1: Tensor | Sequence[Tensor],
        masked2: Tensor | Sequence[Tensor],
        *,
        epoch: int,
        max_epochs: int,
    ) -> LossOutput:
        """The loss with its named terms and top-1 SSL accuracies.

        Args:
            z1: n+1 projected embeddings (B, d) of view t': one per single-modality fusion in modality order,
                then the full (all-modality, unmasked) fusion **last**.
            z2: the same for view t''.
            masked1: T projected embeddings of token-masked full fusions of view t', as (T, B, d) or a list of
                T (B, d).
            masked2: the same for view t'' (same T).
            epoch: current 0-based training epoch, for the λ ramp.
            max_epochs: number of training epochs E.

        Returns:
            Terms ``inf_v1, inf_v2, nce_m0.., nce_full`` and accuracies ``inf_v1, inf_v2, m0.., full``.
        """
        if len(z1) != len(z2):
            raise ValueError(f"both views need the same number of embeddings, got {len(z1)} and {len(z2)}")
        if len(z1) < 2:
            raise ValueError(
                f"InfMasking needs n+1 ≥ 2 embeddings per view (masked ones then the full one), got {len(z1)}"
            )
        m1, m2 = _as_views(masked1, "masked1"), _as_views(masked2, "masked2")
        if m1.shape[0] != m2.shape[0]:
            raise ValueError(
                f"both views need the same number T of masked views, got {m1.shape[0]} and {m2.shape[0]}"
            )
        n_terms = len(z1) + 2
        weights = self.weights if self.weights is not None else [1.0] * n_terms
        if len(weights) != n_terms:
            raise ValueError(
                f"InfMaskingLoss has {len(weights)} weights but needs n+3 = {n_terms} "
                f"for {len(z1) - 1} modalities"
            )
        lam = self.variance_weight(epoch, max_epochs)
        full1, full2 = z1[-1], z2[-1]
        parts: list[tuple[str, Tensor, Tensor]] = []
        for v, (full, masked) in enumerate(((full1, m1), (full2, m2)), start=1):
            term, acc = infmasking_term(full, masked, self.temperature, lam)
            parts.append((f"inf_v{v}", term, acc))
        parts += comm_terms(z1, z2, self.temperature)
        loss = torch.zeros((), device=full1.device, dtype=full1.dtype)
        terms: dict[str, Tensor] = {}
        accs: dict[str, Tensor] = {}
        for (name, term, acc), w in zip(parts, weights, strict=True):
            if w > 0:
                loss = loss + w * term
            terms[name if name.startswith("inf") else f"nce_{name}"] = term.detach()
            accs[name] = acc.detach()
        return LossOutput(loss=loss / n_terms, terms=terms, accuracies=accs)
