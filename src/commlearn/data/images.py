"""Images that stay on disk: JPEG / PNG files decoded and resized per batch, by DataLoader workers in training.

A :class:`FileImageDataset` is a batch-indexed data set (:class:`~commlearn.data.base.MultimodalDataset`) whose
image modalities are files (:class:`ImageFiles`) and whose other modalities (token ids, vectors …) and labels
are in memory. ``get_batch`` decodes the batch's files in the calling process (probing, validation, the shard
writer); the training loader it makes (:meth:`FileImageDataset.training_loader`) is a
:class:`~commlearn.data.loader.BatchLoader` whose ``num_workers`` worker processes call ``get_batch`` on
whole index batches, so the order of the batches, their split across processes and resuming are the
``BatchLoader``'s. Batches hold images as uint8 (B, C, S, S); augmentation stays batched on the training device.

Decoding (:func:`read_image`, Pillow): the file is converted to RGB (or grey), its shorter side resized to S
(bilinear, antialiased; a JPEG is first decoded at the smallest of its 1/2, 1/4, 1/8 scales that is still at
least S), then the centre S × S square is kept — torchvision's ``Resize(S)`` + ``CenterCrop(S)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from commlearn.config import ConfigError, TaskType
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.data.files import DataFileError
from commlearn.data.loader import BatchLoader
from commlearn.data.splits import DataSplits
from commlearn.data.text import tokenize_splits

__all__ = ["FileImageDataset", "ImageFiles", "ImageTextSplit", "image_text_splits", "read_image"]


def read_image(path: str | Path, size: int, channels: int = 3) -> np.ndarray:
    """One image file decoded, resized (shorter side → ``size``) and centre-cropped (module docstring).

    Args:
        path: a JPEG, PNG or any other file Pillow reads.
        size: the side S of the square result, pixels.
        channels: 3 (RGB) or 1 (grey).

    Returns:
        (S, S, channels) uint8.

    Raises:
        DataFileError: a missing, truncated or corrupt file (one line naming it).
    """
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as img:
            w, h = img.size
            scale = size / min(w, h)
            target = (max(size, round(w * scale)), max(size, round(h * scale)))
            # a JPEG is decoded at the smallest DCT scale still ≥ the target (no-op for other formats)
            img.draft(mode, target)
            rgb = img.convert(mode)
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BILINEAR)
            left, top = (target[0] - size) // 2, (target[1] - size) // 2
            pixels = np.asarray(rgb.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except FileNotFoundError:
        raise DataFileError(f"{path} not found: expected an image file (JPEG or PNG)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise DataFileError(
            f"cannot decode {path}: truncated or not an image ({e}); expected a JPEG or PNG file"
        ) from None
    return pixels.reshape(size, size, channels)


@dataclass(frozen=True)
class ImageFiles:
    """An image modality stored as one file per sample.

    Attributes:
        paths: N image files, one per sample.
        size: side S of the square images a batch holds, pixels.
        channels: 3 (RGB) or 1 (grey).
    """

    paths: tuple[Path, ...]
    size: int
    channels: int = 3

    def __post_init__(self) -> None:
        if self.size < 1 or self.channels not in (1, 3):
            raise ConfigError(
                f"images need a size ≥ 1 and 1 or 3 channels, got size {self.size}, channels {self.channels}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: Tensor) -> Tensor:
        """Images (B, C, S, S) uint8 of samples ``index`` (B,) int64."""
        out = np.empty((len(index), self.size, self.size, self.channels), dtype=np.uint8)
        for row, i in enumerate(index.tolist()):
            out[row] = read_image(self.paths[i], self.size, self.channels)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class FileImageDataset:
    """A batch-indexed data set whose image modalities stay on disk (module docstring).

    Args:
        inputs: n modalities, each :class:`ImageFiles` or an in-memory tensor (N, ...).
        specs: n modality specs (an image's is ``(C, S, S)``).
        labels: None, (N,) or (N, K).
        padding: n entries of None or bool (N, T), True = padding (in-memory sequences and token ids).
        task_names: names of the label columns.
        task_type: how the labels are probed.
        ids: optional N sample ids (numbers or strings), carried by exported embeddings.
        num_workers: worker processes of the training loader (0: decode in the training process).

    Raises:
        ValueError: modalities of different lengths, or specs that do not match them.
    """

    def __init__(
        self,
        inputs: Sequence[ImageFiles | Tensor],
        specs: Sequence[ModalitySpec],
        labels: Tensor | None = None,
        padding: Sequence[Tensor | None] | None = None,
        task_names: Sequence[str] = (),
        task_type: TaskType = "multiclass",
        ids: Sequence[int | str] | None = None,
        num_workers: int = 2,
    ) -> None:
        self.inputs = list(inputs)
        self.modality_specs = list(specs)
        self.padding: list[Tensor | None] = list(padding) if padding is not None else [None] * len(inputs)
        if not self.inputs or len({len(self.inputs), len(self.modality_specs), len(self.padding)}) != 1:
            raise ValueError(
                f"{len(self.inputs)} modalities, {len(self.modality_specs)} specs and {len(self.padding)} "
                "padding entries: one of each per modality is needed"
            )
        n = len(self.inputs[0])
        for x, spec in zip(self.inputs, self.modality_specs, strict=True):
            shape = (x.channels, x.size, x.size) if isinstance(x, ImageFiles) else tuple(x.shape[1:])
            if len(x) != n or shape != spec.shape:
                raise ValueError(
                    f"modality {spec.name!r} has {len(x)} samples of shape {shape}; expected {n} of {spec.shape}"
                )
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels have {len(labels)} rows but the modalities have {n} samples")
        if num_workers < 0:
            raise ConfigError(f"data.options.num_workers must be ≥ 0, got {num_workers}")
        self.labels = labels
        self.task_names = list(task_names)
        self.task_type: TaskType = task_type
        self.ids = None if ids is None else np.asarray(ids)
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.inputs[0])

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        """Samples ``index`` (B,) int64: images decoded from their files, the rest gathered from memory."""
        index = index.cpu()
        return MultimodalBatch(
            inputs=[x.read(index) if isinstance(x, ImageFiles) else x[index] for x in self.inputs],
            padding=[None if p is None else p[index] for p in self.padding],
            labels=None if self.labels is None else self.labels[index],
        )

    def training_loader(self, batch_size: int, seed: int) -> BatchLoader:
        """The training loader: shuffled full batches, decoded by ``num_workers`` worker processes."""
        return BatchLoader(
            self, batch_size, shuffle=True, drop_last=True, seed=seed, num_workers=self.num_workers
        )


@dataclass
class ImageTextSplit:
    """One split of an image + text data set as read from its files.

    Attributes:
        ids: N sample ids.
        images: N image files.
        texts: N texts.
        labels: (N,) or (N, K) labels.
    """

    ids: Sequence[int | str]
    images: Sequence[Path]
    texts: Sequence[str]
    labels: Tensor


IMAGE_TEXT_MODALITIES = ("image", "text")


def image_text_splits(
    splits: dict[str, ImageTextSplit],
    modalities: Sequence[str] | None,
    task_names: Sequence[str],
    task_type: TaskType,
    image_size: int,
    max_length: int,
    vocab_size: int,
    min_count: int,
    tokenizer: str | None,
    num_workers: int,
) -> DataSplits:
    """The :class:`DataSplits` of an image + text data set: images stay files, texts become token ids.

    Args:
        splits: ``train`` and optionally ``val`` and ``test``, as read from the files.
        modalities: names among ``image`` (files → (3, S, S) uint8) and ``text`` (token ids (T,)), in the
            order wanted (default: both).
        task_names, task_type: the labels' task.
        image_size: S, pixels.
        max_length, vocab_size, min_count, tokenizer: see :func:`~commlearn.data.text.tokenize_splits`.
        num_workers: worker processes that decode the training images.

    Raises:
        ConfigError: unknown modalities or bad settings.
    """
    chosen = list(modalities) if modalities is not None else list(IMAGE_TEXT_MODALITIES)
    if not chosen or len(set(chosen)) != len(chosen) or any(m not in IMAGE_TEXT_MODALITIES for m in chosen):
        raise ConfigError(
            f"data.options.modalities must list distinct names among {list(IMAGE_TEXT_MODALITIES)}, got {chosen}"
        )
    if image_size < 1:
        raise ConfigError(f"data.options.image_size must be ≥ 1, got {image_size}")
    names = list(splits)
    tokens = (
        tokenize_splits([splits[s].texts for s in names], max_length, vocab_size, min_count, tokenizer)
        if "text" in chosen
        else None
    )
    built: dict[str, FileImageDataset] = {}
    for k, name in enumerate(names):
        part = splits[name]
        inputs: list[ImageFiles | Tensor] = []
        specs: list[ModalitySpec] = []
        padding: list[Tensor | None] = []
        for modality in chosen:
            if modality == "image":
                inputs.append(ImageFiles(tuple(part.images), image_size))
                specs.append(ModalitySpec("image", "image", (3, image_size, image_size)))
                padding.append(None)
            else:
                assert tokens is not None
                ids, pad = tokens[k]
                inputs.append(ids)
                specs.append(ModalitySpec("text", "tokens", (int(ids.shape[1]),)))
                padding.append(pad)
        built[name] = FileImageDataset(
            inputs, specs, part.labels, padding, task_names, task_type, part.ids, num_workers
        )
    return DataSplits(train=built["train"], val=built.get("val"), test=built.get("test"))
