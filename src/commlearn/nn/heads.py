"""Projection heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """MLP head: ``Linear → [BatchNorm] → ReLU`` per hidden layer, then a final ``Linear``.

    The paper's Trifeature head is ``ProjectionHead(512, (512, 512), 256)`` with BatchNorm.

    Args:
        in_dim: input width.
        hidden: hidden widths (may be empty: a single linear map).
        out_dim: output width.
        batch_norm: BatchNorm after each hidden linear layer.
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (512,), out_dim: int = 128, batch_norm: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) → (B, out_dim)."""
        return self.net(x)
