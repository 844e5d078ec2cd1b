"""A batch loader for batch-indexed data sets: one gather per modality per step, no per-sample collate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from commlearn import dist
from commlearn.data.base import MultimodalBatch, MultimodalDataset


@runtime_checkable
class StreamingDataset(Protocol):
    """A data set read in order rather than by index (e.g. tar shards): it makes its own training loader, a
    stateful iterable of :class:`MultimodalBatch` with ``__len__``, ``set_epoch``, ``state_dict`` and
    ``load_state_dict`` like :class:`BatchLoader`."""

    def training_loader(self, batch_size: int, seed: int) -> Any:
        """The loader of the training batches, ``batch_size`` samples per batch and process."""
        ...


class BatchLoader:
    """Iterate over a :class:`MultimodalDataset` in batches of indices.

    Each epoch draws one permutation, the same on every process. Under ``torch.distributed`` with W processes
    the permutation is cut into global batches of W · ``batch_size`` samples and rank r takes rows
    ``[r·batch_size, (r+1)·batch_size)`` of each: the ranks see disjoint samples, the same number of steps, and
    together the batches one process with ``batch_size`` W · ``batch_size`` would see. The last incomplete
    batch is kept on one process unless ``drop_last``; on several processes it is left out on every rank (a
    contrastive loss needs the same number of rows on every rank), with the full batches that do not fill a
    global batch.

    The loader is resumable mid-epoch (Lightning's stateful-loader protocol): :meth:`state_dict` records the
    epoch being iterated, how many batches it has handed out and the global batch; after
    :meth:`load_state_dict` the next iteration continues that epoch's permutation from the following batch.

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
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self._yielded = 0  # batches of epoch `self.epoch` handed out by the current iteration
        self._skip = 0  # batches of epoch `self.epoch` the next iteration leaves out (set by load_state_dict)
        self._check_size()

    def _check_size(self) -> None:
        """Training (``drop_last``) needs one full batch per process. Checked again once the processes have
        started (Lightning starts them after the loaders are made)."""
        n, w = len(self.dataset), dist.world_size()
        if self.drop_last and n < self.batch_size * w:
            procs = f" on each of {w} processes" if w > 1 else ""
            raise ValueError(
                f"the data set has {n} samples, fewer than one batch of {self.batch_size}{procs}: "
                "lower data.batch_size"
            )

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch`` (called by the trainer so resumed runs continue the sequence).

        A position restored by :meth:`load_state_dict` is kept when ``epoch`` is the restored epoch.
        """
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """Where the iteration stands: ``{"epoch": e, "batches": k}`` — k batches (steps) of epoch e handed out."""
        return {"epoch": self.epoch, "batches": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration yields epoch ``e``'s batches from ``k`` on
        (or starts epoch ``e + 1`` when epoch ``e`` was complete).

        The state means the same on any number of processes with the same global batch (``batch_size`` ×
        processes; :func:`commlearn.train.fit` checks it against the checkpoint).

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
        """Batches of ``batch_size`` per epoch over all ranks (a multiple of the number of processes)."""
        n, b, w = len(self.dataset), self.batch_size, dist.world_size()
        if w > 1:
            return (n // b) // w * w
        return n // b if self.drop_last or n % b == 0 else n // b + 1

    def __len__(self) -> int:
        self._check_size()
        return self._n_global_batches() // dist.world_size()

    def __iter__(self) -> Iterator[MultimodalBatch]:
        self._check_size()
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
