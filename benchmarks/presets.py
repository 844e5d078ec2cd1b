"""The two model/data settings the benchmarks measure.

``paper``: the CoMM paper's Trifeature setting (ICLR 2025; DESIGN §5): two 224 px image modalities, one
randomly initialised AlexNet trunk per modality → 6×6×256 map → 36 patch tokens of width 512 with sin-cos
positions, one fusion layer with 8 heads, head 512→512→512→256 with BatchNorm, batch 64, the SimCLR image
augmentation, AdamW lr 3e-4, wd 1e-4.

``cpu``: the CPU preset: 64 px images, ``ModelConfig()`` defaults (4-stage CNN 32-64-128-128 → 16 tokens of
width 128, 4 heads, head 128→512→128), batch 64, crop scale 0.2–1 without hue jitter and blur (the image is
small), AdamW lr 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from commlearn.augment import ImageAugment, MultimodalAugment
from commlearn.data.base import ArrayDataset, ModalitySpec
from commlearn.data.trifeature import RenderSettings
from commlearn.experiments.trifeature import PRESETS
from commlearn.methods import Optim, build_method
from commlearn.methods.base import BaseMethod
from commlearn.nn.factory import ModelConfig

PRESET_NAMES = ("paper", "cpu")


@dataclass(frozen=True)
class BenchPreset:
    """Model, augmentation, optimiser and image settings of one benchmark preset."""

    name: str
    image_size: int
    model: ModelConfig
    augment: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def render_settings(self) -> RenderSettings:
        """The Trifeature render settings of this preset."""
        return RenderSettings.paper() if self.name == "paper" else RenderSettings.cpu()

    def specs(self, n_modalities: int = 2) -> list[ModalitySpec]:
        """``n_modalities`` RGB image modalities of this preset's size."""
        if n_modalities < 1:
            raise ValueError(f"n_modalities must be ≥ 1, got {n_modalities}")
        return [
            ModalitySpec(f"image{i + 1}", "image", (3, self.image_size, self.image_size))
            for i in range(n_modalities)
        ]

    def image_augment(self) -> ImageAugment:
        """The preset's per-modality image augmentation."""
        return ImageAugment(**self.augment)

    def build(self, n_modalities: int = 2, method: str = "comm") -> BaseMethod:
        """The method with this preset's model, augmentation and optimiser for ``n_modalities`` images."""
        augment: nn.Module = MultimodalAugment([self.image_augment() for _ in range(n_modalities)])
        optim = Optim(lr=self.lr, weight_decay=self.weight_decay)
        return build_method(method, self.specs(n_modalities), self.model, augment, optim)


def get_preset(name: str) -> BenchPreset:
    """``"paper"`` or ``"cpu"`` (see the module docstring)."""
    if name in PRESET_NAMES:  # the Trifeature experiment's presets: one definition of each architecture
        p = PRESETS[name]
        augment = {k: tuple(v) if isinstance(v, list) else v for k, v in p.image_augment.items()}
        return BenchPreset(name, p.render.canvas_size, p.model, augment, batch_size=p.batch_size, lr=p.lr)
    raise ValueError(f"preset must be one of {list(PRESET_NAMES)}, got {name!r}")


def synthetic_images(n_samples: int, n_modalities: int, size: int, seed: int = 0) -> ArrayDataset:
    """Random uint8 images (N, 3, size, size) per modality, with one dummy label column (timing only)."""
    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (n_samples, 3, size, size), dtype=torch.uint8, generator=g)
        for _ in range(n_modalities)
    ]
    labels = torch.randint(0, 10, (n_samples,), generator=g)
    return ArrayDataset(inputs, labels=labels)
