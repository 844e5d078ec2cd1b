"""Raw text as a ``tokens`` modality: token ids (N, T) int64 and a padding mask (N, T) bool.

Two tokenizers:

- a word-level vocabulary (:class:`WordVocabulary`, the default) built from the **training split only**: texts
  are lower-cased and cut into words (runs of letters and digits, :data:`WORD`); the ``vocab_size - 2`` most
  frequent words seen at least ``min_count`` times get ids 2, 3, … (by decreasing count, ties alphabetically),
  id 0 is padding and id 1 any other word. It is a pure function of the training texts, so a checkpoint that
  rebuilds its data from its config gets the same ids;
- a Hugging Face tokenizer read from local files (``tokenizer: <path>``; needs ``transformers``), for text
  encoders pre-trained with it.

Every text becomes exactly ``max_length`` ids: longer texts keep their first ``max_length`` tokens, shorter
ones are padded at the end (id 0 for the vocabulary, the tokenizer's own padding id otherwise; the mask says
which). A text without a single word becomes one unknown id, so no sample is all padding.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from commlearn.config import ConfigError

__all__ = ["PAD_ID", "UNKNOWN_ID", "WORD", "WordVocabulary", "tokenize_splits", "words"]

PAD_ID = 0
UNKNOWN_ID = 1
#: A word: a run of letters and digits (``_`` and punctuation separate words).
WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (see :data:`WORD`)."""
    return WORD.findall(text.lower())


class WordVocabulary:
    """A word → id table built from training texts (module docstring).

    Args:
        texts: the training texts.
        vocab_size: ids in all, padding and unknown included (≥ 3); the model's ``vocab_size`` must be at least
            this.
        min_count: a word needs this many occurrences in ``texts`` to get its own id (≥ 1).

    Attributes:
        ids: word → id (2 … ``vocab_size`` − 1).

    Raises:
        ConfigError: ``vocab_size < 3`` or ``min_count < 1``.
    """

    def __init__(self, texts: Iterable[str], vocab_size: int = 20_000, min_count: int = 1) -> None:
        if vocab_size < 3 or min_count < 1:
            raise ConfigError(
                f"data.options.vocab_size must be ≥ 3 and min_count ≥ 1, got {vocab_size} and {min_count}"
            )
        counts = Counter(w for text in texts for w in words(text))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        self.ids: dict[str, int] = {w: k + 2 for k, w in enumerate(kept[: vocab_size - 2])}
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        """Ids in use: padding, unknown and the known words (≤ ``vocab_size``)."""
        return len(self.ids) + 2

    def encode(self, texts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
        """Token ids (N, max_length) int64 and padding (N, max_length) bool (True = padding) of ``texts``."""
        ids = torch.full((len(texts), max_length), PAD_ID, dtype=torch.int64)
        for row, text in enumerate(texts):
            seq = [self.ids.get(w, UNKNOWN_ID) for w in words(text)[:max_length]] or [UNKNOWN_ID]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
        return ids, ids == PAD_ID


def _hf_encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    out = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    ids = out["input_ids"].to(torch.int64)
    mask = out.get("attention_mask")
    padding = ids == tokenizer.pad_token_id if mask is None else mask == 0
    return ids, padding


def _hf_tokenizer(path: str) -> Any:
    """A Hugging Face tokenizer from the local folder ``path`` (never from the network)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ConfigError(
            f"data.options.tokenizer: {folder} not found (a local tokenizer folder is expected)"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError(
            "data.options.tokenizer needs the transformers package: pip install transformers "
            "(or leave tokenizer unset for the word vocabulary)"
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"data.options.tokenizer: cannot load a tokenizer from {folder} ({e})") from None
    if tok.pad_token_id is None:
        raise ConfigError(f"data.options.tokenizer: the tokenizer in {folder} has no padding token")
    return tok


def tokenize_splits(
    splits: Sequence[Sequence[str]],
    max_length: int,
    vocab_size: int = 20_000,
    min_count: int = 1,
    tokenizer: str | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Token ids and padding masks of the texts of several splits, the first one being the training split.

    Args:
        splits: per split, its texts (the first split builds the word vocabulary).
        max_length: tokens per text T (≥ 1).
        vocab_size, min_count: the word vocabulary's settings (:class:`WordVocabulary`; unused with
            ``tokenizer``).
        tokenizer: a local folder holding a Hugging Face tokenizer, used instead of the word vocabulary.

    Returns:
        per split, ``(ids (N, T) int64, padding (N, T) bool)``.

    Raises:
        ConfigError: bad settings, a tokenizer that cannot be loaded.
    """
    if max_length < 1:
        raise ConfigError(f"data.options.max_length must be ≥ 1, got {max_length}")
    if tokenizer is not None:
        tok = _hf_tokenizer(tokenizer)
        return [_hf_encode(tok, texts, max_length) for texts in splits]
    vocab = WordVocabulary(splits[0], vocab_size, min_count)
    return [vocab.encode(texts, max_length) for texts in splits]
