"""A batch loader for batch-indexed data sets: one gather per modality per step, no per-sample collate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from commlearn import dist
from commlearn.data.base import MultimodalBatch, MultimodalDataset


class BatchLoader:
    """Iterate over a :class:`MultimodalDataset` in batches of indices.

    Under ``torch.distributed`` each rank takes every ``world_size``-th batch of one shared permutation, so the
    ranks see disjoint samples and the same number of steps.

    The loader is resumable mid-epoch (Lightning's stateful-loader protocol): :meth:`state_dict` records the
    epoch being iterated and how many batches it has handed out; after :meth:`load_state_dict` the next
    iteration continues that epoch's permutation from the following batch.

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
        self._yielded = 0  # batches of epoch `self.epoch` handed out by the current iteration
        self._skip = 0  # batches of epoch `self.epoch` the next iteration leaves out (set by load_state_dict)

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch`` (called by the trainer so resumed runs continue the sequence).

        A position restored by :meth:`load_state_dict` is kept when ``epoch`` is the restored epoch.
        """
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """Where the iteration stands: ``{"epoch": e, "batches": k}`` — k batches of epoch e handed out."""
        return {"epoch": self.epoch, "batches": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration yields epoch ``e``'s batches from ``k`` on
        (or starts epoch ``e + 1`` when epoch ``e`` was complete).

        Raises:
            ValueError: a state that this loader did not write.
        """
        try:
            epoch, batches = int(state["epoch"]), int(state["batches"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a BatchLoader state: {state!r}") from None
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.epoch, self._skip, self._yielded = epoch, batches, batches

    def _n_global_batches(self) -> int:
        n, b, w = len(self.dataset), self.batch_size, dist.world_size()
        full = n // b
        total = full if self.drop_last or n % b == 0 else full + 1
        return (total // w) * w if w > 1 else total

    def __len__(self) -> int:
        return self._n_global_batches() // dist.world_size()

    def __iter__(self) -> Iterator[MultimodalBatch]:
        n = len(self.dataset)
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        r, w = dist.rank(), dist.world_size()
        self._yielded = skip
        for k in range(r + skip * w, self._n_global_batches(), w):
            batch = self.dataset.get_batch(order[k * self.batch_size : (k + 1) * self.batch_size])
            self._yielded += 1
            yield batch
        self.epoch = epoch + 1
        self._yielded = 0
