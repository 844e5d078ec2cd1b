"""Neural building blocks: fusion transformer, latent adapters, encoders, heads."""

from commlearn.nn.adapters import FeatureTokenizer, PatchTokens, SequenceTokens, VectorToken
from commlearn.nn.encoders import (
    AlexNetEncoder,
    ConvEncoder,
    GRUEncoder,
    ImageNormalize,
    MLPEncoder,
    SequenceTransformerEncoder,
    TokenEmbeddingEncoder,
    pool_features,
)
from commlearn.nn.fusion import FusionTransformer, MMFusion, sincos_positions, sincos_positions_2d
from commlearn.nn.heads import ProjectionHead

__all__ = [
    "AlexNetEncoder",
    "ConvEncoder",
    "FeatureTokenizer",
    "FusionTransformer",
    "GRUEncoder",
    "ImageNormalize",
    "MLPEncoder",
    "MMFusion",
    "PatchTokens",
    "ProjectionHead",
    "SequenceTokens",
    "SequenceTransformerEncoder",
    "TokenEmbeddingEncoder",
    "VectorToken",
    "pool_features",
    "sincos_positions",
    "sincos_positions_2d",
]
