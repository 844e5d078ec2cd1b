"""Vision&Touch (Lee, Zhu et al., ICRA 2019, as used by MultiBench and CoMM): ``triangle_real_data/*.h5``.

One HDF5 file per episode of L = 50 steps, holding (among others) ``image`` (L, 128, 128, 3) uint8,
``ee_forces_continuous`` (L, 50, 6) force/torque readings, ``proprio`` (L, 8) and ``contact`` (L, 50). A sample
is a step t < L - 1 of a file:

* ``image`` — ``image[t]`` as (3, S, S) uint8 (S = 128, or ``image_size`` when resized);
* ``force`` — the last 32 readings of ``ee_forces_continuous[t]`` through tanh, a (32, 6) ``sequence``;
* ``proprio`` — ``proprio[t][:8]``, an (8,) ``vector``;
* targets: ``ee_yaw_next`` = ``proprio[t + 1][:4]`` (regression, 4 columns) or ``contact_next`` =
  ``contact[t + 1].sum() > 0`` (binary).

Split (the public code's): the ``.h5`` file names sorted, their indices shuffled by
``np.random.default_rng(42)``, the last ``int(0.2 · n_files)`` of them the test episodes. No validation split
is published (the public code validates on the test episodes); ``DataSplits.val`` is None.

Memory. Images are read from the files per batch (≈ 49 KB a sample, ~7 GB for the ~146 k samples): each
process keeps at most :data:`MAX_OPEN_FILES` read-only handles, reopened after a fork, never pickled. Force,
proprioception and targets are read once when the data set is built and kept in memory, ≈ 40 KB per
episode (about 120 MB for ~3 000 episodes); building opens every file once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from commlearn.config import ConfigError, TaskType
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.data.files import DataFileError
from commlearn.data.splits import DataSplits

__all__ = [
    "MAX_OPEN_FILES",
    "VT_MODALITIES",
    "VT_TASKS",
    "VisionTouchEpisodes",
    "load_vision_touch",
    "vt_split",
]

VT_MODALITIES = ("image", "force", "proprio")
VT_TASKS = ("ee_yaw_next", "contact_next")
MAX_OPEN_FILES = 64
_EXPECTED = (
    "a Vision&Touch episode with datasets image (L, 128, 128, 3) uint8, ee_forces_continuous (L, 50, 6), "
    "proprio (L, 8), contact (L, 50)"
)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency of the data extras
        raise ConfigError("reading Vision&Touch needs h5py: pip install h5py") from None
    return h5py


def vt_split(n_files: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The published episode split: ``(train, test)`` indices into the sorted file list."""
    idx = np.arange(n_files)
    np.random.default_rng(42).shuffle(idx)
    n_test = int(test_fraction * n_files)
    return idx[: n_files - n_test], idx[n_files - n_test :]


def _dataset(handle: Any, key: str, path: Path) -> Any:
    if key not in handle:
        raise DataFileError(f"{path} has no dataset {key!r}; expected {_EXPECTED}")
    return handle[key]


def _check_shape(ds: Any, path: Path, key: str, ndim: int, expected: str, length: int | None) -> None:
    shape = tuple(ds.shape)
    if len(shape) != ndim or (length is not None and shape[0] != length):
        raise DataFileError(f"{path}: {key} has shape {shape}, expected {expected}")


