"""The symmetric NT-Xent (InfoNCE) loss with intra-view negatives (SimCLR; DESIGN §3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn import dist


def check_embeddings(a: Tensor, b: Tensor, name: str = "embeddings") -> None:
    """Validate a pair of embedding batches (B, d) for a contrastive loss.

    Raises:
        ValueError: wrong rank, mismatched shapes, B < 2 or non-finite values (see :func:`check_finite`).
    """
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{name} must be 2-d (batch, dim), got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"{name} must have equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ValueError(f"a contrastive loss needs a batch of at least 2 samples, got {a.shape[0]}")
    check_finite(name, a, b)


def check_finite(name: str, *xs: Tensor) -> None:
    """Raise a one-line ValueError when a tensor of ``xs`` holds NaN or Inf — on a single process only.

    Under ``torch.distributed`` a check on one rank's rows would stop that rank alone while the others wait in
    the next collective; there the values flow on (a gathered NaN makes every rank's loss NaN) and the trainer
    stops every rank together on the non-finite loss.
    """
    if dist.is_distributed():
        return
    if not all(bool(torch.isfinite(x).all()) for x in xs):
        raise ValueError(f"{name} contain NaN or Inf (diverged training? lower the learning rate)")


def check_temperature(temperature: float) -> None:
    """Raise a one-line ValueError unless the temperature τ is > 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def nce_with_accuracy(a: Tensor, b: Tensor, temperature: float = 0.1) -> tuple[Tensor, Tensor]:
    """Symmetric NT-Xent between paired batches plus the top-1 retrieval accuracy.

    For L2-normalised ``a, b`` (B, d) the 2B×2B logits are ``[[a bᵀ, a aᵀ], [b bᵀ, b aᵀ]] / τ`` with the
    self-similarity diagonals of ``a aᵀ`` and ``b bᵀ`` excluded; the loss is the mean over the 2B rows of
    ``−log softmax`` at the positive (row i of the top half: column i of ``a bᵀ``; row i of the bottom half:
    column i of ``b aᵀ``).

    Under ``torch.distributed`` the columns are gathered from every rank (with gradient) and each rank
    computes only its own rows (labels offset by ``rank · B``), so the mean over ranks equals the
    single-process loss on the global batch; memory per rank is O(B_local · B_global).

    Args:
        a: (B, d) embeddings of the first view; normalised here.
        b: (B, d) embeddings of the second view; normalised here.
        temperature: τ > 0.

    Returns:
        ``(loss, accuracy)``: 0-dim tensors; accuracy is the fraction of rows i of ``a bᵀ`` whose
        argmax is i (detached).
    """
    check_embeddings(a, b)
    check_temperature(temperature)
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    a_all = dist.gather_with_grad(a)
    b_all = dist.gather_with_grad(b)
    n_local = a.shape[0]
    rows = torch.arange(n_local, device=a.device)
    positives = dist.global_rows(n_local, a.device)
    self_mask = torch.zeros(n_local, a_all.shape[0], dtype=torch.bool, device=a.device)
    self_mask[rows, positives] = True

    ab = a @ b_all.T / temperature  # (B, B_global): positives on the offset diagonal
    aa = (a @ a_all.T / temperature).masked_fill(self_mask, float("-inf"))
    ba = b @ a_all.T / temperature
    bb = (b @ b_all.T / temperature).masked_fill(self_mask, float("-inf"))
    top = torch.cat([ab, aa], dim=1)  # positives in the first block
    bottom = torch.cat([ba, bb], dim=1)
    logits = torch.cat([top, bottom], dim=0)
    targets = torch.cat([positives, positives])
    loss = F.cross_entropy(logits, targets)
    with torch.no_grad():
        accuracy = (ab.argmax(dim=1) == positives).float().mean()
    return loss, accuracy


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric NT-Xent with intra-view negatives between ``a`` (B, d) and ``b`` (B, d); 0-dim tensor.

    See :func:`nce_with_accuracy` for the exact formula.
    """
    return nce_with_accuracy(a, b, temperature)[0]
