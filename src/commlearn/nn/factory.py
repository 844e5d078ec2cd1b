"""The default encoder + adapter for each modality kind, built from a :class:`~commlearn.config.ModelConfig`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from commlearn.config import ModelConfig
from commlearn.data.base import ModalitySpec
from commlearn.nn.adapters import FeatureTokenizer, PatchTokens, SequenceTokens, VectorToken
from commlearn.nn.encoders import (
    AlexNetEncoder,
    ConvEncoder,
    GRUEncoder,
    MLPEncoder,
    SequenceTransformerEncoder,
    TokenEmbeddingEncoder,
)
from commlearn.nn.fusion import MMFusion
from commlearn.nn.heads import ProjectionHead
from commlearn.nn.pretrained import build_pretrained_encoder, check_pretrained


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"model.{what} must be one of {list(allowed)}, got {value!r}")
    return value


def build_encoder(spec: ModalitySpec, cfg: ModelConfig) -> nn.Module:
    """A modality's encoder: its ``model.pretrained`` entry's, else its kind's default (see :class:`ModelConfig`)."""
    if spec.name in cfg.pretrained:
        return build_pretrained_encoder(spec, cfg.pretrained[spec.name])
    if spec.kind == "image":
        kind = _choice(cfg.image_encoder, ("cnn", "alexnet"), "image_encoder")
        if kind == "alexnet":
            return AlexNetEncoder(spec.shape[0])
        return ConvEncoder(spec.shape[0], cfg.image_channels)
    if spec.kind == "sequence":
        kind = _choice(cfg.sequence_encoder, ("gru", "transformer", "linear"), "sequence_encoder")
        if kind == "gru":
            return GRUEncoder(spec.shape[1], cfg.sequence_dim)
        if kind == "transformer":
            return SequenceTransformerEncoder(spec.shape[1], cfg.sequence_dim, max_len=spec.shape[0])
        return _Passthrough(spec.shape[1])
    if spec.kind == "vector":
        kind = _choice(cfg.vector_encoder, ("mlp", "tokenizer"), "vector_encoder")
        if kind == "mlp":
            return MLPEncoder(spec.shape[0], (cfg.vector_dim,), cfg.vector_dim)
        return _Passthrough(spec.shape[0])
    return TokenEmbeddingEncoder(cfg.vocab_size, cfg.sequence_dim)


def _feature_shape(encoder: nn.Module, spec: ModalitySpec) -> tuple[int, ...]:
    """Per-sample output shape of ``encoder`` on a dummy batch of two samples shaped like ``spec``."""
    dtype = torch.int64 if spec.kind == "tokens" else (torch.uint8 if spec.kind == "image" else torch.float32)
    dummy = torch.zeros((2, *spec.shape), dtype=dtype)
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(dummy)
    encoder.train(was_training)
    return tuple(int(s) for s in out.shape[1:])


def build_adapter(spec: ModalitySpec, encoder: nn.Module, cfg: ModelConfig) -> nn.Module:
    """The latent adapter turning ``encoder``'s features into tokens of width ``cfg.embed_dim``."""
    shape = _feature_shape(encoder, spec)
    d = cfg.embed_dim
    if len(shape) == 3:  # feature map (C, h, w)
        positions = _choice(cfg.image_positions, ("learned", "sincos", "none"), "image_positions")
        return PatchTokens(shape[0], d, (shape[1], shape[2]), positions)  # type: ignore[arg-type]
    if len(shape) == 2:  # sequence (T, C)
        return SequenceTokens(shape[1], d, max_len=shape[0])
    if spec.kind == "vector" and cfg.vector_encoder == "tokenizer":
        return FeatureTokenizer(shape[0], d)
    return VectorToken(shape[0], d)


def build_encoders(specs: Sequence[ModalitySpec], cfg: ModelConfig) -> list[nn.Module]:
    """One encoder per modality (``model.pretrained`` entries must name modalities of ``specs``)."""
    check_pretrained(cfg.pretrained, specs)
    return [build_encoder(s, cfg) for s in specs]


def build_fusion(specs: Sequence[ModalitySpec], cfg: ModelConfig) -> MMFusion:
    """CoMM's multimodal encoder with default encoders and adapters for ``specs``."""
    if len(specs) < 1:
        raise ValueError("a model needs at least one modality")
    encoders = build_encoders(specs, cfg)
    adapters = [build_adapter(s, e, cfg) for s, e in zip(specs, encoders, strict=True)]
    pool = _choice(cfg.pool, ("cls", "mean"), "pool")
    return MMFusion(encoders, adapters, cfg.embed_dim, cfg.n_heads, cfg.n_layers, pool)  # type: ignore[arg-type]


def build_head(in_dim: int, cfg: ModelConfig) -> ProjectionHead:
    """The projection head ``in_dim → head_hidden… → head_out``."""
    return ProjectionHead(in_dim, cfg.head_hidden, cfg.head_out, cfg.head_batch_norm)


def feature_dim(encoder: nn.Module, spec: ModalitySpec, pool: str) -> int:
    """Width of ``encoder``'s pooled features for a unimodal baseline (``pool``: flatten or mean)."""
    shape = _feature_shape(encoder, spec)
    if pool == "flatten":
        n = 1
        for s in shape:
            n *= s
        return n
    return shape[0] if len(shape) != 2 else shape[1]


class _Passthrough(nn.Module):
    """Identity encoder (the adapter tokenises the raw input); ``out_dim`` = input width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        return x.float()
