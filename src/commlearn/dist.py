"""Distributed helpers that are the identity on a single process.

No loss needs an ``if distributed`` branch: on one process ``rank() == 0``, ``world_size() == 1``,
``gather_with_grad(x) is x`` and ``sum_over_ranks(x) is x``.

The contract every loss keeps, so that a run on W processes trains the model one process would train on the
global batch (W · B_local rows): rank r holds rows ``[r·B_local, (r+1)·B_local)`` of the global batch; it
gathers the columns it contrasts against (:func:`gather_with_grad`), scores only its own rows against them
(the positives of its rows are the global rows :func:`global_rows`) and returns a value whose **mean over the
ranks** is the single-process loss on the global batch. Memory per rank is then O(B_local · B_global), not
O(B_global²). A loss that averages over a data-dependent number of rows (e.g. anchors that have a positive)
divides the sum of its rows by the global count (:func:`sum_over_ranks`) and multiplies by W.

Why the optimiser step is then the single-process one: rank r back-propagates its own loss L_r only; the
gather's backward sums the column gradients over ranks and hands each rank those of its own rows, so rank r's
parameter gradient is its part of ∂(Σ_r L_r)/∂θ = W · ∂L/∂θ, and DDP's average over ranks divides by W.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as torch_dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one process."""
    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 on a single process)."""
    return torch_dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 on a single process)."""
    return torch_dist.get_world_size() if is_distributed() else 1


def global_rows(n_local: int, device: torch.device | str | None = None) -> Tensor:
    """The rows of the global batch this rank holds: ``rank() · n_local + arange(n_local)``, (n_local,) int64.

    They index this rank's own samples in a tensor gathered by :func:`gather_with_grad` (positives, and the
    self-similarities to exclude).
    """
    return torch.arange(n_local, device=device) + rank() * n_local


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the gradient of its own slice, summed over ranks."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(torch_dist.get_world_size())]
        torch_dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        torch_dist.all_reduce(grad, op=torch_dist.ReduceOp.SUM)
        local = grad.shape[0] // torch_dist.get_world_size()
        start = torch_dist.get_rank() * local
        return grad[start : start + local]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B_local, ...) from every rank along axis 0 → (B_global, ...), keeping gradients.

    Every rank must pass the same shape. The identity on a single process. Tensors without gradient (labels)
    are gathered the same way.
    """
    if not is_distributed():
        return x
    if not x.requires_grad:
        parts = [torch.empty_like(x) for _ in range(torch_dist.get_world_size())]
        torch_dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)
    return _GatherWithGrad.apply(x)  # type: ignore[no-any-return]


def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of ``x`` (any shape) over the ranks, without gradient (a count, a flag); ``x`` on one process."""
    if not is_distributed():
        return x
    total = x.detach().clone()
    torch_dist.all_reduce(total, op=torch_dist.ReduceOp.SUM)
    return total
