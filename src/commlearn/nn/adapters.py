"""Latent adapters: turn an encoder's features into a token sequence (B, L, D) for the fusion transformer."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from commlearn.nn.fusion import sincos_positions, sincos_positions_2d

PositionKind = Literal["learned", "sincos", "none"]


def _positions(
    kind: PositionKind, n: int, dim: int, grid: tuple[int, int] | None = None
) -> nn.Parameter | Tensor | None:
    if kind == "none":
        return None
    if kind == "learned":
        p = nn.Parameter(torch.zeros(n, dim))
        nn.init.normal_(p, std=0.02)
        return p
    if kind == "sincos":
        return sincos_positions_2d(grid[0], grid[1], dim) if grid is not None else sincos_positions(n, dim)
    raise ValueError(f"position embedding must be 'learned', 'sincos' or 'none', got {kind!r}")


class VectorToken(nn.Module):
    """A feature vector (B, d) → one token (B, 1, D) by a linear map."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"VectorToken expects (batch, features), got {tuple(x.shape)}")
        return self.proj(x).unsqueeze(1)


class FeatureTokenizer(nn.Module):
    """A vector (B, F) → one token per feature (B, F, D): ``token_j = x_j · w_j + b_j`` (FT-Transformer)."""

    def __init__(self, n_features: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, dim) * dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(n_features, dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(
                f"FeatureTokenizer expects (batch, {self.weight.shape[0]}), got {tuple(x.shape)}"
            )
        return x.unsqueeze(-1) * self.weight + self.bias


class PatchTokens(nn.Module):
    """A CNN feature map (B, C, h, w) → h·w patch tokens (B, h·w, D) with position embeddings.

    Args:
        in_channels: C.
        dim: token width D.
        grid: (h, w) of the feature map.
        positions: ``"learned"``, ``"sincos"`` (fixed 2-d) or ``"none"``.
    """

    def __init__(
        self, in_channels: int, dim: int, grid: tuple[int, int], positions: PositionKind = "learned"
    ) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.proj = nn.Linear(in_channels, dim)
        pos = _positions(positions, self.grid[0] * self.grid[1], dim, self.grid)
        if isinstance(pos, nn.Parameter) or pos is None:
            self.pos = pos
        else:
            self.register_buffer("pos", pos, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[2:]) != self.grid:
            raise ValueError(
                f"PatchTokens expects (batch, C, {self.grid[0]}, {self.grid[1]}), got {tuple(x.shape)}"
            )
        tokens = self.proj(x.flatten(2).transpose(1, 2))
        return tokens if self.pos is None else tokens + self.pos


class SequenceTokens(nn.Module):
    """A padded sequence (B, T, d) (+ padding (B, T)) → tokens (B, T, D) and the same padding mask.

    Args:
        in_dim: d.
        dim: token width D.
        max_len: longest sequence supported (for position embeddings).
        positions: ``"learned"``, ``"sincos"`` or ``"none"``.
    """

    def __init__(self, in_dim: int, dim: int, max_len: int, positions: PositionKind = "learned") -> None:
        super().__init__()
        self.max_len = max_len
        self.proj = nn.Linear(in_dim, dim)
        pos = _positions(positions, max_len, dim)
        if isinstance(pos, nn.Parameter) or pos is None:
            self.pos = pos
        else:
            self.register_buffer("pos", pos, persistent=False)

    def forward(self, x: Tensor, padding: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.ndim != 3:
            raise ValueError(f"SequenceTokens expects (batch, time, features), got {tuple(x.shape)}")
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}; raise max_len")
        if padding is not None and padding.shape != x.shape[:2]:
            raise ValueError(
                f"padding must be (batch, time) = {tuple(x.shape[:2])}, got {tuple(padding.shape)}"
            )
        tokens = self.proj(x)
        if self.pos is not None:
            tokens = tokens + self.pos[: x.shape[1]]
        return tokens, padding
