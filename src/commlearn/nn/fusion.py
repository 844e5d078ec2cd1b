"""Token fusion: a pre-norm transformer over the concatenated tokens of several modalities.

``MMFusion`` is CoMM's multimodal encoder: per-modality encoder → latent adapter → tokens, plus a modality
embedding; the tokens of the selected modalities are concatenated and fused into one embedding Z.
Masking every modality but ``i`` is done by *dropping* the other modalities' tokens, which is exactly
equivalent to masking them in attention (masked keys contribute nothing, LayerNorm and the MLP act per token)
and costs a sequence of length L_i instead of ΣL_j. A modality missing in some samples only (a per-sample
presence mask) is masked the other way: its tokens in those samples become padding, so each such sample is
fused exactly as if the modality had been dropped for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Pool = Literal["cls", "mean"]
TokenSeq = tuple[Tensor, Tensor | None]  # (tokens (B, L, D), padding (B, L) bool, True = padding, or None)


class _Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.dropout = dropout

    def forward(self, x: Tensor, attend: Tensor | None) -> Tensor:
        b, n, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        )
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=p)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class FusionTransformer(nn.Module):
    """Self-attention over a token sequence, pooled to one vector.

    Args:
        dim: token width D (divisible by ``n_heads``).
        n_heads: attention heads.
        n_layers: transformer blocks.
        pool: ``"cls"`` — a learnable [CLS] token is prepended and its output returned; ``"mean"`` — the
            mean of the non-padding token outputs.
        mlp_ratio: hidden width of the block MLP relative to ``dim``.
        dropout: dropout inside attention and the MLP.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int = 8,
        n_layers: int = 1,
        pool: Pool = "cls",
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % n_heads != 0:
            raise ValueError(f"dim must be divisible by n_heads, got dim={dim}, n_heads={n_heads}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be ≥ 1, got {n_layers}")
        self.dim = dim
        self.pool = pool
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.blocks = nn.ModuleList(_Block(dim, n_heads, mlp_ratio, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)

    def forward(self, tokens: Tensor, padding: Tensor | None = None) -> Tensor:
        """Fuse ``tokens`` (B, L, D) with optional ``padding`` (B, L) bool (True = ignore) into (B, D)."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.dim:
            raise ValueError(f"tokens must be (batch, n_tokens, {self.dim}), got {tuple(tokens.shape)}")
        b = tokens.shape[0]
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(b, -1, -1), tokens], dim=1)
            if padding is not None:
                padding = torch.cat([padding.new_zeros(b, 1), padding], dim=1)
        if padding is not None and self.cls is None:
            # a sample whose tokens are all padding would attend to nothing (NaN): let it attend to them all
            padding = padding & ~padding.all(dim=1, keepdim=True)
        attend = None if padding is None else (~padding)[:, None, None, :]  # (B, 1, 1, L): True = attend
        x = tokens
        for block in self.blocks:
            x = block(x, attend)
        x = self.norm(x)
        if self.cls is not None:
            return x[:, 0]
        if padding is None:
            return x.mean(dim=1)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


def _call_encoder(encoder: nn.Module, x: Tensor, padding: Tensor | None) -> Tensor:
    return encoder(x) if padding is None else encoder(x, padding)


def _call_adapter(adapter: nn.Module, features: Tensor, padding: Tensor | None) -> TokenSeq:
    out = adapter(features) if padding is None else adapter(features, padding)
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, padding if padding is not None and padding.shape[:2] == out.shape[:2] else None


class MMFusion(nn.Module):
    """CoMM's multimodal encoder for any number ``n ≥ 1`` of modalities.

    modality i: ``x_i → encoders[i] → adapters[i] → tokens (B, L_i, D) + modality embedding``;
    selected modalities' tokens are concatenated and fused by a :class:`FusionTransformer` into Z (B, D).

    Encoders take ``(x)`` or, when a padding mask exists, ``(x, padding)``. Adapters take
    ``(features)`` / ``(features, padding)`` and return tokens (B, L_i, D) or ``(tokens, padding)``.

    Args:
        encoders: one module per modality.
        adapters: one module per modality, mapping encoder features to tokens of width ``embed_dim``.
        embed_dim: token width D and size of Z.
        n_heads, n_layers, pool, mlp_ratio, dropout: see :class:`FusionTransformer`.
    """

    def __init__(
        self,
        encoders: Sequence[nn.Module],
        adapters: Sequence[nn.Module],
        embed_dim: int,
        n_heads: int = 8,
        n_layers: int = 1,
        pool: Pool = "cls",
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(encoders) != len(adapters):
            raise ValueError(
                f"got {len(encoders)} encoders but {len(adapters)} adapters: give one of each per modality"
            )
        if len(encoders) < 1:
            raise ValueError("MMFusion needs at least one modality")
        self.encoders = nn.ModuleList(encoders)
        self.adapters = nn.ModuleList(adapters)
        self.embed_dim = embed_dim
        self.modality_embed = nn.Parameter(torch.zeros(len(encoders), embed_dim))
        nn.init.normal_(self.modality_embed, std=0.02)
        self.fusion = FusionTransformer(embed_dim, n_heads, n_layers, pool, mlp_ratio, dropout)

    @property
    def n_modalities(self) -> int:
        return len(self.encoders)

    def _check_inputs(
        self,
        xs: Sequence[Tensor | None],
        padding: Sequence[Tensor | None] | None,
        present: Tensor | None = None,
    ) -> list[Tensor | None]:
        if len(xs) != self.n_modalities:
            raise ValueError(f"expected {self.n_modalities} modality inputs, got {len(xs)}")
        pads: list[Tensor | None] = list(padding) if padding is not None else [None] * len(xs)
        if len(pads) != len(xs):
            raise ValueError(
                f"got {len(pads)} padding masks for {len(xs)} modalities (use None where there is none)"
            )
        sizes = {int(x.shape[0]) for x in xs if x is not None}
        if len(sizes) > 1:
            raise ValueError(f"all modalities must have the same batch size, got {sorted(sizes)}")
        if present is not None:
            rows = sizes.pop() if sizes else int(present.shape[0])
            if present.dtype != torch.bool or tuple(present.shape) != (rows, len(xs)):
                raise ValueError(
                    f"present must be a bool ({rows}, {len(xs)}) mask (batch, modalities), got "
                    f"{present.dtype} {tuple(present.shape)}"
                )
        return pads

    def encode_modality(self, i: int, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """Raw features of modality ``i`` from its encoder (shape depends on the encoder)."""
        return _call_encoder(self.encoders[i], x, padding)

    def tokenize(
        self,
        xs: Sequence[Tensor | None],
        padding: Sequence[Tensor | None] | None = None,
        present: Tensor | None = None,
    ) -> list[TokenSeq | None]:
        """Run each given modality's encoder and adapter once.

        Args:
            xs: n inputs (B, ...); None for a modality missing in every sample.
            padding: n entries of None or (B, T) bool masks.
            present: optional (B, n) bool, False where a modality is missing in one sample: those tokens
                become padding (:meth:`mark_absent`).

        Returns:
            n entries: ``(tokens (B, L_i, D), padding (B, L_i) or None)``, or None for a missing modality.
        """
        pads = self._check_inputs(xs, padding, present)
        seqs = [
            None if x is None else self.tokenize_one(i, x, p)
            for i, (x, p) in enumerate(zip(xs, pads, strict=True))
        ]
        if present is None:
            return seqs
        return [None if s is None else self.mark_absent(s, ~present[:, i]) for i, s in enumerate(seqs)]

    @staticmethod
    def mark_absent(tokens: TokenSeq, absent: Tensor) -> TokenSeq:
        """One modality's tokens with the samples ``absent`` (B,) bool treated as missing: their tokens are
        zeros and padding, so fusing gives each such sample the embedding of its other modalities alone.

        Returns:
            ``(tokens (B, L, D), padding (B, L) bool)``.
        """
        tok, pad = tokens
        missing = absent[:, None]
        pad = missing.expand(tok.shape[:2]) if pad is None else pad | missing
        return tok.masked_fill(missing[..., None], 0.0), pad

    def tokenize_one(self, i: int, x: Tensor, padding: Tensor | None = None) -> TokenSeq:
        """Modality ``i``'s encoder and adapter on ``x`` (B, ...) (+ padding (B, T) or None).

        Returns:
            ``(tokens (B, L_i, D) including the modality embedding, padding (B, L_i) or None)``.
        """
        tokens, tok_pad = _call_adapter(self.adapters[i], self.encode_modality(i, x, padding), padding)
        if tokens.ndim != 3 or tokens.shape[-1] != self.embed_dim:
            raise ValueError(
                f"adapter {i} must return tokens (batch, n_tokens, {self.embed_dim}), got {tuple(tokens.shape)}"
            )
        return tokens + self.modality_embed[i], tok_pad

    def fuse(self, tokens: Sequence[TokenSeq | None], modalities: Sequence[int] | None = None) -> Tensor:
        """Fuse the tokens of ``modalities`` (default: every present one) into Z (B, D)."""
        chosen = [
            i for i in (modalities if modalities is not None else range(len(tokens))) if tokens[i] is not None
        ]
        if not chosen:
            raise ValueError("no modality to fuse: at least one selected modality must be present")
        seqs = [tokens[i] for i in chosen]
        toks = torch.cat([s[0] for s in seqs if s is not None], dim=1)
        if all(s is None or s[1] is None for s in seqs):
            return self.fusion(toks)
        pads = [
            s[1] if s[1] is not None else s[0].new_zeros(s[0].shape[:2], dtype=torch.bool)
            for s in seqs
            if s is not None
        ]
        return self.fusion(toks, torch.cat(pads, dim=1))

    def forward(
        self,
        xs: Sequence[Tensor | None],
        padding: Sequence[Tensor | None] | None = None,
        modalities: Sequence[int] | None = None,
        present: Tensor | None = None,
    ) -> Tensor:
        """The multimodal embedding Z (B, D) of the present (and, if given, selected) modalities.

        A missing modality (None in ``xs``) is left out, as if masked; so is modality i of sample b where
        ``present[b, i]`` (B, n) bool is False. A sample with none of the chosen modalities gets the embedding
        of an empty input (the same for every such sample).
        """
        if modalities is not None:
            bad = [m for m in modalities if not 0 <= m < self.n_modalities]
            if bad:
                raise ValueError(f"modalities must be in 0..{self.n_modalities - 1}, got {list(modalities)}")
            xs = [x if i in modalities else None for i, x in enumerate(xs)]
        return self.fuse(self.tokenize(xs, padding, present))

    def forward_all_masks(
        self,
        xs: Sequence[Tensor],
        padding: Sequence[Tensor | None] | None = None,
        present: Tensor | None = None,
    ) -> list[Tensor]:
        """The n+1 embeddings CoMM needs: ``[Z^1, ..., Z^n, Z_full]``, each (B, D).

        Each encoder and adapter runs once. The n single-modality fusions run as ONE transformer call on a
        (n·B, max L_i) batch (shorter sequences padded and masked); the full fusion is a second call. With a
        ``present`` (B, n) mask, ``Z^i`` of a sample missing modality i is the embedding of an empty input.
        """
        if any(x is None for x in xs):
            raise ValueError("forward_all_masks needs every modality; use forward() for missing modalities")
        return self.fuse_all_masks(self.tokenize(xs, padding, present))

    def fuse_all_masks(self, tokens: Sequence[TokenSeq | None]) -> list[Tensor]:
        """:meth:`forward_all_masks` from every modality's tokens (:meth:`tokenize`): ``[Z^1, ..., Z^n, Z_full]``."""
        seqs = [t for t in tokens if t is not None]
        b = seqs[0][0].shape[0]
        full = self.fuse(tokens)
        if len(seqs) == 1:
            return [full, full]
        lengths = [s[0].shape[1] for s in seqs]
        longest = max(lengths)
        needs_pad = any(s[1] is not None for s in seqs) or len(set(lengths)) > 1
        stacked = torch.cat([F.pad(s[0], (0, 0, 0, longest - s[0].shape[1])) for s in seqs], dim=0)
        if needs_pad:
            pads = []
            for s, length in zip(seqs, lengths, strict=True):
                p = s[1] if s[1] is not None else s[0].new_zeros((b, length), dtype=torch.bool)
                pads.append(F.pad(p, (0, longest - length), value=True))
            single = self.fusion(stacked, torch.cat(pads, dim=0))
        else:
            single = self.fusion(stacked)
        return [*single.split(b, dim=0), full]


def sincos_positions(n_positions: int, dim: int) -> Tensor:
    """Fixed 1-d sine-cosine position embeddings (n_positions, dim)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    emb = torch.zeros(n_positions, dim)
    emb[:, 0::2] = torch.sin(pos * freq)
    emb[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return emb


def sincos_positions_2d(height: int, width: int, dim: int) -> Tensor:
    """Fixed 2-d sine-cosine position embeddings (height·width, dim): half the channels per axis."""
    if dim % 4 != 0:
        raise ValueError(f"2-d sin-cos position embeddings need dim divisible by 4, got {dim}")
    row = sincos_positions(height, dim // 2)[:, None, :].expand(height, width, dim // 2)
    col = sincos_positions(width, dim // 2)[None, :, :].expand(height, width, dim // 2)
    return torch.cat([row, col], dim=-1).reshape(height * width, dim)
