"""Small default encoders, one per modality kind. Each exposes ``out_dim`` (features per token / vector)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
        # channels-last convolutions are ~1.2× faster on CPU (oneDNN) for this trunk (benchmarks/README.md)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"ConvEncoder expects images (batch, C, H, W), got {tuple(x.shape)}")
        return self.net(x)


_WGRAD_CHUNK_BYTES = 64 * 2**20  # largest im2col block of _Conv3x3WeightGradGemm's backward


class _Conv3x3WeightGradGemm(torch.autograd.Function):
    """A 3×3, stride-1, padding-1 convolution of channels-last float32 CPU activations whose backward
    computes the weight gradient as one matrix product on an im2col copy of the input.

    oneDNN's weight gradient for these layers runs at ~0.7 of the machine's matmul peak (AlexNet's 13×13 maps,
    128 images, 2 AVX2 cores), the matrix product at 0.8–1.0; with the copy, the three 3×3 layers of a trunk
    take ~0.1 s less per forward + backward of 128 images. The forward and the input gradient stay oneDNN's.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # noqa: D102
        x, weight = ctx.saved_tensors
        b, c_in, h, w = x.shape
        c_out = weight.shape[0]
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        rows = grad.permute(0, 2, 3, 1).reshape(b * h * w, c_out)  # (B·H·W, C_out), a view: grad is NHWC
        grad_w = None
        if ctx.needs_input_grad[1]:
            padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # (B, H+2, W+2, C_in), contiguous
            sb, sh, sw, sc = padded.stride()
            patches = padded.as_strided((b, h, w, 3, 3, c_in), (sb, sh, sw, sh, sw, sc))
            step = max(1, _WGRAD_CHUNK_BYTES // (h * w * 9 * c_in * x.element_size()))
            for start in range(0, b, step):  # im2col in blocks of images: bounded extra memory
                cols = patches[start : start + step].reshape(-1, 9 * c_in)  # (n·H·W, 9·C_in), a copy
                block = rows[start * h * w : (start + step) * h * w].t()
                # out-of-place products (not addmm_), so that torch.utils.flop_counter counts them
                grad_w = block @ cols if grad_w is None else torch.addmm(grad_w, block, cols)
            assert grad_w is not None
            grad_w = grad_w.view(c_out, 3, 3, c_in).permute(0, 3, 1, 2)
        grad_b = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class _Relayout(torch.autograd.Function):
    """``x`` copied to ``layout``, its gradient copied back to ``grad_layout``.

    ``x.contiguous(memory_format=...)`` passes the gradient on in whatever layout it arrives; the layers
    before may want it in another one and then convert a larger tensor (AlexNet: the 55×55 map before the
    first max-pool instead of the 27×27 map after it).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, layout: torch.memory_format, grad_layout: torch.memory_format) -> Tensor:  # noqa: D102
        ctx.grad_layout = grad_layout
        return x.contiguous(memory_format=layout)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        return grad.contiguous(memory_format=ctx.grad_layout), None, None


def _conv3x3_cpu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a 3×3 stride-1 padding-1 convolution, with :class:`_Conv3x3WeightGradGemm`'s faster
    backward where it applies (float32 channels-last CPU input, gradients on, no autocast)."""
    if (
        torch.is_grad_enabled()
        and conv.weight.requires_grad
        and x.dtype == conv.weight.dtype == torch.float32
        and x.is_contiguous(memory_format=torch.channels_last)
        and not torch.is_autocast_enabled("cpu")
    ):
        return _Conv3x3WeightGradGemm.apply(x, conv.weight, conv.bias)  # type: ignore[no-any-return]
    return conv(x)


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
        self._nchw_conv = 4  # index in ``net`` of the 5×5 convolution, run on NCHW activations on CPU
        self._conv3x3 = (7, 9, 11)  # indices of the 3×3 convolutions (a faster weight gradient on CPU)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, 224, 224), uint8 or float → feature map (B, 256, grid, grid), float32."""
        if x.ndim != 4:
            raise ValueError(f"AlexNetEncoder expects images (batch, C, H, W), got {tuple(x.shape)}")
        if x.device.type != "cpu":
            return self.net(x)
        # oneDNN on CPU (measured, 128 images of 224 px, 2 cores): channels-last activations make the max-pools
        # ~4× and the 11×11 and 3×3 convolutions ~10 % faster, while the 5×5 convolution is faster on NCHW; with
        # the 3×3 weight gradients as matrix products, forward + backward goes from 3.17 to 2.86 s and forward
        # alone from 1.20 to 0.96 s. The weights keep their layout (oneDNN reorders them, for little), so
        # checkpoints and other devices see no change.
        layers = list(self.net)
        x = layers[0](x).contiguous(memory_format=torch.channels_last)
        for index, layer in enumerate(layers[1:], start=1):
            if index == self._nchw_conv:
                nchw, nhwc = torch.contiguous_format, torch.channels_last
                x = _Relayout.apply(layer(_Relayout.apply(x, nchw, nhwc)), nhwc, nchw)
            elif isinstance(layer, nn.Conv2d) and index in self._conv3x3:
                x = _conv3x3_cpu(layer, x)
            else:
                x = layer(x)
        return x


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
    """Token ids (B, T) → embeddings (B, T, dim) (a learned table; plug a language model in its place)."""

    def __init__(self, vocab_size: int, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.out_dim = dim

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"TokenEmbeddingEncoder expects int token ids (batch, time), got {tuple(x.shape)} {x.dtype}"
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
