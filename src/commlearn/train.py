"""The training layer: build data, method and Lightning trainer from a :class:`RunConfig`; fit, resume, reload.

A run folder holds one run: ``config.yaml`` (the resolved config), ``checkpoints/``, ``metrics.csv``,
``tensorboard/`` and, once training has ended, ``done.json``. A ``fit`` into a folder that holds a run resumes
it only when the configs agree apart from the training length; otherwise it stops before writing anything.
A resumed run continues exactly where ``last.ckpt`` left it (the loader's position and the random states are
in the checkpoint). A run that cannot go on stops with a :class:`TrainingStopped` error.

On several processes (``trainer.devices``/``num_nodes`` with DDP, ``torchrun``, SLURM) every process runs
``fit``; only global rank 0 writes the run folder, logs and checkpoints. ``data.batch_size`` is per process,
and a run may resume on another number of processes (or another accelerator) when its global batch —
``data.batch_size`` × processes — is unchanged: then it continues with the same steps.
The library (``losses``, ``nn``, ``methods``, ``data``, ``eval``) never imports this module.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import signal
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import nn

from commlearn import dist
from commlearn.config import (
    PRESENTATION_KEYS,
    TRAINING_LENGTH_KEYS,
    ConfigError,
    RunConfig,
    TaskInfo,
    check_config,
    config_differences,
    config_from_dict,
    config_to_dict,
    merge,
    parse_overrides,
)
from commlearn.data.base import ModalitySpec, MultimodalDataset
from commlearn.data.loader import BatchLoader, StreamingDataset
from commlearn.data.registry import DataSplits, build_data, split_dataset
from commlearn.methods.base import BaseMethod
from commlearn.methods.registry import build_method

CHECKPOINT_KEY = "commlearn"
#: The hardware a run trains on: a run resumes on other hardware (1 process ↔ several, CPU ↔ GPU) when its
#: global batch (``data.batch_size`` × processes) is unchanged, which :func:`fit` checks against the checkpoint.
HARDWARE_KEYS = ("trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy")
#: Config keys that may differ when a run resumes: its length, settings that do not change the result, the
#: folder's own path (a moved or copied run folder resumes), and the hardware with the per-process batch (their
#: product is checked).
RESUMABLE_KEYS = (
    *TRAINING_LENGTH_KEYS,
    *PRESENTATION_KEYS,
    "trainer.output",
    "experiment",
    *HARDWARE_KEYS,
    "data.batch_size",
)
_RUN_ENTRIES = ("config.yaml", "checkpoints", "metrics.csv", "tensorboard", "hparams.yaml", "done.json")


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


class TrainingStopped(Exception):
    """Training stopped before the end of the run. The message is one line: what happened, where the
    checkpoint is, and what to do.

    Attributes:
        step: training steps done when it stopped.
        checkpoint: the checkpoint to resume from (None when none was written).
        exit_code: the exit status of the command line.
    """

    exit_code: int = 1

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


class Interrupted(TrainingStopped):
    """A SIGTERM or SIGINT arrived: the run stopped after the step in progress and saved a checkpoint that the
    same ``fit`` resumes from. Exit status 128 + the signal number (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} at step {step}; checkpoint saved to {checkpoint}; "
            "run the same command to resume",
            step,
            checkpoint,
        )
        self.exit_code = 128 + signum


class LossNotFinite(TrainingStopped):
    """The training loss became NaN or infinite: the run stopped before that step's update, and the last
    checkpoint (written before it, with finite weights) is kept. Exit status 2."""

    exit_code = 2


def rng_states() -> dict[str, Any]:
    """The global random states of torch (CPU, and every CUDA device when there is one), numpy and Python's
    ``random``, as plain data that ``torch.load(weights_only=True)`` reads back."""
    # numpy's global generator (np.random.*) is the legacy MT19937: its state is a tuple
    legacy: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]  # noqa: NPY002
    key, pos, has_gauss, gauss = legacy[1:]
    version, state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "state": list(state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the global random states :func:`rng_states` returned (CUDA states only on a machine with as many
    CUDA devices)."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    key = n["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    cuda = states.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _seed_process(seed: int, rank: int, step: int) -> None:
    """Seed torch (CPU and CUDA), numpy and ``random`` of this process from ``(seed, rank, step)``."""
    value = int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])
    torch.manual_seed(value)
    np.random.seed(value)  # noqa: NPY002 - the global generator augmentations may use
    random.seed(value)


