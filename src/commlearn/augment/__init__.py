"""Label-preserving augmentations per modality and the two-view multimodal augmentation.

Every augmentation is an ``nn.Module`` with ``forward(x, padding=None, generator=None)`` that draws
per-sample random parameters for the whole batch on ``x.device`` (DESIGN.md section 10).
"""

from commlearn.augment.image import ImageAugment
from commlearn.augment.multimodal import AugmentOptions, MultimodalAugment, default_augment
from commlearn.augment.sequence import DropNoise, GaussianNoise, TokenMask

__all__ = [
    "AugmentOptions",
    "DropNoise",
    "GaussianNoise",
    "ImageAugment",
    "MultimodalAugment",
    "TokenMask",
    "default_augment",
]
