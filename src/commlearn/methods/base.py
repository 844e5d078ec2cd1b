"""The small Lightning base every method shares: optimiser, schedule, logging, feature extraction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from commlearn.data.base import MultimodalBatch, MultimodalDataset
from commlearn.losses.comm import LossOutput


def concat_views(
    v1: Sequence[Tensor], v2: Sequence[Tensor], padding: Sequence[Tensor | None]
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Stack two views along the batch axis (B → 2B) so the encoders run once for both.

    Returns:
        ``(inputs, padding)``: per modality ``cat([v1_i, v2_i])`` and the padding mask repeated (or None).
    """
    xs = [torch.cat([a, b], dim=0) for a, b in zip(v1, v2, strict=True)]
    pads = [None if p is None else torch.cat([p, p], dim=0) for p in padding]
    return xs, pads


class BaseMethod(L.LightningModule):
    """Base of all methods.

    Subclasses implement :meth:`compute_loss` (a training batch → :class:`LossOutput`) and :meth:`embed`
    (a clean batch → probe features (B, F)).

    Args:
        augment: a multimodal augmentation returning two views (``None``: views are the raw inputs).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: linear warm-up length (epochs; 0 = none).
        scheduler: ``"none"`` or ``"cosine"`` (cosine decay to 0 over the run after warm-up).
    """

    def __init__(
        self,
        augment: nn.Module | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 0,
        scheduler: str = "none",
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be ≥ 0, got {weight_decay}")
        if scheduler not in ("none", "cosine"):
            raise ValueError(f"scheduler must be 'none' or 'cosine', got {scheduler!r}")
        self.augment = augment
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.scheduler_name = scheduler
        self.checkpoint_extra: dict[str, Any] | None = (
            None  # plain data saved in checkpoints to rebuild the method
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.checkpoint_extra is not None:
            checkpoint["commlearn"] = self.checkpoint_extra

    # --- to implement -------------------------------------------------------------------------------------
    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """The training loss of ``batch`` (augmented inside)."""
        raise NotImplementedError

    def embed(self, batch: MultimodalBatch) -> Tensor:
        """Probe features (B, F) of a clean (non-augmented) batch."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------------------
    def views(self, batch: MultimodalBatch) -> tuple[list[Tensor], list[Tensor]]:
        """Two augmented views of the batch's inputs (the raw inputs twice when there is no augmentation)."""
        if self.augment is None:
            return list(batch.inputs), list(batch.inputs)
        return self.augment(batch.inputs, batch.padding)  # type: ignore[no-any-return]

    def one_view(self, batch: MultimodalBatch) -> list[Tensor]:
        """One augmented view of the batch's inputs (for methods that need a single view)."""
        if self.augment is None:
            return list(batch.inputs)
        return self.augment.one_view(batch.inputs, batch.padding)  # type: ignore[operator,no-any-return]

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        out = self.compute_loss(batch)
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=batch.batch_size)
        logs = out.log_dict("train/")
        logs.pop("train/loss")
        self.log_dict(logs, batch_size=batch.batch_size)
        return out.loss

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> None:
        out = self.compute_loss(batch)
        self.log_dict(out.log_dict("val/"), batch_size=batch.batch_size, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader if self._trainer is not None else None
        if loader is not None and hasattr(loader, "set_epoch"):
            loader.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> Any:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(("cls", "modality_embed", "pos")) else decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            fused=True,  # one kernel for all parameters: 4× faster optimiser step on CPU, also on CUDA
        )
        if self.scheduler_name == "none" and self.warmup_epochs == 0:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        warmup = self.warmup_epochs * steps_per_epoch
        cosine = self.scheduler_name == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @torch.no_grad()
    def extract_features(
        self, dataset: MultimodalDataset, batch_size: int = 256, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Probe features of a whole data set, in order, in eval mode.

        Returns:
            ``(features (N, F) float32 on CPU, labels (N,) / (N, K) or None)``.
        """
        was_training = self.training
        self.eval()
        dev = torch.device(device) if device is not None else next(self.parameters()).device
        feats: list[Tensor] = []
        labels: list[Tensor] = []
        try:
            for start in range(0, len(dataset), batch_size):
                index = torch.arange(start, min(start + batch_size, len(dataset)))
                batch = dataset.get_batch(index).to(dev)
                feats.append(self.embed(batch).float().cpu())
                if batch.labels is not None:
                    labels.append(batch.labels.cpu())
        finally:
            self.train(was_training)
        return torch.cat(feats), (torch.cat(labels) if labels else None)
