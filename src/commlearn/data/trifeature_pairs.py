"""Bimodal Trifeature: pairs of Trifeature images with controlled redundancy, uniqueness and synergy.

The controlled experiment of CoMM (Dufumier et al., ICLR 2025): a sample is a pair (x1, x2) of Trifeature
images that always share one attribute (default: the shape — the redundant information R). Each image's own
value of a second attribute (default: texture) is unique information (U1, U2). Synergy S is defined by a fixed
random one-to-one mapping M between the values of ``synergy[0]`` of x1 and ``synergy[1]`` of x2 (default:
texture of x1 → colour of x2): S = 1 iff M[synergy[0](x1)] == synergy[1](x2). "Biased" pre-training pairs
satisfy M always, so a model that fuses both images can learn M; probes use unbiased pairs, where S = 1 for
~10 %.

The mapping is a pure function of (seed, roles.synergy), so pre-training and every probe agree on it.
Pairs (i, j) with i == j (an image paired with itself) are never drawn: x1 and x2 are always two different
renders (the train split holds 3 renders of each combination, so two renders of the same combination
can still be paired).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from commlearn.config import TaskType
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.data.trifeature import (
    _GOLDEN,
    ATTRIBUTES,
    N_VALUES,
    RenderSettings,
    TrifeatureImages,
    _check_seed,
    _mix64,
    load_or_render,
)

TASK_NAMES: tuple[str, ...] = ("R", "U1", "U2", "S")
#: Number of classes of each task in TASK_NAMES.
TASK_CLASSES: tuple[int, ...] = (N_VALUES, N_VALUES, N_VALUES, 2)


@dataclass(frozen=True)
class Roles:
    """Which attribute plays which role in a pair.

    Attributes:
        share: attribute equal in x1 and x2 (redundancy, task R).
        unique: attribute whose value in x1 (task U1) and in x2 (task U2) is unique information.
        synergy: (attribute of x1, attribute of x2) linked by the mapping M (task S).
    """

    share: str = "shape"
    unique: str = "texture"
    synergy: tuple[str, str] = ("texture", "color")

    def __post_init__(self) -> None:
        for role in ("share", "unique"):
            name = getattr(self, role)
            if name not in ATTRIBUTES:
                raise ValueError(f"Roles.{role} must be one of {ATTRIBUTES}, got {name!r}")
        synergy = tuple(self.synergy) if isinstance(self.synergy, tuple | list) else (self.synergy,)
        if len(synergy) != 2 or any(name not in ATTRIBUTES for name in synergy):
            raise ValueError(f"Roles.synergy must be two names from {ATTRIBUTES}, got {self.synergy!r}")
        object.__setattr__(self, "synergy", synergy)
        if self.share == self.unique:
            raise ValueError(f"Roles.share and Roles.unique must differ, got {self.share!r} for both")

    @property
    def share_index(self) -> int:
        """Column of the shared attribute in ``TrifeatureImages.attributes``."""
        return ATTRIBUTES.index(self.share)

    @property
    def unique_index(self) -> int:
        """Column of the unique attribute."""
        return ATTRIBUTES.index(self.unique)

    @property
    def synergy_index(self) -> tuple[int, int]:
        """Columns of the synergy attributes of x1 and of x2."""
        return ATTRIBUTES.index(self.synergy[0]), ATTRIBUTES.index(self.synergy[1])


def synergy_mapping(seed: int, roles: Roles | None = None) -> np.ndarray:
    """The fixed random one-to-one mapping M: value of ``synergy[0]`` (x1) → value of ``synergy[1]`` (x2).

    A pure function of ``seed`` and ``roles.synergy`` (not of the data or of any random state), so the
    pre-training pairs and every probe use the same M.

    Returns:
        (10,) int64 permutation of 0..9: ``M[a]`` is the x2 value linked to x1 value ``a``.
    """
    _check_seed(seed)
    roles = roles if roles is not None else Roles()
    text = f"commlearn-trifeature-mapping|{seed}|{roles.synergy[0]}|{roles.synergy[1]}"
    key = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    ranks = _mix64(np.uint64(key) + np.arange(N_VALUES, dtype=np.uint64) * np.uint64(_GOLDEN))
    return np.argsort(ranks, kind="stable").astype(np.int64)


def _check_mapping(mapping: np.ndarray) -> np.ndarray:
    arr = np.asarray(mapping)
    if arr.shape != (N_VALUES,) or not np.array_equal(np.sort(arr), np.arange(N_VALUES)):
        raise ValueError(
            f"mapping must be a permutation of 0..{N_VALUES - 1} with shape ({N_VALUES},), got {arr!r}"
        )
    return arr.astype(np.int64)


def pair_labels(attributes: Tensor, pairs: Tensor, roles: Roles, mapping: np.ndarray) -> Tensor:
    """Task labels of pairs.

    Args:
        attributes: (N, 3) int64 [shape, texture, color] of the images.
        pairs: (P, 2) int64 indices (x1, x2) into the images.
        roles: attribute roles.
        mapping: (10,) the synergy mapping M.

    Returns:
        (P, 4) int64, columns R (shared attribute), U1 (unique attribute of x1), U2 (unique attribute of
        x2), S (1 iff M[synergy[0] of x1] == synergy[1] of x2).
    """
    m = torch.as_tensor(_check_mapping(mapping))
    a1 = attributes[pairs[:, 0]]
    a2 = attributes[pairs[:, 1]]
    syn1, syn2 = roles.synergy_index
    s = (m[a1[:, syn1]] == a2[:, syn2]).long()
    return torch.stack(
        [a1[:, roles.share_index], a1[:, roles.unique_index], a2[:, roles.unique_index], s], dim=1
    )


class TrifeaturePairs:
    """Pairs of Trifeature images as a batch-indexed bimodal data set (``MultimodalDataset``, and
    ``SharedSourceDataset``: probe features encode each image once, see :meth:`modality_sources`).

    Args:
        images: the rendered split; its image tensor is shared, not copied.
        pairs: (P, 2) int indices (x1, x2) into ``images``.
        roles: attribute roles.
        mapping: (10,) the synergy mapping M.

    Attributes:
        images: (N, 3, H, W) uint8, the split's images (shared).
        attributes: (N, 3) int64 attributes of the images.
        pairs: (P, 2) int64.
        labels: (P, 4) int64, columns ``task_names`` = R, U1, U2, S (see :func:`pair_labels`).
        n_classes: classes per task: [10, 10, 10, 2].
        split: the images' split name.
    """

    task_type: TaskType = "multiclass"

    def __init__(
        self, images: TrifeatureImages, pairs: Tensor | np.ndarray, roles: Roles, mapping: np.ndarray
    ) -> None:
        pairs_t = torch.as_tensor(np.asarray(pairs) if isinstance(pairs, np.ndarray) else pairs)
        if (
            pairs_t.ndim != 2
            or pairs_t.shape[1] != 2
            or pairs_t.dtype.is_floating_point
            or pairs_t.dtype == torch.bool
        ):
            raise ValueError(
                f"pairs must be an integer (P, 2) array, got {pairs_t.dtype} {tuple(pairs_t.shape)}"
            )
        pairs_t = pairs_t.long()
        n = len(images)
        if pairs_t.numel() and (int(pairs_t.min()) < 0 or int(pairs_t.max()) >= n):
            raise ValueError(
                f"pair indices must be in [0, {n}), got range [{int(pairs_t.min())}, {int(pairs_t.max())}]"
            )
        self.source = images
        self.images = images.images
        self.attributes = images.attributes
        self.split = images.split
        self.pairs = pairs_t
        self.roles = roles
        self.mapping = _check_mapping(mapping)
        self.labels = pair_labels(self.attributes, self.pairs, roles, self.mapping)
        shape = tuple(int(s) for s in self.images.shape[1:])
        self.modality_specs = [ModalitySpec("image1", "image", shape), ModalitySpec("image2", "image", shape)]
        self.task_names = list(TASK_NAMES)
        self.n_classes = list(TASK_CLASSES)

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def to(self, device: torch.device | str) -> TrifeaturePairs:
        """A view of the same pairs whose images, pairs and labels live on ``device`` (one copy of each)."""
        moved = copy.copy(self)
        moved.images = self.images.to(device)
        moved.pairs = self.pairs.to(device)
        moved.labels = self.labels.to(device)
        return moved

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        """Pairs ``index`` (B,) int64: inputs [x1, x2], each (B, 3, H, W) uint8; labels (B, 4) int64."""
        pairs = self.pairs[index]
        return MultimodalBatch(
            inputs=[self.images[pairs[:, 0]], self.images[pairs[:, 1]]], labels=self.labels[index]
        )

    def modality_sources(self) -> list[tuple[Tensor, Tensor]]:
        """``[(images, pairs[:, 0]), (images, pairs[:, 1])]``: both modalities gather rows of the split's
        images (N, 3, H, W) uint8 (shared, not copied, so it may hold images no pair uses) with (P,) int64
        indices (the :class:`~commlearn.data.base.SharedSourceDataset` protocol)."""
        return [(self.images, self.pairs[:, 0]), (self.images, self.pairs[:, 1])]


# ------------------------------------------------------------------------------------------- sampling
@dataclass
class _Blocks:
    """Allowed pairs as a union of blocks A_b x B_b (minus i == j), members concatenated.

    a_members / b_members: concatenated member indices; a_start / b_start / a_size / b_size: (n_blocks,)
    per-block slices; excluded: sorted flat positions of the (i, i) pairs in the blocks' enumeration.
    """

    a_members: np.ndarray
    b_members: np.ndarray
    a_start: np.ndarray
    b_start: np.ndarray
    a_size: np.ndarray
    b_size: np.ndarray
    excluded: np.ndarray

    @property
    def flat_start(self) -> np.ndarray:
        sizes = self.a_size * self.b_size
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @property
    def n_allowed(self) -> int:
        return int((self.a_size * self.b_size).sum()) - int(self.excluded.size)


def _pair_blocks(attributes: np.ndarray, roles: Roles, mapping: np.ndarray, biased: bool) -> _Blocks:
    """Enumerate the allowed (x1, x2) pairs implicitly, one block per value of the shared attribute
    (unbiased) or per (shared value, synergy[0] value of x1) (biased)."""
    share = attributes[:, roles.share_index]
    syn1 = attributes[:, roles.synergy_index[0]]
    syn2 = attributes[:, roles.synergy_index[1]]
    a_list: list[np.ndarray] = []
    b_list: list[np.ndarray] = []
    for s in range(N_VALUES):  # loops over attribute values (<= 100 blocks), never over pairs
        same = share == s
        if biased:
            for a in range(N_VALUES):
                a_list.append(np.flatnonzero(same & (syn1 == a)))
                b_list.append(np.flatnonzero(same & (syn2 == mapping[a])))
        else:
            members = np.flatnonzero(same)
            a_list.append(members)
            b_list.append(members)
    a_size = np.array([len(x) for x in a_list], dtype=np.int64)
    b_size = np.array([len(x) for x in b_list], dtype=np.int64)
    a_start = np.concatenate([[0], np.cumsum(a_size)[:-1]]).astype(np.int64)
    b_start = np.concatenate([[0], np.cumsum(b_size)[:-1]]).astype(np.int64)
    blocks = _Blocks(
        a_members=np.concatenate(a_list).astype(np.int64),
        b_members=np.concatenate(b_list).astype(np.int64),
        a_start=a_start,
        b_start=b_start,
        a_size=a_size,
        b_size=b_size,
        excluded=np.zeros(0, dtype=np.int64),
    )
    flat_start = blocks.flat_start
    excluded = []
    for blk, (a_mem, b_mem) in enumerate(zip(a_list, b_list, strict=True)):
        _, ia, ib = np.intersect1d(a_mem, b_mem, assume_unique=True, return_indices=True)
        excluded.append(flat_start[blk] + ia.astype(np.int64) * b_size[blk] + ib.astype(np.int64))
    blocks.excluded = np.sort(np.concatenate(excluded)).astype(np.int64)
    return blocks


def count_pairs(images: TrifeatureImages, roles: Roles, mapping: np.ndarray, biased: bool) -> int:
    """Number of allowed ordered pairs (i != j sharing ``roles.share``; biased: also satisfying M)."""
    blocks = _pair_blocks(images.attributes.numpy(), roles, _check_mapping(mapping), biased)
    return blocks.n_allowed


def sample_pairs(
    images: TrifeatureImages,
    n_pairs: int | None,
    roles: Roles,
    mapping: np.ndarray,
    biased: bool,
    seed: int,
) -> TrifeaturePairs:
    """Draw ordered pairs (x1, x2) without replacement from the allowed pairs of one split.

    Allowed pairs: i != j with equal ``roles.share`` attribute; if ``biased``, also
    M[synergy[0] of x1] == synergy[1] of x2. The allowed set is never materialised: pairs are indexed by
    blocks of images with equal attribute values, ``n_pairs`` flat indices are drawn without replacement
    and decoded with array arithmetic.

    Args:
        images: the split to pair.
        n_pairs: number of pairs; None → all allowed pairs (in random order).
        roles: attribute roles.
        mapping: (10,) the synergy mapping M.
        biased: draw only pairs that satisfy M.
        seed: non-negative int; the result is a pure function of the arguments.

    Returns:
        The pairs as a :class:`TrifeaturePairs` (in random order).

    Raises:
        ValueError: if ``n_pairs`` < 1 or exceeds the number of allowed pairs, or on a bad mapping or seed.
    """
    _check_seed(seed)
    mapping = _check_mapping(mapping)
    blocks = _pair_blocks(images.attributes.numpy(), roles, mapping, biased)
    total = blocks.n_allowed
    kind = "biased" if biased else "unbiased"
    if n_pairs is None:
        n_pairs = total
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int | np.integer) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive int or None, got {n_pairs!r}")
    if n_pairs > total:
        raise ValueError(
            f"asked for {n_pairs} {kind} pairs but the {images.split} split has only {total} allowed pairs "
            f"sharing {roles.share!r}"
        )
    rng = np.random.default_rng(seed)
    rank = rng.choice(total, size=int(n_pairs), replace=False).astype(np.int64)
    # rank among allowed positions → flat position, skipping the excluded (i, i) positions
    shifted = blocks.excluded - np.arange(blocks.excluded.size, dtype=np.int64)
    flat = rank + np.searchsorted(shifted, rank, side="right")
    flat_start = blocks.flat_start
    blk = np.searchsorted(flat_start, flat, side="right") - 1
    r = flat - flat_start[blk]
    p = r // blocks.b_size[blk]
    q = r % blocks.b_size[blk]
    first = blocks.a_members[blocks.a_start[blk] + p]
    second = blocks.b_members[blocks.b_start[blk] + q]
    return TrifeaturePairs(images, np.stack([first, second], axis=1), roles, mapping)


# ---------------------------------------------------------------------------------------------- builder
@dataclass
class TrifeatureData:
    """Everything the bimodal Trifeature experiment needs.

    Attributes:
        pretrain_unbiased: unbiased train-split pairs for pre-training (R and U runs).
        pretrain_biased: train-split pairs that all satisfy M (synergy runs).
        probe_train: unbiased train-split pairs to fit the linear probes.
        probe_test: unbiased test-split pairs (unseen combinations) to score them.
        mapping: (10,) the synergy mapping M shared by all of the above.
        roles: attribute roles.
        settings: render settings.
    """

    pretrain_unbiased: TrifeaturePairs
    pretrain_biased: TrifeaturePairs
    probe_train: TrifeaturePairs
    probe_test: TrifeaturePairs
    mapping: np.ndarray
    roles: Roles
    settings: RenderSettings


def _derived_seed(seed: int, purpose: int) -> int:
    return int(np.random.SeedSequence([int(seed), purpose]).generate_state(1, dtype=np.uint32)[0])


def build_trifeature(
    settings: RenderSettings | None = None,
    seed: int = 0,
    roles: Roles | None = None,
    n_train_pairs: int = 10_000,
    n_probe_train_pairs: int = 6_000,
    n_probe_test_pairs: int | None = None,
    cache_dir: str | Path | None = None,
) -> TrifeatureData:
    """Render (or load from the cache) the splits and draw every pair set of the experiment.

    Args:
        settings: render settings (default: CPU preset).
        seed: non-negative int; everything returned is a pure function of it (and of the other arguments).
        roles: attribute roles (default: share shape, unique texture, synergy texture → colour).
        n_train_pairs: size of each pre-training pair set (unbiased and biased).
        n_probe_train_pairs: unbiased train-split pairs for fitting probes.
        n_probe_test_pairs: unbiased test-split pairs for scoring probes; None → all of them (the test split
            has 200 images, about 20 per shape, so about 3800 ordered pairs).
        cache_dir: image cache folder (None → the default cache folder).

    Returns:
        A :class:`TrifeatureData`.
    """
    settings = settings if settings is not None else RenderSettings()
    roles = roles if roles is not None else Roles()
    train, test = load_or_render(settings, seed, cache_dir)
    mapping = synergy_mapping(seed, roles)
    return TrifeatureData(
        pretrain_unbiased=sample_pairs(train, n_train_pairs, roles, mapping, False, _derived_seed(seed, 0)),
        pretrain_biased=sample_pairs(train, n_train_pairs, roles, mapping, True, _derived_seed(seed, 1)),
        probe_train=sample_pairs(train, n_probe_train_pairs, roles, mapping, False, _derived_seed(seed, 2)),
        probe_test=sample_pairs(test, n_probe_test_pairs, roles, mapping, False, _derived_seed(seed, 3)),
        mapping=mapping,
        roles=roles,
        settings=settings,
    )
