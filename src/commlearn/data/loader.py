"""A batch loader for batch-indexed data sets: one gather per modality per step, no per-sample collate."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from commlearn import dist
from commlearn.data.base import MultimodalBatch, MultimodalDataset


class BatchLoader:
    """Iterate over a :class:`MultimodalDataset` in batches of indices.

    Under ``torch.distributed`` each rank takes every ``world_size``-th batch of one shared permutation, so the
    ranks see disjoint samples and the same number of steps.

    Args:
        dataset: a batch-indexed data set.
        batch_size: samples per batch (per rank).
        shuffle: draw a new permutation each epoch (seeded by ``seed`` and the epoch number).
        drop_last: drop the last incomplete batch (contrastive training: yes, so every batch has B samples).
        seed: base seed of the permutations.
    """

    def __init__(
        self,
        dataset: MultimodalDataset,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if drop_last and len(dataset) < batch_size * dist.world_size():
            raise ValueError(
                f"the data set has {len(dataset)} samples, fewer than one batch of {batch_size} per process: "
                "lower batch_size"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch`` (called by the trainer so resumed runs continue the sequence)."""
        self.epoch = epoch

    def _n_global_batches(self) -> int:
        n, b, w = len(self.dataset), self.batch_size, dist.world_size()
        full = n // b
        total = full if self.drop_last or n % b == 0 else full + 1
        return (total // w) * w if w > 1 else total

    def __len__(self) -> int:
        return self._n_global_batches() // dist.world_size()

    def __iter__(self) -> Iterator[MultimodalBatch]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        self.epoch += 1
        r, w = dist.rank(), dist.world_size()
        for k in range(r, self._n_global_batches(), w):
            yield self.dataset.get_batch(order[k * self.batch_size : (k + 1) * self.batch_size])
