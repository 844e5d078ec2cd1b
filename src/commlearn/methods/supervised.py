"""Supervised baseline: CoMM's fusion encoder and a linear task head trained end to end on the labels.

With ``init_checkpoint`` the encoder starts from a pre-trained CoMM (or supervised) checkpoint: the paper's
fine-tuned CoMM rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from commlearn.config import TASK_TYPES, OptimConfig, TaskType
from commlearn.data.base import MultimodalBatch
from commlearn.losses.base import LossOutput
from commlearn.methods.base import BuildContext, FusionMethod
from commlearn.nn.factory import build_fusion
from commlearn.nn.fusion import MMFusion


def select_targets(labels: Tensor | None, task_type: str, label_column: int, method: str) -> Tensor:
    """The training targets of a batch's labels.

    Args:
        labels: None, (B,) or (B, K).
        task_type: ``"multiclass"`` → (B,) int64 class ids of column ``label_column``; ``"multilabel"`` /
            ``"regression"`` → (B, K) float (every column; (B,) becomes (B, 1)).
        label_column: the column a multiclass method trains on.
        method: name used in error messages.

    Raises:
        ValueError: no labels, unknown task type, or a label column out of range.
    """
    if labels is None:
        raise ValueError(f"{method} needs labels, but the batch has none (give the data set a labels entry)")
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {list(TASK_TYPES)}, got {task_type!r}")
    if task_type == "multiclass":
        if labels.ndim == 1:
            return labels.long()
        if not 0 <= label_column < labels.shape[1]:
            raise ValueError(
                f"label_column must be in 0..{labels.shape[1] - 1} for labels of shape "
                f"{tuple(labels.shape)}, got {label_column}"
            )
        return labels[:, label_column].long()
    y = labels.float()
    return y if y.ndim == 2 else y[:, None]


def load_encoder_weights(model: nn.Module, path: str | Path, prefix: str = "model.") -> None:
    """Copy the ``prefix*`` weights of a commlearn checkpoint (loaded ``weights_only=True``) into ``model``.

    Args:
        model: the module to initialise (e.g. :class:`~commlearn.nn.MMFusion`).
        path: a checkpoint written by ``commlearn fit`` (CoMM or supervised: both name the encoder ``model``).
        prefix: key prefix of the weights in the checkpoint's ``state_dict``.

    Raises:
        ValueError: missing or unreadable file, no such weights, or weights that do not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"init_checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise ValueError(f"cannot read init_checkpoint {path}: {type(e).__name__}") from None
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ValueError(f"{path} has no 'state_dict': expected a checkpoint written by commlearn fit")
    found = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    if not found:
        raise ValueError(f"{path} holds no '{prefix}*' weights: expected a CoMM or supervised checkpoint")
    own = model.state_dict()
    missing = sorted(set(own) - set(found))
    unexpected = sorted(set(found) - set(own))
    wrong = sorted(k for k in set(own) & set(found) if tuple(own[k].shape) != tuple(found[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(
            f"init_checkpoint {path} does not fit this encoder (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, shape mismatch {wrong[:3]}): use the pre-training run's model.* settings"
        )
    model.load_state_dict(found)


class Supervised(FusionMethod):
    """The fusion encoder + a linear head trained end to end on one task.

    Loss: cross-entropy on column ``label_column`` (multiclass), binary cross-entropy with logits on every
    label (multilabel) or mean squared error on every target (regression). Each step sees one augmented view.
    Probe features: the fused Z (before the head), as for CoMM.

    Args:
        model: the multimodal encoder.
        head: task head Z (B, D) → outputs (B, n_outputs).
        task_type: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        label_column: label column of a multiclass task.
        augment: multimodal augmentation (None: raw inputs).
        optim: optimiser settings.
        init_checkpoint: a CoMM / supervised checkpoint whose ``model.*`` weights initialise ``model`` at the
            start of a fresh fit (not when resuming: the resumed checkpoint has the weights). Call
            :meth:`load_encoder` to load them outside ``Trainer.fit``.
    """

    needs_labels = True

    def __init__(
        self,
        model: MMFusion,
        head: nn.Module,
        task_type: TaskType = "multiclass",
        label_column: int = 0,
        augment: nn.Module | None = None,
        optim: OptimConfig | None = None,
        *,
        init_checkpoint: str | None = None,
    ) -> None:
        super().__init__(augment, optim)
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {list(TASK_TYPES)}, got {task_type!r}")
        self.model = model
        self.head = head
        self.task_type = task_type
        self.label_column = label_column
        self.init_checkpoint = init_checkpoint

    @classmethod
    def from_config(cls, ctx: BuildContext, **options: Any) -> Supervised:
        task, fusion = ctx.labels, build_fusion(ctx.specs, ctx.model)
        head = nn.Linear(ctx.model.embed_dim, task.n_outputs)
        return cls(fusion, head, task.task_type, task.label_column, ctx.augment, ctx.optim, **options)

    def load_encoder(self, path: str | Path) -> None:
        """Initialise the encoder from a checkpoint's ``model.*`` weights (:func:`load_encoder_weights`)."""
        load_encoder_weights(self.model, path)

    def on_fit_start(self) -> None:
        if self.init_checkpoint is not None and self.trainer.ckpt_path is None:
            self.load_encoder(self.init_checkpoint)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        self._check_batch(batch)
        target = select_targets(batch.labels, self.task_type, self.label_column, "supervised")
        out = self.head(self.model(self.one_view(batch), batch.padding))
        accs: dict[str, Tensor] = {}
        if self.task_type == "multiclass":
            if bool((target < 0).any()) or bool((target >= out.shape[1]).any()):
                raise ValueError(f"class labels must be in 0..{out.shape[1] - 1} for this head")
            loss = F.cross_entropy(out, target)
            name = "ce"
            with torch.no_grad():
                accs["top1"] = (out.argmax(dim=1) == target).float().mean()
        else:
            if target.shape != out.shape:
                raise ValueError(
                    f"targets have shape {tuple(target.shape)} but the head outputs {tuple(out.shape)}"
                )
            if self.task_type == "multilabel":
                loss = F.binary_cross_entropy_with_logits(out, target)
                name = "bce"
                with torch.no_grad():
                    accs["label"] = ((out > 0).float() == (target > 0.5).float()).float().mean()
            else:
                loss = F.mse_loss(out, target)
                name = "mse"
        return LossOutput(loss=loss, terms={name: loss.detach()}, accuracies=accs)

    def predict(self, batch: MultimodalBatch) -> Tensor:
        """Task outputs (B, n_outputs) of a clean batch: logits (classification) or predicted values."""
        return self.head(self.model(batch.inputs, batch.padding))  # type: ignore[no-any-return]
