"""The training layer: build data, method and Lightning trainer from a :class:`RunConfig`, fit, resume, reload.

The library (``losses``, ``nn``, ``methods``, ``data``) never imports this module.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from commlearn.config import RunConfig, config_from_dict, config_to_dict
from commlearn.data.base import ModalitySpec, MultimodalDataset
from commlearn.data.loader import BatchLoader
from commlearn.data.registry import build_dataset, split_dataset
from commlearn.methods.base import BaseMethod
from commlearn.methods.registry import Optim, TaskInfo, build_method

CHECKPOINT_KEY = "commlearn"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, then rename: never a half-written file."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing ``metrics.csv``; a resumed run appends to it instead."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class _ResumableCSVLogger(CSVLogger):
    """A CSV logger that keeps the metrics of earlier attempts of the same run."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it to the OS after every step.

    Training allocates the same large activations every step; by default glibc serves them with fresh ``mmap``
    pages and unmaps them on free, so each step page-faults its activations in again (measured: 150k–320k
    faults and 4–9 % of a paper-preset step on CPU; see ``benchmarks/README.md``). Peak memory is unchanged.
    A no-op where glibc's ``mallopt`` is not available.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError):
        return


def task_info(dataset: MultimodalDataset, label_column: int = 0) -> TaskInfo | None:
    """Label facts for supervised methods (None when the data set has no labels)."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        batch = dataset.get_batch(torch.arange(min(len(dataset), 4096)))
        labels = batch.labels
    if labels is None:
        return None
    if dataset.task_type == "multiclass":
        col = labels if labels.ndim == 1 else labels[:, label_column]
        return TaskInfo("multiclass", int(col.max()) + 1, label_column)
    return TaskInfo(dataset.task_type, 1 if labels.ndim == 1 else int(labels.shape[1]), label_column)


def make_method(cfg: RunConfig, specs: list[ModalitySpec], task: TaskInfo | None) -> BaseMethod:
    """The method of ``cfg`` for data with modalities ``specs`` (augmentation included)."""
    from commlearn.augment import MultimodalAugment

    augment = MultimodalAugment.for_specs(specs, cfg.method.augment_options) if cfg.method.augment else None
    optim = Optim(cfg.method.lr, cfg.method.weight_decay, cfg.method.warmup_epochs, cfg.method.scheduler)
    method = build_method(cfg.method.name, specs, cfg.model, augment, optim, task, cfg.method.options)
    method.checkpoint_extra = {
        "config": config_to_dict(cfg),
        "specs": [asdict(s) for s in specs],
        "task": None if task is None else asdict(task),
    }
    return method


@dataclass
class FitResult:
    """What a finished ``fit`` leaves behind."""

    method: BaseMethod
    dataset: MultimodalDataset
    output: Path
    last_checkpoint: Path | None


def on_device(dataset: MultimodalDataset, device: torch.device) -> MultimodalDataset:
    """``dataset`` resident on an accelerator when it supports ``.to(device)`` (else unchanged).

    Batches are then gathered on the device: no host-to-device copy of every batch. Data sets that are
    too large for the accelerator should not implement ``to``.
    """
    move = getattr(dataset, "to", None)
    if device.type == "cpu" or move is None:
        return dataset
    return move(device)  # type: ignore[no-any-return]


def fit(cfg: RunConfig, dataset: MultimodalDataset | None = None) -> FitResult:
    """Train ``cfg.method`` on ``cfg.data`` (or on ``dataset`` when given).

    Writes ``<output>/config.yaml`` (resolved), ``<output>/metrics.csv`` logs, TensorBoard events and
    ``<output>/checkpoints/{last,epoch=…}.ckpt``. With ``trainer.resume`` (default) a run whose folder already holds
    ``last.ckpt`` continues from it.
    """
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    keep_freed_memory()
    out = Path(cfg.trainer.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    if dataset is None:
        dataset = build_dataset(cfg.data.name, cfg.data.root, cfg.trainer.seed, cfg.data.options)
    train_set, val_set = split_dataset(dataset, cfg.data.val_fraction, cfg.trainer.seed)
    method = make_method(cfg, list(dataset.modality_specs), task_info(dataset))
    ckpt_dir = out / "checkpoints"
    if not cfg.trainer.keep_epoch_checkpoints:
        kept = 0  # last.ckpt alone
    elif cfg.trainer.checkpoint_every_n_steps == 0:
        kept = -1  # one file per epoch
    else:
        kept = 1  # step checkpoints overwrite one file
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            save_last=True,
            save_top_k=kept,
            every_n_train_steps=cfg.trainer.checkpoint_every_n_steps or None,
        )
    ]
    if cfg.trainer.progress_bar:
        steps_per_epoch = len(train_set) // cfg.data.batch_size
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(10, steps_per_epoch // 10 or 1))))
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        max_steps=cfg.trainer.max_steps,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy,
        precision=cfg.trainer.precision,  # type: ignore[arg-type]
        default_root_dir=out,
        logger=[
            _ResumableCSVLogger(out, name="", version=""),
            TensorBoardLogger(out, name="tensorboard", version=""),
        ],
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    device = trainer.strategy.root_device
    train_loader = BatchLoader(
        on_device(train_set, device), cfg.data.batch_size, shuffle=True, drop_last=True, seed=cfg.trainer.seed
    )
    val_loader = (
        None
        if val_set is None
        else BatchLoader(on_device(val_set, device), min(cfg.data.batch_size, len(val_set)), shuffle=False)
    )
    last = ckpt_dir / "last.ckpt"
    resume = last if cfg.trainer.resume and last.is_file() else None
    trainer.fit(method, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    return FitResult(method, dataset, out, last if last.is_file() else None)


def load_method(
    checkpoint: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[BaseMethod, RunConfig]:
    """Rebuild a trained method from a checkpoint written by :func:`fit` (loaded with ``weights_only=True``).

    Raises:
        ValueError: missing file, a file that is not a commlearn checkpoint, or a corrupt file.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise ValueError(
            f"cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or CHECKPOINT_KEY not in state:
        raise ValueError(f"{path} is not a commlearn checkpoint (no {CHECKPOINT_KEY!r} entry)")
    extra = state[CHECKPOINT_KEY]
    cfg = config_from_dict(extra["config"])
    specs = [ModalitySpec(s["name"], s["kind"], tuple(s["shape"])) for s in extra["specs"]]
    task = None if extra["task"] is None else TaskInfo(**extra["task"])
    method = make_method(cfg, specs, task)
    method.load_state_dict(state["state_dict"])
    method.eval()
    return method, cfg
