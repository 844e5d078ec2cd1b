"""Two random views of a whole multimodal tuple: one augmentation per modality (DESIGN.md sections 2, 10).

CoMM draws two augmentations ``t', t''`` of the multimodal input ``x = (x_1, ..., x_n)`` and contrasts
their fused embeddings. :class:`MultimodalAugment` applies one label-preserving augmentation per modality
(or none) and returns both views. Augmentations whose parameters are drawn per sample (``per_sample =
True``, as every augmentation in this package) compute both views in ONE call on the concatenated 2B batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from commlearn.augment.image import ImageAugment
from commlearn.augment.sequence import DropNoise, GaussianNoise, TokenMask
from commlearn.data.base import MODALITY_KINDS, ModalitySpec

__all__ = ["AugmentOptions", "MultimodalAugment", "default_augment"]

AugmentOptions = Mapping[str, "Mapping[str, Any] | bool | None"]
"""Per modality kind: keyword arguments of its augmentation, True/None for the defaults, False for none."""

_DEFAULTS: dict[str, type[nn.Module]] = {
    "image": ImageAugment,
    "sequence": DropNoise,
    "vector": GaussianNoise,
    "tokens": TokenMask,
}


def default_augment(spec: ModalitySpec, options: Mapping[str, Any] | None = None) -> nn.Module | None:
    """The paper's augmentation for a modality kind (DESIGN.md section 10), optionally with its settings.

    image → :class:`ImageAugment` (SimCLR recipe), sequence → :class:`DropNoise`, vector →
    :class:`GaussianNoise`, tokens → :class:`TokenMask` when ``options`` gives a ``mask_id`` (the
    tokenizer's mask token), else None.

    Args:
        spec: the modality.
        options: keyword arguments of that augmentation's constructor, e.g. ``{"crop_scale": (0.2, 1.0)}``.

    Raises:
        ValueError: on an option the augmentation does not take, or token options without ``mask_id``.
    """
    if spec.kind not in _DEFAULTS:
        raise ValueError(f"unknown modality kind {spec.kind!r} for modality {spec.name!r}")
    cls = _DEFAULTS[spec.kind]
    opts = dict(options or {})
    if spec.kind == "tokens" and "mask_id" not in opts:
        if opts:
            raise ValueError(
                f"token masking for modality {spec.name!r} needs a 'mask_id' option, got {sorted(opts)}"
            )
        return None
    allowed = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} option(s) {unknown} for modality {spec.name!r}; expected {allowed}"
        )
    return cls(**opts)


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
    def for_specs(
        cls, specs: Sequence[ModalitySpec], options: AugmentOptions | None = None
    ) -> MultimodalAugment:
        """The paper's augmentation for each modality (see :func:`default_augment`).

        Args:
            specs: the modalities, in batch order.
            options: per modality kind, the keyword arguments of its augmentation (True or None: the
                defaults, False: no augmentation), e.g. ``{"image": {"p_blur": 0.0}, "vector": False}``.

        Raises:
            ValueError: on an unknown modality kind or option.
        """
        options = options or {}
        unknown = sorted(set(options) - set(MODALITY_KINDS))
        if unknown:
            raise ValueError(
                f"augmentation options for unknown modality kinds {unknown}; expected {MODALITY_KINDS}"
            )
        augments: list[nn.Module | None] = []
        for spec in specs:
            opts = options.get(spec.kind)
            if opts is False:
                augments.append(None)
            elif opts is None or opts is True:
                augments.append(default_augment(spec))
            elif isinstance(opts, Mapping):
                augments.append(default_augment(spec, opts))
            else:
                raise ValueError(
                    f"augmentation options for {spec.kind!r} must be a mapping, True or False, got {opts!r}"
                )
        return cls(augments)

    @property
    def n_modalities(self) -> int:
        return len(self.augments)

    def _check(
        self, inputs: Sequence[Tensor], padding: Sequence[Tensor | None] | None
    ) -> list[Tensor | None]:
        """Validate the number of inputs and padding entries; return the padding as a list."""
        n = len(self.augments)
        if len(inputs) != n:
            raise ValueError(f"MultimodalAugment has {n} augmentations but got {len(inputs)} modalities")
        pads: list[Tensor | None] = [None] * n if padding is None else list(padding)
        if len(pads) != n:
            raise ValueError(f"padding has {len(pads)} entries but there are {n} modalities")
        return pads

    def one_view(
        self,
        inputs: Sequence[Tensor],
        padding: Sequence[Tensor | None] | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Tensor]:
        """One augmented view t(x) of the multimodal batch (for methods that need a single view).

        Args and shapes as :meth:`forward`; returns the n augmented tensors.
        """
        pads = self._check(inputs, padding)
        return [
            x if isinstance(aug, _Identity) else aug(x, padding=pad, generator=generator)
            for aug, x, pad in zip(self.augments, inputs, pads, strict=True)
        ]

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
        pads = self._check(inputs, padding)
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