class _RandomStates(Callback):
    """Writes every process's global random states into each checkpoint and restores them when training
    resumes, so a resumed run draws the same augmentations as an uninterrupted one (the loader's order is
    restored by :meth:`BatchLoader.load_state_dict`).

    On several processes, ranks other than 0 start from their own seed (``seed``, rank), so that they do not
    draw the same augmentations for their rows as rank 0 (rank 0 draws as one process would). A rank that the
    checkpoint has no states for (more processes than before) is seeded the same way at the resumed step.

    Args:
        seed: the run's seed.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._to_restore: list[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        states = rng_states()
        if not dist.is_distributed():
            return {"ranks": [states]}
        gathered: list[Any] = [None] * dist.world_size()
        torch.distributed.all_gather_object(gathered, states)  # every rank saves the checkpoint's contents
        return {"ranks": gathered}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # checkpoints written before the states were per process hold one process's states
        self._to_restore = state_dict["ranks"] if "ranks" in state_dict else [state_dict]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the whole restore (model, optimiser, loops): nothing draws random numbers between here and the
        # first resumed step
        rank = trainer.global_rank
        if self._to_restore is not None:
            if rank < len(self._to_restore):
                set_rng_states(self._to_restore[rank])
            else:
                _seed_process(self.seed, rank, trainer.global_step)
            self._to_restore = None
        elif rank > 0:
            _seed_process(self.seed, rank, 0)


class _LastCheckpoint(Callback):
    """Keeps ``last.ckpt``, the newest state of the run, from which :func:`fit` resumes exactly.

    It is written every ``every_n_steps`` steps (0: at every epoch end), after the final step, and on request
    (:meth:`save`). An epoch that ``trainer.max_steps`` cuts short is saved at its last step, not at its end:
    Lightning counts such an epoch as complete, and a resume from its end would skip its remaining batches.

    Args:
        path: the file.
        every_n_steps: the step interval (0: epoch ends).

    Attributes:
        saved_step: the step of the newest ``last.ckpt`` written or resumed from (None: none yet).
    """

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path = path
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None
        self._cut_short = False

    def save(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now (between steps: after one step's update, before the next batch)."""
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_step = trainer.global_step

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.saved_step = int(checkpoint["global_step"])

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        end_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        final_step = trainer.max_steps != -1 and step >= trainer.max_steps
        self._cut_short = final_step and not end_of_epoch
        if self.every_n_steps:
            last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
            due = step % self.every_n_steps == 0 or final_step or (end_of_epoch and last_epoch)
        else:
            due = self._cut_short
        if due and self.saved_step != step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_steps and not self._cut_short and self.saved_step != trainer.global_step:
            self.save(trainer)


