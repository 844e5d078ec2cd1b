"""A batch loader for batch-indexed data sets: one gather per modality per step, no per-sample collate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from commlearn import dist
from commlearn.data.base import MultimodalBatch, MultimodalDataset
from commlearn.data.files import DataFileError

T = TypeVar("T")


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

    With ``num_workers`` > 0, ``get_batch`` runs in that many DataLoader worker processes (kept from one epoch
    to the next), each handed whole index batches in turn: for data sets that read and decode files per
    batch (:class:`~commlearn.data.images.FileImageDataset`). The batches and their order are those of
    ``num_workers=0``, so resuming stays exact. A :class:`~commlearn.data.files.DataFileError` raised in a
    worker is raised again here with its own one-line message.

    Args:
        dataset: a batch-indexed data set (picklable when ``num_workers`` > 0).
        batch_size: samples per batch (per rank).
        shuffle: draw a new permutation each epoch (seeded by ``seed`` and the epoch number).
        drop_last: drop the last incomplete batch (contrastive training: yes, so every batch has B samples).
        seed: base seed of the permutations.
        num_workers: worker processes that call ``get_batch`` (0: this process).
    """

    def __init__(
        self,
        dataset: MultimodalDataset,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be ≥ 0, got {num_workers}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_workers = num_workers
        self._index = _IndexBatches()
        self._workers: torch.utils.data.DataLoader[Any] | None = None  # made at the first iteration
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

    def index_batches(self, epoch: int, skip: int = 0) -> list[Tensor]:
        """This rank's index batches (B,) int64 of epoch ``epoch``, from its batch ``skip`` on."""
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        r, w, b = dist.rank(), dist.world_size(), self.batch_size
        return [order[k * b : (k + 1) * b] for k in range(r + skip * w, self._n_global_batches(), w)]

    def _batches(self, indices: list[Tensor]) -> Iterator[MultimodalBatch]:
        """The batches of ``indices``, read here or by the workers."""
        if self.num_workers == 0:
            return (self.dataset.get_batch(index) for index in indices)
        self._index.batches = indices
        if self._workers is None:
            self._workers = torch.utils.data.DataLoader(
                _WorkerReader(self.dataset),
                batch_size=None,
                sampler=self._index,  # type: ignore[arg-type]
                num_workers=self.num_workers,
                persistent_workers=True,
                # its own generator: the workers' base seed must not be drawn from the global one, which a
                # resumed run restores before its first iteration (the augmentations would shift by a draw)
                generator=torch.Generator().manual_seed(self.seed),
            )
        return (raise_worker_error(batch) for batch in self._workers)

    def __iter__(self) -> Iterator[MultimodalBatch]:
        self._check_size()
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        self._yielded = skip
        for batch in self._batches(self.index_batches(epoch, skip)):
            self._yielded += 1
            yield batch
        self.epoch = epoch + 1
        self._yielded = 0


class _IndexBatches:
    """The index batches of the epoch a :class:`BatchLoader` with workers is iterating (its sampler)."""

    def __init__(self) -> None:
        self.batches: list[Tensor] = []

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class WorkerError:
    """A one-line data error met in a DataLoader worker, carried to the training process as a value (raised
    there again by :func:`raise_worker_error`): a worker's traceback would bury the line that names the file."""

    def __init__(self, message: str) -> None:
        self.message = message


class _WorkerReader(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``get_batch`` of an index batch, in a DataLoader worker."""

    def __init__(self, dataset: MultimodalDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def __getitem__(self, index: Tensor) -> MultimodalBatch | WorkerError:
        try:
            return self.dataset.get_batch(index)
        except DataFileError as e:
            return WorkerError(str(e))


def raise_worker_error(item: T | WorkerError) -> T:
    """``item`` read by a worker, or its :class:`WorkerError` raised as the :class:`DataFileError` it was."""
    if isinstance(item, WorkerError):
        raise DataFileError(item.message)
    return item
