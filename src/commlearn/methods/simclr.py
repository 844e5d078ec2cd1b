"""SimCLR on one modality (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from commlearn.data.base import MultimodalBatch
from commlearn.losses.comm import LossOutput
from commlearn.losses.info_nce import check_temperature, nce_with_accuracy
from commlearn.methods.base import BaseMethod
from commlearn.methods.cross import UnimodalEncoders


class SimCLR(BaseMethod):
    """SimCLR on modality ``modality``: NT-Xent (DESIGN §3) between its two augmented views.

    The other modalities are ignored (they are augmented with the batch, then dropped). Probe features: that
    modality's pooled encoder features.

    Args:
        encoder: the encoder of the chosen modality (a one-modality :class:`UnimodalEncoders`).
        head: projection head features (B, F) → (B, d).
        modality: index of the modality in the batch.
        augment: two-view multimodal augmentation (None: the loss sees identical views).
        temperature: τ of the loss.
        **kwargs: optimiser settings of :class:`BaseMethod`.
    """

    def __init__(
        self,
        encoder: UnimodalEncoders,
        head: nn.Module,
        modality: int = 0,
        augment: nn.Module | None = None,
        temperature: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(augment=augment, **kwargs)
        if encoder.n_modalities != 1:
            raise ValueError(f"SimCLR takes the encoder of one modality, got {encoder.n_modalities}")
        if modality < 0:
            raise ValueError(f"modality must be ≥ 0, got {modality}")
        check_temperature(temperature)
        self.encoder = encoder
        self.head = head
        self.modality = modality
        self.temperature = temperature

    def _check_batch(self, batch: MultimodalBatch) -> None:
        if self.modality >= batch.n_modalities:
            raise ValueError(f"SimCLR uses modality {self.modality} but the batch has {batch.n_modalities}")

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        m, b = self.modality, batch.batch_size
        v1, v2 = self.views(batch)
        pad = batch.padding[m]
        x = torch.cat([v1[m], v2[m]], dim=0)
        z = self.head(self.encoder.forward_one(0, x, None if pad is None else torch.cat([pad, pad], dim=0)))
        loss, acc = nce_with_accuracy(z[:b], z[b:], self.temperature)
        return LossOutput(loss=loss, terms={f"nce_m{m}": loss.detach()}, accuracies={f"m{m}": acc})

    def embed(self, batch: MultimodalBatch) -> Tensor:
        self._check_batch(batch)
        m = self.modality
        return self.encoder.forward_one(0, batch.inputs[m], batch.padding[m])

    def part_modalities(self, n_modalities: int) -> list[int] | None:
        return [self.modality] if self.modality < n_modalities else None

    def embed_part(self, i: int, x: Tensor, padding: Tensor | None) -> Tensor:
        """The pooled encoder features (B, F) of modality ``i`` (only ``i == modality`` is used)."""
        return self.encoder.forward_one(0, x, padding)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        return parts[self.modality]  # type: ignore[no-any-return]
