"""Distributed helpers that are the identity on a single process.

No loss needs an ``if distributed`` branch: on one process ``rank() == 0``, ``world_size() == 1`` and
``gather_with_grad(x) is x``.
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

    Every rank must pass the same B_local. The identity on a single process.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)  # type: ignore[no-any-return]
