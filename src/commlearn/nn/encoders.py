"""Small default encoders, one per modality kind. Each exposes ``out_dim`` (features per token / vector)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from commlearn.nn.fusion import sincos_positions


class ImageNormalize(nn.Module):
    """uint8 (0..255) or float ([0, 1]) images (B, C, H, W) → float ``(x − mean) / std``."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.25) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return (x - self.mean) / self.std


class ConvEncoder(nn.Module):
    """A strided CNN: images (B, C, H, W) → feature map (B, channels[-1], H / 2^k, W / 2^k).

    Each stage is a 3×3 stride-2 convolution, BatchNorm and ReLU. The default four stages map 64 px images to a
    4×4 map (16 patch tokens).

    Args:
        in_channels: image channels.
        channels: output channels of each stage.
        mean, std: input normalisation (see :class:`ImageNormalize`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128, 128),
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.25,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ImageNormalize(mean, std)]
        c = in_channels
        for out in channels:
            layers += [
                nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            c = out
        self.net = nn.Sequential(*layers)
        self.out_dim = c
        self.downsample = 2 ** len(channels)
        # channels-last weights: oneDNN ran this trunk's convolutions ~1.2× faster on CPU (commit 2732d3a, cpu
        # preset); the layout is neutral for other devices and for checkpoints (state_dict values are the same)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"ConvEncoder expects images (batch, C, H, W), got {tuple(x.shape)}")
        return self.net(x)


class AlexNetEncoder(nn.Module):
    """AlexNet's convolutional trunk (randomly initialised), 224 px images → (B, 256, 6, 6).

    The paper's Trifeature encoder: 5 convolutions with ReLU and three 3×3 max-pools, then adaptive
    average pooling to ``grid``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        grid: int = 6,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.25,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ImageNormalize(mean, std),
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(grid),
        )  # fmt: skip
        self.out_dim = 256
        self.grid = grid

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, 224, 224), uint8 or float → feature map (B, 256, grid, grid), float32."""
        if x.ndim != 4:
            raise ValueError(f"AlexNetEncoder expects images (batch, C, H, W), got {tuple(x.shape)}")
        return self.net(x)


class MLPEncoder(nn.Module):
    """Vectors (B, d) → (B, out_dim) through Linear-LayerNorm-ReLU blocks."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256,), out_dim: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LayerNorm(h), nn.ReLU(inplace=True)]
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPEncoder expects (batch, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


class GRUEncoder(nn.Module):
    """Sequences (B, T, d) → per-step features (B, T, hidden); padded steps are zeroed on input and output."""

    def __init__(
        self, in_dim: int, hidden: int = 128, n_layers: int = 1, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, n_layers, batch_first=True, bidirectional=bidirectional)
        self.proj = (
            nn.Linear(hidden * (2 if bidirectional else 1), hidden) if bidirectional else nn.Identity()
        )
        self.out_dim = hidden

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        if x.ndim != 3:
            raise ValueError(f"GRUEncoder expects (batch, time, features), got {tuple(x.shape)}")
        if padding is not None:
            x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        out = self.proj(self.gru(x)[0])
        return out if padding is None else out.masked_fill(padding.unsqueeze(-1), 0.0)


class SequenceTransformerEncoder(nn.Module):
    """Sequences (B, T, d) → (B, T, dim): linear embedding, sin-cos positions, a padding-aware transformer."""

    pos: Tensor

    def __init__(
        self, in_dim: int, dim: int = 128, n_heads: int = 4, n_layers: int = 1, max_len: int = 512
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.register_buffer("pos", sincos_positions(max_len, dim), persistent=False)
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.max_len = max_len
        self.out_dim = dim

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        if x.ndim != 3:
            raise ValueError(
                f"SequenceTransformerEncoder expects (batch, time, features), got {tuple(x.shape)}"
            )
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}")
        h = self.embed(x) + self.pos[: x.shape[1]]
        if padding is not None and bool(padding.all(dim=1).any()):
            padding = padding.clone()
            padding[padding.all(dim=1), 0] = False  # an all-padding row would make attention NaN
        return self.encoder(h, src_key_padding_mask=padding)


class TokenEmbeddingEncoder(nn.Module):
    """Token ids (B, T) → embeddings (B, T, dim) (a learned table; plug a language model in its place).

    An id outside ``0..vocab_size - 1`` stops with a ValueError naming the range (checked every call: one
    reduction over the ids).
    """

    def __init__(self, vocab_size: int, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.out_dim = dim

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"TokenEmbeddingEncoder expects int token ids (batch, time), got {tuple(x.shape)} {x.dtype}"
            )
        n = self.embed.num_embeddings
        if x.numel():
            low, high = (int(v) for v in torch.aminmax(x))
            if low < 0 or high >= n:
                raise ValueError(
                    f"token ids must lie in 0..{n - 1} (model.vocab_size={n}), got ids {low}..{high}: set "
                    f"model.vocab_size to at least {high + 1}, or map the ids into range"
                )
        return self.embed(x)


def pool_features(features: Tensor, padding: Tensor | None = None) -> Tensor:
    """Pool encoder features to one vector per sample (B, C).

    (B, C, h, w) → spatial mean; (B, T, C) → mean over non-padding steps; (B, C) → unchanged.
    """
    if features.ndim == 4:
        return features.mean(dim=(2, 3))
    if features.ndim == 3:
        if padding is None:
            return features.mean(dim=1)
        keep = (~padding).unsqueeze(-1).to(features.dtype)
        return (features * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
    if features.ndim == 2:
        return features
    raise ValueError(f"cannot pool features of shape {tuple(features.shape)}")
