"""The small Lightning base every method shares: optimiser, schedule, logging, and the embedding interface."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn

from commlearn.config import ModelConfig, OptimConfig, TaskInfo
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.losses.base import LossOutput
from commlearn.nn.factory import build_fusion, build_head
from commlearn.nn.fusion import MMFusion, TokenSeq


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


@dataclass(frozen=True)
class BuildContext:
    """What a method is built from (:meth:`BaseMethod.from_config`).

    Attributes:
        specs: the data's modalities.
        model: architecture of the encoders, adapters, fusion and heads.
        augment: the two-view multimodal augmentation, or None.
        optim: optimiser settings.
        task: the labels, or None when the data set has none.
    """

    specs: list[ModalitySpec]
    model: ModelConfig
    augment: nn.Module | None
    optim: OptimConfig
    task: TaskInfo | None

    @property
    def labels(self) -> TaskInfo:
        """``task`` of a method with ``needs_labels`` (the registry checks that it is there)."""
        assert self.task is not None
        return self.task


class BaseMethod(L.LightningModule):
    """Base of all methods.

    A method states its options once, as the keyword-only arguments of its constructor (with their defaults);
    the registry and config validation read them from there. :meth:`from_config` builds the modules for data
    with given modality specs and passes the options through.

    Subclasses implement :meth:`compute_loss` (a training batch → :class:`LossOutput`) and the two stages of
    their probe features: :meth:`embed_modality` (one modality's inputs → a batch-first part) and
    :meth:`embed_joint` (the parts → features). :meth:`embed` chains them; ``commlearn.eval`` uses the stages
    to encode each distinct input of a data set once.

    Class attributes:
        min_modalities: the fewest modalities the method works with.
        needs_labels: the method trains on labels (``task`` must be given).
        multiclass_only: the labels must be multiclass.

    Args:
        augment: a multimodal augmentation returning two views (``None``: views are the raw inputs).
        optim: AdamW settings and schedule.
    """

    min_modalities: ClassVar[int] = 1
    needs_labels: ClassVar[bool] = False
    multiclass_only: ClassVar[bool] = False

    def __init__(self, augment: nn.Module | None = None, optim: OptimConfig | None = None) -> None:
        super().__init__()
        self.augment = augment
        self.optim = optim if optim is not None else OptimConfig()
        self.checkpoint_extra: dict[str, Any] | None = None  # plain data saved in checkpoints (train.py)
        # optimizer steps per epoch of this process, read once the processes joined (set by train.fit)
        self.epoch_length: Callable[[], int] | None = None

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> BaseMethod:
        """The method for ``ctx``: its modules built for ``ctx.specs`` from ``ctx.model``, ``options`` passed
        to the constructor (already checked against its keyword-only arguments)."""
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.checkpoint_extra is not None:
            checkpoint["commlearn"] = self.checkpoint_extra

    # --- to implement -------------------------------------------------------------------------------------
    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """The training loss of ``batch`` (augmented inside)."""
        raise NotImplementedError

    def embed_modality(self, i: int, x: Tensor, padding: Tensor | None) -> Any:
        """Per-modality stage of :meth:`embed`: modality ``i``'s inputs (B, ...) (+ padding (B, T) or None) →
        a batch-first part (a tensor, or a tuple of tensors / None). In eval mode row b depends only on
        sample b."""
        raise NotImplementedError

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        """Joint stage of :meth:`embed`: n parts (None for a modality left out) → features (B, F)."""
        raise NotImplementedError

    def feature_modalities(self, n_modalities: int) -> list[int]:
        """The modalities whose parts the probe features of ``n_modalities``-modality data use (all of them,
        unless the method looks at fewer)."""
        return list(range(n_modalities))

    # --- shared -------------------------------------------------------------------------------------------
    def check_modalities(self, n_modalities: int, modalities: Sequence[int] | None) -> list[int]:
        """The modalities :meth:`embed` uses for ``modalities`` (None: :meth:`feature_modalities`).

        Raises:
            ValueError: an index out of range, or a modality this method has no encoder for.
        """
        usable = self.feature_modalities(n_modalities)
        if modalities is None:
            return usable
        chosen = sorted({int(m) for m in modalities})
        bad = [m for m in chosen if m not in usable]
        if bad or not chosen:
            raise ValueError(
                f"modalities {list(modalities)} cannot be embedded by {type(self).__name__}; "
                f"choose from {usable}"
            )
        return chosen

    def without_absent(self, part: Any, absent: Tensor) -> Any:
        """A part of :meth:`embed_modality` with the samples ``absent`` (B,) bool treated as lacking the
        modality. Here: zeros in those rows of every tensor in the part, so concatenated features hold zeros
        where a sample lacks a modality (the unimodal baselines, FactorCL, SimCLR); fusion methods override it.
        """
        if part is None:
            return None
        if isinstance(part, Tensor):
            return part.masked_fill(absent.view(-1, *([1] * (part.ndim - 1))), 0.0)
        return tuple(self.without_absent(p, absent) for p in part)

    @torch.no_grad()
    def embed(self, batch: MultimodalBatch, modalities: Sequence[int] | None = None) -> Tensor:
        """Probe features (B, F) of a clean batch, computed in eval mode (a sample's features do not depend
        on its batch-mates).

        Args:
            batch: the inputs (no augmentation is applied). Where ``batch.present`` (B, n) is False, the sample
                lacks that modality (:meth:`without_absent`): CoMM's embedding of the sample is that of its
                other modalities, as with ``modalities``; the unimodal baselines put zeros in its part.
            modalities: the modalities to use, the others treated as missing (default: every one the method
                uses). CoMM fuses the chosen modalities' tokens; the unimodal baselines concatenate the chosen
                modalities' features (so the width depends on the choice).
        """
        chosen = self.check_modalities(batch.n_modalities, modalities)
        was_training = self.training
        self.eval()
        try:
            parts = [
                self.embed_modality(i, x, p) if i in chosen else None
                for i, (x, p) in enumerate(zip(batch.inputs, batch.padding, strict=True))
            ]
            if batch.present is not None:
                parts = [self.without_absent(part, ~batch.present[:, i]) for i, part in enumerate(parts)]
            return self.embed_joint(parts)
        finally:
            self.train(was_training)

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

    def _check_complete(self, batch: MultimodalBatch) -> None:
        """Training needs every modality of every sample: raise a one-line ValueError otherwise."""
        if batch.present is not None and not bool(batch.present.all()):
            raise ValueError(
                f"{type(self).__name__} trains on samples with every modality, but the data has samples that "
                "lack one (its presence mask): pre-train on the complete samples; embed and probe all of them"
            )

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        self._check_complete(batch)
        out = self.compute_loss(batch)
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=batch.batch_size)
        logs = out.log_dict("train/")
        logs.pop("train/loss")
        self.log_dict(logs, batch_size=batch.batch_size)
        return out.loss

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> None:
        self._check_complete(batch)
        out = self.compute_loss(batch)
        self.log_dict(out.log_dict("val/"), batch_size=batch.batch_size, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader if self._trainer is not None else None
        if loader is not None and hasattr(loader, "set_epoch"):
            loader.set_epoch(self.current_epoch)

    def _schedule_length(self) -> tuple[int, int]:
        """(optimizer steps per epoch, total steps) of the run the learning-rate schedule spans.

        :func:`commlearn.train.fit` sets ``epoch_length`` to its loader's length; Lightning's
        ``estimated_stepping_batches`` (the fallback for a method trained by a user's own Trainer) builds the
        train loader before a resumed run restores the loader's position, so that run would restart its epoch.
        """
        trainer = self.trainer
        if self.epoch_length is None:
            total = max(1, int(trainer.estimated_stepping_batches))
            return max(1, total // max(1, trainer.max_epochs or 1)), total
        per_epoch = max(1, self.epoch_length())
        total = per_epoch * max(1, trainer.max_epochs or 1)
        if trainer.max_steps != -1:
            total = min(total, trainer.max_steps)
        return per_epoch, max(1, total)

    def configure_optimizers(self) -> Any:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(("cls", "modality_embed", "pos")) else decay).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
            fused=True,  # one kernel for all parameters: 4× faster optimiser step on CPU, also on CUDA
        )
        if self.optim.scheduler == "none" and self.optim.warmup_epochs == 0:
            return optimizer
        steps_per_epoch, total = self._schedule_length()
        warmup = self.optim.warmup_epochs * steps_per_epoch
        cosine = self.optim.scheduler == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class FusionMethod(BaseMethod):
    """Base of the methods built on one :class:`~commlearn.nn.fusion.MMFusion` ``model`` and a ``head`` (CoMM,
    InfMasking, Supervised): their probe features are the fused embedding Z (B, D) of the clean inputs.
    Subclasses set ``self.model`` and ``self.head``."""

    model: MMFusion
    head: nn.Module

    def _check_batch(self, batch: MultimodalBatch) -> None:
        if batch.n_modalities != self.model.n_modalities:
            raise ValueError(
                f"{type(self).__name__} was built for {self.model.n_modalities} modalities, "
                f"the batch has {batch.n_modalities}"
            )

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> BaseMethod:
        """The fusion of ``ctx.specs`` and a projection head from ``ctx.model.embed_dim``."""
        fusion, head = build_fusion(ctx.specs, ctx.model), build_head(ctx.model.embed_dim, ctx.model)
        return cls(fusion, head, ctx.augment, ctx.optim, **options)  # type: ignore[call-arg,arg-type]

    def project_views(
        self, embeddings: Sequence[Tensor], batch_size: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Project embeddings of two views stacked along the batch axis (2B, D) with ``self.head``.

        Returns:
            ``(z1, z2)``: the projections (B, d) of view t' and of view t'', in the order of ``embeddings``.
        """
        z1, z2 = [], []
        for z in embeddings:
            h1, h2 = self.head(z).split(batch_size, dim=0)
            z1.append(h1)
            z2.append(h2)
        return z1, z2

    def feature_modalities(self, n_modalities: int) -> list[int]:
        return list(range(min(n_modalities, self.model.n_modalities)))

    def embed_modality(self, i: int, x: Tensor, padding: Tensor | None) -> TokenSeq:
        """Modality ``i``'s tokens (:meth:`MMFusion.tokenize_one`)."""
        return self.model.tokenize_one(i, x, padding)

    def without_absent(self, part: Any, absent: Tensor) -> Any:
        """The modality's tokens become padding in the samples ``absent`` (B,) bool
        (:meth:`MMFusion.mark_absent`): each such sample is fused from its other modalities alone."""
        return None if part is None else self.model.mark_absent(part, absent)

    def embed_joint(self, parts: Sequence[Any]) -> Tensor:
        """The fused Z (B, D) of the present modalities' tokens."""
        return self.model.fuse(parts)