def _finite(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if not np.isfinite(x).all():
        raise DataFileError(f"{path}: {key} holds NaN or Inf values; expected finite readings")
    return x


@dataclass
class _Episode:
    """What one episode file contributes: its length, image size, and the per-step arrays kept in memory."""

    length: int
    image_hw: tuple[int, int] | None
    force: np.ndarray | None  # (L - 1, window, 6) float32, through tanh
    proprio: np.ndarray  # (L - 1, 8) float32
    target: np.ndarray  # (L - 1, 4) float32 or (L - 1,) int64


def _read_episode(
    handle: Any, path: Path, modalities: Sequence[str], task: str, force_window: int
) -> _Episode:
    """Check one open episode file and read its force, proprioception and targets (not its images)."""
    proprio_ds = _dataset(handle, "proprio", path)
    length = int(proprio_ds.shape[0]) if proprio_ds.ndim else 0
    if proprio_ds.ndim != 2 or length < 2 or proprio_ds.shape[1] < 8:
        raise DataFileError(f"{path}: proprio has shape {proprio_ds.shape}, expected (L, 8) with L ≥ 2 steps")
    proprio = _finite(np.asarray(proprio_ds[()], dtype=np.float32), path, "proprio")
    image_hw = None
    if "image" in modalities:
        image = _dataset(handle, "image", path)
        _check_shape(image, path, "image", 4, f"(L={length}, H, W, 3) uint8", length)
        if image.shape[3] != 3 or image.dtype != np.uint8:
            raise DataFileError(
                f"{path}: image has shape {image.shape} {image.dtype}, expected (L={length}, H, W, 3) uint8"
            )
        image_hw = (int(image.shape[1]), int(image.shape[2]))
    force = None
    if "force" in modalities:
        force_ds = _dataset(handle, "ee_forces_continuous", path)
        _check_shape(force_ds, path, "ee_forces_continuous", 3, f"(L={length}, R, 6)", length)
        if force_ds.shape[1] < force_window:
            raise DataFileError(
                f"{path}: ee_forces_continuous has {force_ds.shape[1]} readings per step, expected at least "
                f"force_window={force_window}"
            )
        readings = np.asarray(force_ds[()], dtype=np.float32)[: length - 1, -force_window:]
        force = np.tanh(_finite(readings, path, "ee_forces_continuous"))
    if task == "contact_next":
        contact_ds = _dataset(handle, "contact", path)
        if contact_ds.ndim < 1 or contact_ds.shape[0] != length:
            raise DataFileError(f"{path}: contact has shape {contact_ds.shape}, expected (L={length}, 50)")
        contact = np.asarray(contact_ds[()], dtype=np.float32).reshape(length, -1)
        target = (contact[1:].sum(axis=1) > 0).astype(np.int64)
    else:
        target = proprio[1:, :4]
    return _Episode(length, image_hw, force, proprio[: length - 1, :8], target)


class VisionTouchEpisodes:
    """Samples (episode, step) of some Vision&Touch episode files, batch-indexed; images read lazily.

    Args:
        files: the episode files.
        modalities: names among :data:`VT_MODALITIES`, in batch order.
        task: ``"ee_yaw_next"`` (regression, 4 targets) or ``"contact_next"`` (binary).
        image_size: side S of the images handed out (resized with antialiasing when it differs from the
            files').
        force_window: force readings kept per step (the last ones).

    Raises:
        DataFileError: a file that is missing, truncated or lacks a dataset, or datasets of unexpected shapes.
    """

    def __init__(
        self,
        files: Sequence[Path],
        modalities: Sequence[str],
        task: str,
        image_size: int | None = None,
        force_window: int = 32,
    ) -> None:
        h5py = _h5py()
        self.files = [Path(f) for f in files]
        self.modalities = list(modalities)
        self.task_names = [task]
        self.task_type: TaskType = "regression" if task == "ee_yaw_next" else "multiclass"
        episodes: list[_Episode] = []
        for path in self.files:
            try:
                with h5py.File(path, "r") as handle:
                    episode = _read_episode(handle, path, self.modalities, task, force_window)
            except OSError as e:  # opening, or reading a damaged dataset
                raise DataFileError(
                    f"cannot read {path}: truncated or not an HDF5 file ({e}); expected {_EXPECTED}"
                ) from None
            if episodes and episode.image_hw != episodes[0].image_hw:
                raise DataFileError(
                    f"{path}: images of {episode.image_hw} px, but {self.files[0]} has {episodes[0].image_hw}; "
                    "expected one image size for all episodes"
                )
            episodes.append(episode)
        steps = [e.length - 1 for e in episodes]
        image_hw = episodes[0].image_hw if episodes else None
        self.steps = torch.tensor(steps, dtype=torch.int64)
        self.episode = torch.repeat_interleave(torch.arange(len(self.files)), self.steps)
        offsets = torch.cumsum(self.steps, 0) - self.steps
        self.step = torch.arange(int(self.steps.sum())) - offsets[self.episode]
        forces = [e.force for e in episodes if e.force is not None]
        self.force = torch.from_numpy(np.concatenate(forces)) if forces else None
        proprio = torch.from_numpy(np.concatenate([e.proprio for e in episodes]))
        self.proprio = proprio if "proprio" in modalities else None
        self.labels: Tensor | None = torch.from_numpy(np.concatenate([e.target for e in episodes]))
        self.source_hw = image_hw
        self.image_size = int(image_size if image_size is not None else (image_hw[0] if image_hw else 128))
        specs = {
            "image": ModalitySpec("image", "image", (3, self.image_size, self.image_size)),
            "force": ModalitySpec("force", "sequence", (force_window, 6)),
            "proprio": ModalitySpec("proprio", "vector", (8,)),
        }
        self.modality_specs = [specs[m] for m in self.modalities]
        self._handles: OrderedDict[int, Any] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.episode.numel())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()  # handles never cross processes
        return state

    def _handle(self, episode: int) -> Any:
        if os.getpid() != self._pid:  # a forked worker: the parent's handles are not ours
            self._handles = OrderedDict()
            self._pid = os.getpid()
        handle = self._handles.pop(episode, None)
        if handle is None:
            path = self.files[episode]
            try:
                handle = _h5py().File(path, "r")
            except OSError as e:
                raise DataFileError(f"cannot read {path}: {e}; expected {_EXPECTED}") from None
            while len(self._handles) >= MAX_OPEN_FILES:
                self._handles.popitem(last=False)[1].close()
        self._handles[episode] = handle
        return handle

    def close(self) -> None:
        """Close the open file handles of this process."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _images(self, index: Tensor) -> Tensor:
        """Images (B, 3, S, S) uint8 of samples ``index``: one read per episode involved."""
        assert self.source_hw is not None
        h, w = self.source_hw
        out = torch.empty((len(index), h, w, 3), dtype=torch.uint8)
        episodes = self.episode[index]
        steps = self.step[index]
        for ep in torch.unique(episodes).tolist():
            rows = (episodes == ep).nonzero().flatten()
            wanted, inverse = torch.unique(steps[rows], return_inverse=True)  # h5py wants increasing indices
            try:
                block = self._handle(ep)["image"][wanted.numpy()]
            except OSError as e:
                raise DataFileError(f"cannot read images of {self.files[ep]}: {e}") from None
            out[rows] = torch.from_numpy(np.ascontiguousarray(block))[inverse]
        images = out.permute(0, 3, 1, 2)
        if (h, w) != (self.image_size, self.image_size):
            resized = F.interpolate(
                images.float(),
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            images = resized.round_().clamp_(0, 255).to(torch.uint8)
        return images.contiguous()

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        """Samples ``index`` (B,) int64: the selected modalities and the targets."""
        index = index.cpu()
        inputs: list[Tensor] = []
        for name in self.modalities:
            if name == "image":
                inputs.append(self._images(index))
            elif name == "force":
                assert self.force is not None
                inputs.append(self.force[index])
            else:
                assert self.proprio is not None
                inputs.append(self.proprio[index])
        return MultimodalBatch(
            inputs, [None] * len(inputs), None if self.labels is None else self.labels[index]
        )


def _episode_files(root: str | None) -> list[Path]:
    if root is None:
        raise ConfigError(
            "data.root is not set: give data.root=<the triangle_real_data folder of Vision&Touch .h5 episodes> "
            "(the files are never downloaded)"
        )
    folder = Path(root).expanduser()
    if folder.is_dir() and not any(folder.glob("*.h5")) and (folder / "triangle_real_data").is_dir():
        folder = folder / "triangle_real_data"
    if not folder.is_dir():
        raise DataFileError(
            f"{folder} not found: data.root must name the triangle_real_data folder of .h5 episodes"
        )
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".h5")), key=lambda p: p.name)
    if not files:
        raise DataFileError(
            f"no .h5 files in {folder}: expected the Vision&Touch triangle_real_data/*.h5 episodes"
        )
    return files


def load_vision_touch(
    root: str | None,
    modalities: Sequence[str] | None = None,
    task: str = "ee_yaw_next",
    image_size: int | None = None,
    force_window: int = 32,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Vision&Touch episodes with the published episode split (see the module docstring).

    Args:
        root: the ``triangle_real_data`` folder (or the folder holding it).
        modalities: names among ``image``, ``force``, ``proprio`` (default: all three).
        task: ``"ee_yaw_next"`` (regression, MSE) or ``"contact_next"`` (binary, balanced accuracy).
        image_size: resize images to this side (None: keep the files' 128 px).
        force_window: force readings per step (the last ones; the public code: 32).
        test_fraction: share of episodes in the test split (the public code: 0.2).

    Returns:
        ``DataSplits(train, test=test)``.

    Raises:
        ConfigError: bad option; ``root`` not set.
        DataFileError: missing folder or files, truncated or malformed files.
    """
    chosen = list(modalities) if modalities is not None else list(VT_MODALITIES)
    if not chosen or len(set(chosen)) != len(chosen) or any(m not in VT_MODALITIES for m in chosen):
        raise ConfigError(
            f"data.options.modalities must list distinct names among {list(VT_MODALITIES)}, got {chosen}"
        )
    if task not in VT_TASKS:
        raise ConfigError(f"data.options.task must be one of {list(VT_TASKS)}, got {task!r}")
    if image_size is not None and image_size < 8:
        raise ConfigError(f"data.options.image_size must be ≥ 8 px (or null), got {image_size}")
    if force_window < 1:
        raise ConfigError(f"data.options.force_window must be ≥ 1, got {force_window}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.options.test_fraction must be in (0, 1), got {test_fraction}")
    files = _episode_files(root)
    train_idx, test_idx = vt_split(len(files), test_fraction)
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise DataFileError(
            f"{len(files)} episode file(s) in {files[0].parent}: too few for a train/test split of episodes"
        )
    train = VisionTouchEpisodes([files[i] for i in train_idx], chosen, task, image_size, force_window)
    test = VisionTouchEpisodes([files[i] for i in test_idx], chosen, task, image_size, force_window)
    return DataSplits(train=train, test=test)