class _StopGuard(Callback):
    """Stops a run cleanly.

    - A loss that is NaN or infinite raises :class:`LossNotFinite` before its backward pass: the weights and the
      checkpoints stay those of the last good step. (The check reads the loss on the host once per step.)
    - With ``catch_signals``, SIGTERM and SIGINT are noted (from the start of training; Lightning restores the
      earlier handlers when ``fit`` ends) and the run stops after the step in progress, writes ``last.ckpt``
      and raises :class:`Interrupted`. A second SIGINT stops at once (KeyboardInterrupt).
    - On several processes both decisions are taken together (a NaN or a signal on any process stops all of
      them after the same step): one all-reduce of a flag per check.

    Args:
        last: the run's ``last.ckpt`` keeper.
        catch_signals: handle SIGTERM and SIGINT (only in the main thread, where Python delivers signals).
    """

    def __init__(self, last: _LastCheckpoint, catch_signals: bool) -> None:
        self.last = last
        self.catch_signals = catch_signals
        self.received: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        if self.catch_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach())
        if not _on_any_rank(trainer, not math.isfinite(value)):
            return
        saved, last = self.last.saved_step, self.last.path
        kept = (
            f"the last good checkpoint {last} (step {saved}) is kept"
            if saved is not None
            else "no checkpoint had been written yet"
        )
        became = value if not math.isfinite(value) else "non-finite on another process"
        raise LossNotFinite(
            f"the training loss became {became} at step {trainer.global_step}; training stopped and {kept}; "
            "lower method.lr, or look for extreme values in the data",
            trainer.global_step,
            last if saved is not None else None,
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # every rank stops after the same step (the flag is only exchanged when signals are caught)
        if self.catch_signals and _on_any_rank(trainer, self.received is not None):
            self.last.save(trainer)
            raise Interrupted(self.received or signal.SIGTERM, trainer.global_step, self.last.path)


def _on_any_rank(trainer: L.Trainer, flag: bool) -> bool:
    """``flag`` of any process (one all-reduce per call on several processes), so that they all decide alike."""
    return trainer.strategy.reduce_boolean_decision(flag, all=False) if trainer.world_size > 1 else flag


def describe_data(data: DataSplits) -> str:
    """One line: every modality's name, kind and per-sample shape, and the size of each split."""
    kinds = {"tokens": "token ids"}
    mods = ", ".join(
        f"{s.name}: {kinds.get(s.kind, s.kind)} {tuple(s.shape)}" for s in data.train.modality_specs
    )
    sizes = ", ".join(
        f"{len(d)} {name}"
        for name, d in (
            ("train", data.train),
            ("val", data.val),
            ("probe-train", data.probe_train),
            ("test", data.test),
        )
        if d is not None
    )
    return f"modalities {mods}; samples: {sizes}"


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
    """The method of ``cfg`` for data with modalities ``specs`` (augmentation included); its checkpoints
    carry ``cfg``, ``specs`` and ``task``."""
    from commlearn.augment import MultimodalAugment

    augment = MultimodalAugment.for_specs(specs, cfg.method.augment_options) if cfg.method.augment else None
    method = build_method(
        cfg.method.name, specs, cfg.model, augment, cfg.method.optim(), task, cfg.method.options
    )
    method.checkpoint_extra = {
        "config": config_to_dict(cfg),
        "specs": [asdict(s) for s in specs],
        "task": None if task is None else asdict(task),
    }
    return method


@dataclass
class FitResult:
    """What a ``fit`` leaves behind.

    Attributes:
        method: the trained method (in eval mode when the run had finished before).
        data: the data the config describes.
        output: the run folder.
        last_checkpoint: ``output/checkpoints/last.ckpt`` (None if training wrote none).
        finished_before: the run folder already held this run, trained to the requested length: nothing was
            trained and ``method`` was loaded from ``last_checkpoint``.
        is_global_zero: this process is global rank 0, the one that writes (always, on one process): programs
            that run ``fit`` on several processes write their own outputs where it is True.
    """

    method: BaseMethod
    data: DataSplits
    output: Path
    last_checkpoint: Path | None
    finished_before: bool = False
    is_global_zero: bool = True


def on_device(dataset: MultimodalDataset, device: torch.device) -> MultimodalDataset:
    """``dataset`` resident on an accelerator when it supports ``.to(device)`` (else unchanged).

    Batches are then gathered on the device: no host-to-device copy of every batch. Data sets that are
    too large for the accelerator should not implement ``to``.
    """
    move = getattr(dataset, "to", None)
    if device.type == "cpu" or move is None:
        return dataset
    return move(device)  # type: ignore[no-any-return]


RunState = Literal["new", "restart", "resume", "finished"]


def run_state(cfg: RunConfig) -> RunState:
    """What ``fit(cfg)`` does with its run folder ``cfg.trainer.output``; reads it, writes nothing.

    Returns:
        ``"new"`` (no run there), ``"restart"`` (a run there, ``trainer.resume=false``: it is deleted),
        ``"resume"`` (the same run, not trained to the requested length) or ``"finished"`` (the same run,
        trained to the requested length).

    Raises:
        ConfigError: the folder holds another run (the message names the differing keys and the ways out),
            the same run finished past the requested length (its earlier states are not kept), or files that
            are not a commlearn run.
    """
    out = Path(cfg.trainer.output)
    if not any((out / name).exists() for name in _RUN_ENTRIES):
        return "new"
    if not cfg.trainer.resume:
        return "restart"
    ways_out = "choose a new trainer.output, or pass trainer.resume=false to start over (deletes that run)"
    stored = out / "config.yaml"
    if not stored.is_file():
        raise ConfigError(f"{out} holds checkpoints or logs but no config.yaml; {ways_out}")
    try:
        old = yaml.safe_load(stored.read_text())
    except (OSError, yaml.YAMLError):
        old = None
    if not isinstance(old, dict):
        raise ConfigError(f"{stored} is not a readable run config; {ways_out}")
    diffs = config_differences(old, config_to_dict(cfg), ignore=RESUMABLE_KEYS)
    if diffs:
        shown = "; ".join(f"{key}: {a!r} → {b!r}" for key, a, b in diffs[:4])
        more = f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else ""
        raise ConfigError(f"run folder {out} holds a run with another config ({shown}{more}); {ways_out}")
    done = _read_done(out)
    if done is not None:
        max_steps = cfg.trainer.max_steps
        if (max_steps != -1 and done["global_step"] > max_steps) or done["epochs"] > cfg.trainer.max_epochs:
            raise _past_the_length(out, cfg, f"{done['epochs']} epochs, step {done['global_step']}")
        if (max_steps != -1 and done["global_step"] == max_steps) or done["epochs"] == cfg.trainer.max_epochs:
            return "finished"
    return "resume"


def _past_the_length(out: Path, cfg: RunConfig, trained: str) -> ConfigError:
    """The one-line error for a run folder whose run went past the requested length."""
    steps = "" if cfg.trainer.max_steps == -1 else f", trainer.max_steps={cfg.trainer.max_steps}"
    return ConfigError(
        f"run folder {out} holds this run trained past the requested length ({trained}; requested "
        f"trainer.max_epochs={cfg.trainer.max_epochs}{steps}) and keeps no earlier state: raise the length, "
        "choose a new trainer.output, or pass trainer.resume=false to start over (deletes that run)"
    )


def _read_done(out: Path) -> dict[str, int] | None:
    try:
        done = json.loads((out / "done.json").read_text())
        return {"epochs": int(done["epochs"]), "global_step": int(done["global_step"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _clear_run(out: Path) -> None:
    for name in _RUN_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rejected_by_lightning(cfg: RunConfig, error: BaseException) -> ConfigError:
    """A one-line ConfigError for settings Lightning rejected (``MisconfigurationException`` and the like)."""
    t = cfg.trainer
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if t.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        return ConfigError(
            f"trainer.accelerator={t.accelerator} but this machine has no GPU that PyTorch can use ({reason}); "
            "pass trainer.accelerator=cpu, or auto to use a GPU when there is one"
        )
    settings = ", ".join(
        f"trainer.{k}={getattr(t, k)!r}"
        for k in ("accelerator", "devices", "num_nodes", "strategy", "precision")
    )
    return ConfigError(f"Lightning cannot run with {settings}: {reason}")


def _check_global_batch(extra: dict[str, Any], cfg: RunConfig, world_size: int, checkpoint: Path) -> None:
    """Raise a one-line ConfigError unless this run's global batch equals the one ``checkpoint`` trained with."""
    old_world = int(extra.get("world_size", 1))
    old_batch = int(extra["config"]["data"]["batch_size"])
    old, new = old_batch * old_world, cfg.data.batch_size * world_size
    if old == new:
        return
    fix = (
        f"pass data.batch_size={old // world_size}"
        if old % world_size == 0
        else f"use a number of processes that divides {old}"
    )
    raise ConfigError(
        f"checkpoint {checkpoint} trained with a global batch of {old} ({old_batch} per process × {old_world}); "
        f"data.batch_size={cfg.data.batch_size} on {world_size} process(es) makes {new}: {fix} to continue it, "
        "or choose a new trainer.output"
    )


def _batch_norm_across_processes(method: nn.Module, trainer: L.Trainer, batch_size: int) -> None:
    """On several GPU processes, turn every BatchNorm layer (heads and encoders) into SyncBatchNorm: statistics
    over the global batch, as on one process. On CPU, where PyTorch has no SyncBatchNorm, say once that each
    process normalises with its own batch, and go on."""
    world = trainer.world_size
    norms = [m for m in method.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d)]
    if world < 2 or not norms:
        return
    device = trainer.strategy.root_device
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(
            method
        )  # replaces the layers in place; same weights and buffers
        rank_zero_info(f"[commlearn] {len(norms)} BatchNorm layers synchronised over {world} processes")
        return
    rank_zero_warn(
        f"[commlearn] PyTorch has no SyncBatchNorm on {device.type}: the {len(norms)} BatchNorm layers normalise "
        f"each process's batch of {batch_size} samples, not the global batch of {batch_size * world}; "
        "model.head_batch_norm=false (and encoders without BatchNorm) train exactly as one process would"
    )


def _is_global_zero() -> bool:
    """Global rank 0 as Lightning sees it (from the launcher's environment before a Trainer exists)."""
    return int(getattr(rank_zero_only, "rank", 0)) == 0


def fit(cfg: RunConfig, *, catch_signals: bool = False) -> FitResult:
    """Train ``cfg.method`` on the data ``cfg.data`` describes, in the run folder ``cfg.trainer.output``.

    Writes ``config.yaml`` (resolved), ``metrics.csv`` logs, TensorBoard events,
    ``checkpoints/{last,epoch=…}.ckpt`` and at the end ``done.json``. A folder holding the same run resumes
    from ``last.ckpt`` (or, when it was trained to the requested length, returns it untrained); a folder
    holding another run stops with a ConfigError before anything is written (see :func:`run_state`).

    Checkpoints hold the loader's position and the global random states of every process: a run stopped
    mid-epoch and resumed ends with the same weights as an uninterrupted one (on CPU). ``last.ckpt`` holds the
    final step. A NaN or infinite loss stops the run before that step's update (:class:`LossNotFinite`).

    On several processes every process calls ``fit`` (Lightning's launcher, ``torchrun`` or SLURM start them);
    global rank 0 alone writes the run folder. Each process trains on its share of every global batch
    (:class:`BatchLoader`, or the data set's own loader for a :class:`StreamingDataset`), BatchNorm layers are
    synchronised on GPUs (on CPU they keep per-process statistics, with a warning), and the run resumes on
    another number of processes when ``data.batch_size`` × processes is unchanged.

    Args:
        cfg: the run's configuration.
        catch_signals: while training, turn SIGTERM and SIGINT into a clean stop after the step in progress,
            with a checkpoint (:class:`Interrupted`); the process's earlier handlers are back when ``fit``
            returns. For programs that own their process (the ``commlearn`` command line).

    Raises:
        ConfigError: a bad config (including hardware settings Lightning rejects), a run folder that holds
            another run, or a resume with another global batch.
        ValueError: data that cannot be read, or that does not match the checkpoint being resumed.
        TrainingStopped: the loss became NaN or infinite, or (``catch_signals``) a signal stopped the run.
    """
    check_config(cfg)
    state = run_state(cfg)
    out = Path(cfg.trainer.output)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    data = build_data(cfg.data, cfg.trainer.seed)
    specs = list(data.train.modality_specs)
    if state == "finished":
        method, _ = load_method(last)
        return FitResult(method, data, out, last, finished_before=True, is_global_zero=_is_global_zero())
    rank_zero_info(f"[commlearn] {describe_data(data)}")
    val_set: MultimodalDataset | None
    if data.val is not None:  # the data set's own validation split gives the validation loss
        train_set, val_set = data.train, data.val
    elif isinstance(data.train, StreamingDataset) and cfg.data.val_fraction > 0:
        raise ConfigError(
            f"data.val_fraction={cfg.data.val_fraction} holds out random samples, which the streamed data set "
            f"{cfg.data.name!r} cannot: set data.val_fraction=0, or give it a validation split"
        )
    else:
        train_set, val_set = split_dataset(data.train, cfg.data.val_fraction, cfg.trainer.seed)
    method = make_method(cfg, specs, task_info(data.train))
    resume = last if state == "resume" and last.is_file() else None
    checkpoint = read_checkpoint(resume) if resume is not None else {}
    stored = checkpoint.get(CHECKPOINT_KEY)
    if resume is not None and stored is not None:
        check_specs(stored, specs, resume)
    # an interrupted run's progress (it wrote no done.json): the checkpoint's epoch is the index of the epoch
    # it was in (or had just ended), from 0
    epoch, step = int(checkpoint.get("epoch", 0)), int(checkpoint.get("global_step", 0))
    if epoch >= cfg.trainer.max_epochs or -1 < cfg.trainer.max_steps < step:
        raise _past_the_length(out, cfg, f"interrupted in epoch {epoch + 1}, step {step}")
    every = cfg.trainer.checkpoint_every_n_steps
    keeper = _LastCheckpoint(last, every)
    callbacks: list[Any] = [keeper, _RandomStates(cfg.trainer.seed), _StopGuard(keeper, catch_signals)]
    if cfg.trainer.keep_epoch_checkpoints:  # beside last.ckpt: one file per epoch, or the newest step's file
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, save_top_k=-1 if every == 0 else 1, every_n_train_steps=every or None
            )
        )
    if cfg.trainer.progress_bar:
        steps_per_epoch = len(train_set) // cfg.data.batch_size
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(10, steps_per_epoch // 10 or 1))))
    try:
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
            enable_checkpointing=cfg.trainer.keep_epoch_checkpoints,  # else Lightning adds its own
            plugins=[AtomicCheckpointIO()],
            log_every_n_steps=cfg.trainer.log_every_n_steps,
            enable_progress_bar=cfg.trainer.progress_bar,
            enable_model_summary=False,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            deterministic=False,
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as e:
        raise _rejected_by_lightning(cfg, e) from None
    if resume is not None and stored is not None:
        _check_global_batch(stored, cfg, trainer.world_size, resume)
    assert method.checkpoint_extra is not None
    method.checkpoint_extra["world_size"] = trainer.world_size  # the global batch is batch_size × this
    _batch_norm_across_processes(method, trainer, cfg.data.batch_size)
    device = trainer.strategy.root_device
    train_loader: Any
    if isinstance(train_set, StreamingDataset):
        train_loader = train_set.training_loader(cfg.data.batch_size, cfg.trainer.seed)
    else:
        train_loader = BatchLoader(
            on_device(train_set, device),
            cfg.data.batch_size,
            shuffle=True,
            drop_last=True,
            seed=cfg.trainer.seed,
        )
    val_loader = (
        None
        if val_set is None
        else BatchLoader(on_device(val_set, device), min(cfg.data.batch_size, len(val_set)), shuffle=False)
    )
    method.epoch_length = train_loader.__len__  # the schedule's length (read after the processes joined)
    if trainer.is_global_zero:  # the other processes read the folder (run_state) but never write it
        if state == "restart":
            _clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "done.json").unlink(missing_ok=True)  # until this training ends, the run is not done
        _write_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    try:
        trainer.fit(method, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    except MisconfigurationException as e:
        raise _rejected_by_lightning(cfg, e) from None
    if trainer.is_global_zero:
        done = {"epochs": trainer.current_epoch, "global_step": trainer.global_step}
        _write_atomic(out / "done.json", json.dumps(done))
    return FitResult(
        method, data, out, last if last.is_file() else None, is_global_zero=trainer.is_global_zero
    )


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`fit`, loaded with ``weights_only=True``.

    Raises:
        ValueError: a missing file, a file that is not a PyTorch checkpoint, or one that commlearn did not write.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise ValueError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint, or a damaged one ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or CHECKPOINT_KEY not in state or "state_dict" not in state:
        raise ValueError(f"{path} is not a checkpoint written by commlearn fit (no {CHECKPOINT_KEY!r} entry)")
    return state


def _describe(specs: list[ModalitySpec]) -> str:
    return ", ".join(f"{s.name} {s.kind} {tuple(s.shape)}" for s in specs)


def check_specs(extra: dict[str, Any], specs: list[ModalitySpec], checkpoint: Path) -> None:
    """Raise a one-line ValueError unless ``specs`` equal the modality specs stored in a checkpoint."""
    stored = [ModalitySpec(s["name"], s["kind"], tuple(s["shape"])) for s in extra["specs"]]
    if stored != specs:
        raise ValueError(
            f"checkpoint {checkpoint} was trained on modalities [{_describe(stored)}] but its config now "
            f"builds [{_describe(specs)}]: give the data.* settings of the training data"
        )


def load_method(
    checkpoint: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[BaseMethod, RunConfig]:
    """Rebuild a trained method from a checkpoint written by :func:`fit` (in eval mode).

    Raises:
        ValueError: see :func:`read_checkpoint`.
    """
    state = read_checkpoint(checkpoint, map_location)
    extra = state[CHECKPOINT_KEY]
    cfg = config_from_dict(extra["config"])
    specs = [ModalitySpec(s["name"], s["kind"], tuple(s["shape"])) for s in extra["specs"]]
    task = None if extra["task"] is None else TaskInfo(**extra["task"])
    method = make_method(cfg, specs, task)
    method.load_state_dict(state["state_dict"])
    method.eval()
    return method, cfg


def load_run(
    checkpoint: str | Path, data_overrides: list[str] | tuple[str, ...] = ()
) -> tuple[BaseMethod, RunConfig, DataSplits]:
    """A trained method and the data its config describes (with ``data.*`` overrides, e.g. another root).

    Raises:
        ConfigError: an override outside ``data``.
        ValueError: an unreadable checkpoint, or data whose modalities differ from the training data's.
    """
    method, cfg = load_method(checkpoint)
    extra = parse_overrides(data_overrides)
    if set(extra) - {"data"}:
        raise ConfigError(f"only data.* overrides apply here, got {sorted(set(extra) - {'data'})}")
    merge(cfg, extra)
    data = build_data(cfg.data, cfg.trainer.seed)
    stored = read_checkpoint(checkpoint)[CHECKPOINT_KEY]
    check_specs(stored, list(data.train.modality_specs), Path(checkpoint))
    return method, cfg, data
