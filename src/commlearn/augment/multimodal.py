"""Two random views of a whole multimodal tuple: one augmentation per modality (DESIGN.md sections 2, 10).

CoMM draws two augmentations ``t', t''`` of the multimodal input ``x = (x_1, ..., x_n)`` and contrasts
their fused embeddings. :class:`MultimodalAugment` applies one label-preserving augmentation per modality
(or none) and returns both views. Augmentations whose parameters are drawn per sample (``per_sample =
True``, as every augmentation in this package) compute both views in ONE call on the concatenated 2B batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from commlearn.augment.image import ImageAugment
from commlearn.augment.sequence import DropNoise, GaussianNoise
from commlearn.data.base import ModalitySpec

__all__ = ["MultimodalAugment", "default_augment"]


def default_augment(spec: ModalitySpec) -> nn.Module | None:
    """The paper's augmentation for a modality kind (DESIGN.md section 10).

    image → :class:`ImageAugment` (SimCLR recipe), sequence → :class:`DropNoise`, vector →
    :class:`GaussianNoise`, tokens → None (masking needs the tokenizer's mask id: build a
    :class:`~commlearn.augment.sequence.TokenMask` yourself).
    """
    if spec.kind == "image":
        return ImageAugment()
    if spec.kind == "sequence":
        return DropNoise()
    if spec.kind == "vector":
        return GaussianNoise()
    if spec.kind == "tokens":
        return None
    raise ValueError(f"unknown modality kind {spec.kind!r} for modality {spec.name!r}")


class _Identity(nn.Module):
    """Placeholder for a modality without augmentation (``nn.ModuleList`` cannot hold None)."""

    def forward(
        self, x: Tensor, padding: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        return x


class MultimodalAugment(nn.Module):
    """Augment every modality of a batch twice, giving the two views (t'(x), t''(x)) of CoMM.

    Each augmentation is a module with ``forward(x, padding=None, generator=None) -> Tensor`` that keeps the
    batch axis. If it has ``per_sample = True`` (its random parameters are drawn independently per sample),
    both views come from one call on ``cat([x, x])`` — one launch per modality instead of two; otherwise it
    is called twice.

    Args:
        augments: one entry per modality; None leaves that modality unchanged in both views.

    Raises:
        ValueError: if ``augments`` is empty.
    """

    def __init__(self, augments: Sequence[nn.Module | None]) -> None:
        super().__init__()
        if len(augments) == 0:
            raise ValueError("MultimodalAugment needs one augmentation (or None) per modality, got none")
        self.augments = nn.ModuleList([_Identity() if a is None else a for a in augments])

    @classmethod
    def for_specs(cls, specs: Sequence[ModalitySpec]) -> MultimodalAugment:
        """The paper's default augmentation for each modality (see :func:`default_augment`)."""
        return cls([default_augment(spec) for spec in specs])

    @property
    def n_modalities(self) -> int:
        return len(self.augments)

    def forward(
        self,
        inputs: Sequence[Tensor],
        padding: Sequence[Tensor | None] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Two independently augmented views of the multimodal batch.

        Args:
            inputs: n tensors, each with the batch size B as first axis.
            padding: None or n entries of None / bool (B, T) masks (True = padding).
            generator: optional RNG on the inputs' device; makes both views deterministic.

        Returns:
            (view1, view2): two lists of n tensors with the shapes the augmentations give (images: float).
            Modalities without augmentation are returned as the input tensors themselves in both views.
        """
        n = len(self.augments)
        if len(inputs) != n:
            raise ValueError(f"MultimodalAugment has {n} augmentations but got {len(inputs)} modalities")
        pads: Sequence[Tensor | None] = [None] * n if padding is None else padding
        if len(pads) != n:
            raise ValueError(f"padding has {len(pads)} entries but there are {n} modalities")
        view1: list[Tensor] = []
        view2: list[Tensor] = []
        for aug, x, pad in zip(self.augments, inputs, pads, strict=True):
            if isinstance(aug, _Identity):
                view1.append(x)
                view2.append(x)
            elif getattr(aug, "per_sample", False):
                b = x.shape[0]
                both = aug(
                    torch.cat([x, x]),
                    padding=None if pad is None else torch.cat([pad, pad]),
                    generator=generator,
                )
                view1.append(both[:b])
                view2.append(both[b:])
            else:
                view1.append(aug(x, padding=pad, generator=generator))
                view2.append(aug(x, padding=pad, generator=generator))
        return view1, view2
