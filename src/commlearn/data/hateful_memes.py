"""Hateful Memes (Kiela et al., NeurIPS 2020): a meme's image and its overlaid text; is it hateful (0/1)?

The published folder holds ``img/<id>.png`` and one JSON-lines file per split — ``train.jsonl``,
``dev_seen.jsonl`` (validation) and ``test_seen.jsonl`` (test; the ``*_unseen`` files of the second phase can be
chosen instead) — with one JSON object per line: ``id``, ``img`` (the image's path relative to the folder, e.g.
``img/42953.png``), ``label`` (0 or 1) and ``text``. Images stay on disk and are decoded per batch
(:mod:`commlearn.data.images`); texts become token ids (:mod:`commlearn.data.text`). The task is binary: a
linear probe reports balanced accuracy, accuracy and AUROC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from commlearn.config import ConfigError
from commlearn.data.files import DataFileError, require_key
from commlearn.data.images import ImageTextSplit, image_text_splits
from commlearn.data.splits import DataSplits

__all__ = ["TASK", "load_hateful_memes", "read_jsonl"]

#: The task name of the label column.
TASK = "hateful"
_LINE = "one JSON object per line with id, img, label (0 or 1) and text"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (blank lines skipped).

    Raises:
        DataFileError: a missing or unreadable file, or a line that is not a JSON object (the line number).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFileError(
            f"{path} not found: expected the Hateful Memes file {path.name} ({_LINE})"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"cannot read {path} ({e}); expected {_LINE}") from None
    out = []
    for k, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DataFileError(f"{path} line {k} is not valid JSON ({e}); expected {_LINE}") from None
        if not isinstance(obj, dict):
            raise DataFileError(f"{path} line {k} is a {type(obj).__name__}; expected {_LINE}")
        out.append(obj)
    if not out:
        raise DataFileError(f"{path} holds no samples; expected {_LINE}")
    return out


def _split(folder: Path, name: str) -> ImageTextSplit:
    path = folder / name
    ids: list[int | str] = []
    images: list[Path] = []
    texts: list[str] = []
    labels: list[int] = []
    for k, obj in enumerate(read_jsonl(path), start=1):
        where = f"{path} sample {k}"
        sample_id, img = require_key(obj, "id", where, _LINE), require_key(obj, "img", where, _LINE)
        label, text = require_key(obj, "label", where, _LINE), require_key(obj, "text", where, _LINE)
        if (
            label not in (0, 1)
            or isinstance(label, bool)
            or not isinstance(text, str)
            or not isinstance(img, str)
        ):
            raise DataFileError(
                f"{where}: label {label!r}, text of type {type(text).__name__}, img of type "
                f"{type(img).__name__}; expected label 0 or 1 and text and img strings"
            )
        image = folder / img
        if not image.is_file():
            raise DataFileError(f"{image} not found: {where} names it as its image (img: {img!r})")
        ids.append(sample_id)
        images.append(image)
        texts.append(text)
        labels.append(int(label))
    return ImageTextSplit(ids, images, texts, torch.tensor(labels, dtype=torch.int64))


def load_hateful_memes(
    root: str | None,
    modalities: Sequence[str] | None = None,
    image_size: int = 128,
    max_length: int = 64,
    vocab_size: int = 10_000,
    min_count: int = 1,
    tokenizer: str | None = None,
    num_workers: int = 2,
    val_file: str = "dev_seen.jsonl",
    test_file: str = "test_seen.jsonl",
) -> DataSplits:
    """Hateful Memes with its published split (module docstring).

    Args:
        root: the folder holding ``img/`` and the ``.jsonl`` files.
        modalities: names among ``image`` ((3, S, S) uint8, read from disk per batch) and ``text`` ((T,) token
            ids with a padding mask), in this order (default: both).
        image_size: S: images are resized (shorter side) and centre-cropped to S × S pixels.
        max_length: T: tokens per text.
        vocab_size, min_count: the word vocabulary built from ``train.jsonl``'s texts (ids 0 = padding,
            1 = unknown; the model's ``vocab_size`` must be at least this).
        tokenizer: a local Hugging Face tokenizer folder used instead of the word vocabulary.
        num_workers: DataLoader worker processes that decode the training images.
        val_file, test_file: the validation and test files in ``root``.

    Returns:
        ``DataSplits(train, val, test)``; labels (N,) int64 0/1, task ``hateful`` (multiclass, 2 classes);
        ``ids``: the memes' ids.

    Raises:
        ConfigError: bad options; ``root`` not set.
        DataFileError: a missing, truncated or malformed file.
    """
    if root is None:
        raise ConfigError(
            "data.root is not set: give data.root=<the Hateful Memes folder holding img/ and train.jsonl> "
            "(the files are never downloaded)"
        )
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataFileError(
            f"{folder} not found: data.root must name the folder holding img/ and train.jsonl"
        )
    parts = {"train": _split(folder, "train.jsonl"), "val": _split(folder, val_file)}
    parts["test"] = _split(folder, test_file)
    return image_text_splits(
        parts, modalities, [TASK], "multiclass", image_size, max_length, vocab_size, min_count, tokenizer,
        num_workers,
    )  # fmt: skip
