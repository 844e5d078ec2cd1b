"""Data beyond memory: WebDataset tar shards, written from any data set and streamed by rank and worker.

Layout of a shard folder (``commlearn shards`` writes it; ``data.name=shards``, ``data.root=<folder>`` reads it):

- ``<split>-000000.tar``, ``<split>-000001.tar``, … for each split (``train``, and ``val``, ``probe_train``,
  ``test`` when the data has them): plain (uncompressed) tar files in the WebDataset format, the members of one
  sample next to each other and sharing its key: ``<key>.<modality>.npy`` per modality (``numpy.save`` bytes,
  without the batch axis), ``<key>.<modality>.pad.npy`` for a sequence's padding mask, ``<key>.labels.npy`` and
  ``<key>.present.npy`` when the data has them. The key is the sample's index in its split (``000000042``).
- ``index.json``: the modalities (name, kind, shape, dtype), the tasks, and per split its fields and the
  number of samples in each shard. It is written last: a folder without it is not a finished shard folder.

Reading needs only the standard library's ``tarfile`` (no ``webdataset`` package): a shard's member offsets
are read once from its tar headers, then samples are read by seeking, in order. Training streams shards
(:class:`ShardLoader`): every rank and DataLoader worker reads its own contiguous stretches of the shards;
probes and embeddings read samples by index (:meth:`ShardDataset.get_batch`).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from commlearn import dist
from commlearn.config import ConfigError, TaskType
from commlearn.data.base import ModalitySpec, MultimodalBatch, MultimodalDataset
from commlearn.data.files import DataFileError
from commlearn.data.loader import WorkerError, raise_worker_error
from commlearn.data.splits import DataSplits

FORMAT = "commlearn-shards"
INDEX = "index.json"
#: The splits a shard folder may hold, as the fields of :class:`DataSplits`.
SPLITS = ("train", "val", "probe_train", "test")
_RESERVED = ("labels", "present")


def _members(sample: MultimodalBatch, row: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Field name → array of sample ``row`` of a batch."""
    out: dict[str, np.ndarray] = {}
    for name, x, pad in zip(names, sample.inputs, sample.padding, strict=True):
        out[name] = x[row].numpy()
        if pad is not None:
            out[f"{name}.pad"] = pad[row].numpy()
    if sample.labels is not None:
        out["labels"] = sample.labels[row].numpy()
    if sample.present is not None:
        out["present"] = sample.present[row].numpy()
    return out


def _add(tar: tarfile.TarFile, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    info = tarfile.TarInfo(name)
    info.size = buffer.tell()
    info.mode = 0o644
    buffer.seek(0)
    tar.addfile(info, buffer)


def _write_split(
    dataset: MultimodalDataset, output: Path, split: str, samples_per_shard: int, chunk: int
) -> dict[str, Any]:
    names = [s.name for s in dataset.modality_specs]
    n = len(dataset)
    shards: list[dict[str, Any]] = []
    fields: list[str] | None = None
    for first in range(0, n, samples_per_shard):
        file = f"{split}-{len(shards):06d}.tar"
        tmp = output / f".{file}.tmp"
        last = min(first + samples_per_shard, n)
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for start in range(first, last, chunk):
                batch = dataset.get_batch(torch.arange(start, min(start + chunk, last)))
                batch = batch.to("cpu")
                for row in range(batch.batch_size):
                    members = _members(batch, row, names)
                    if fields is None:
                        fields = list(members)
                    elif list(members) != fields:
                        raise ValueError(
                            f"sample {start + row} of split {split} has fields {list(members)}, earlier samples "
                            f"{fields}: a data set's samples must all have the same entries"
                        )
                    for field, array in members.items():
                        _add(tar, f"{start + row:09d}.{field}.npy", array)
        os.replace(tmp, output / file)
        shards.append({"file": file, "samples": last - first})
    return {"fields": fields or [], "shards": shards}


def write_shards(
    data: DataSplits, output: str | Path, samples_per_shard: int = 1000, chunk: int = 256
) -> dict[str, Any]:
    """Write every split of ``data`` as WebDataset tar shards into the folder ``output`` (module docstring).

    Args:
        data: the data, e.g. ``build_data(cfg.data, seed)`` of any data set the library loads.
        output: a folder that holds no shards yet (created when missing).
        samples_per_shard: samples per tar file (the last one of a split may hold fewer).
        chunk: samples read from ``data`` at a time (memory: one chunk).

    Returns:
        The contents of ``index.json``.

    Raises:
        ValueError: ``samples_per_shard < 1``, a folder that already holds shards, modality names that cannot
            be member names, or samples with different entries.
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples per shard must be ≥ 1, got {samples_per_shard}")
    out = Path(output)
    if (out / INDEX).exists() or any(out.glob("*.tar")):
        raise ValueError(f"{out} already holds shards: choose another output folder, or delete it first")
    specs = data.train.modality_specs
    for spec in specs:
        if spec.name in _RESERVED or not spec.name or any(c in spec.name for c in "/. "):
            raise ValueError(
                f"modality name {spec.name!r} cannot name a tar member: rename it (no '/', '.' or spaces, "
                f"not {' or '.join(_RESERVED)})"
            )
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split in SPLITS:
        dataset = getattr(data, split)
        if dataset is not None:
            splits[split] = _write_split(dataset, out, split, samples_per_shard, chunk)
    first = data.train.get_batch(torch.arange(1))
    index = {
        "format": FORMAT,
        "version": 1,
        "modalities": [
            {
                "name": s.name,
                "kind": s.kind,
                "shape": list(s.shape),
                "dtype": str(x.dtype).replace("torch.", ""),
            }
            for s, x in zip(specs, first.inputs, strict=True)
        ],
        "task_names": list(data.train.task_names),
        "task_type": data.train.task_type,
        "splits": splits,
    }
    tmp = out / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / INDEX)
    return index


def read_index(root: str | Path) -> dict[str, Any]:
    """The ``index.json`` of a shard folder.

    Raises:
        ValueError: a missing or unreadable index, or one of another format.
    """
    path = Path(root) / INDEX
    if not path.is_file():
        raise ValueError(
            f"{path} not found: data.root must be a folder written by `commlearn shards` (it ends with {INDEX})"
        )
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}): write the shards again") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or "train" not in index.get("splits", {}):
        raise ValueError(f"{path} is not a {FORMAT} index with a train split: write the shards again")
    return index


class ShardDataset:
    """One split of a shard folder, as a batch-indexed data set that can also stream itself.

    Args:
        root: the shard folder.
        split: ``train``, ``val``, ``probe_train`` or ``test``.
        num_workers: DataLoader worker processes per training process that read shards while training
            (0: read in the training process).
        shuffle_batches: steps per shuffle group: each epoch visits the shards in a new order, and every rank
            shuffles its ``shuffle_batches`` · batch_size samples of a group (memory: that many samples per
            worker, twice for prefetching).

    Raises:
        ValueError: see :func:`read_index`; a split that the folder does not hold.
    """

    def __init__(
        self, root: str | Path, split: str = "train", num_workers: int = 2, shuffle_batches: int = 16
    ) -> None:
        index = read_index(root)
        if split not in index["splits"]:
            raise ValueError(f"{Path(root) / INDEX} has no split {split!r}; it has {sorted(index['splits'])}")
        if num_workers < 0 or shuffle_batches < 1:
            raise ValueError(
                f"num_workers must be ≥ 0 and shuffle_batches ≥ 1, got {num_workers} and {shuffle_batches}"
            )
        self.root = Path(root)
        self.split = split
        self.num_workers = num_workers
        self.shuffle_batches = shuffle_batches
        mods = index["modalities"]
        self.modality_specs = [ModalitySpec(m["name"], m["kind"], tuple(m["shape"])) for m in mods]
        self.task_names: list[str] = list(index["task_names"])
        self.task_type: TaskType = index["task_type"]
        entry = index["splits"][split]
        self.fields: list[str] = list(entry["fields"])
        self.files = [self.root / s["file"] for s in entry["shards"]]
        self.counts = np.array([int(s["samples"]) for s in entry["shards"]], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _table(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        """Data offsets and sizes (samples, fields) of shard ``shard``'s members, from its tar headers."""
        if shard in self._tables:
            return self._tables[shard]
        path, n = self.files[shard], int(self.counts[shard])
        column = {f: k for k, f in enumerate(self.fields)}
        offsets = np.full((n, len(self.fields)), -1, dtype=np.int64)
        sizes = np.zeros((n, len(self.fields)), dtype=np.int64)
        keys: list[str] = []
        try:
            with tarfile.open(path, "r:") as tar:
                for info in tar:  # headers only: tarfile seeks over the data
                    base = info.name.rsplit("/", 1)[-1]
                    key, _, rest = base.partition(".")
                    if not info.isfile() or not rest.endswith(".npy") or rest[:-4] not in column:
                        continue
                    if not keys or keys[-1] != key:
                        keys.append(key)
                        if len(keys) > n:
                            break
                    offsets[len(keys) - 1, column[rest[:-4]]] = info.offset_data
                    sizes[len(keys) - 1, column[rest[:-4]]] = info.size
        except (OSError, tarfile.TarError) as e:
            raise DataFileError(f"cannot read shard {path} ({e}): write the shards again") from None
        if len(keys) != n:
            raise DataFileError(
                f"shard {path} holds {len(keys)} samples, {INDEX} says {n}: write the shards again"
            )
        missing = np.argwhere(offsets < 0)
        if len(missing):
            row, col = missing[0]
            raise DataFileError(f"shard {path}: sample {keys[row]} has no {self.fields[col]}.npy member")
        self._tables[shard] = (offsets, sizes)
        return offsets, sizes

    def _read(self, shard: int, rows: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Field → arrays of the samples ``rows`` of shard ``shard`` (read in increasing file order)."""
        offsets, sizes = self._table(shard)
        out: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}
        path = self.files[shard]
        try:
            with open(path, "rb") as f:
                for row in rows:
                    for k, field in enumerate(self.fields):
                        f.seek(int(offsets[row, k]))
                        out[field].append(np.load(io.BytesIO(f.read(int(sizes[row, k]))), allow_pickle=False))
        except (OSError, ValueError) as e:
            raise DataFileError(
                f"cannot read a sample of shard {path} ({e}): write the shards again"
            ) from None
        return out

    def _batch(self, parts: dict[str, list[np.ndarray]], order: np.ndarray | None = None) -> MultimodalBatch:
        """A batch from field → per-sample arrays (in ``order`` when given)."""

        def stack(field: str) -> Tensor:
            arrays = parts[field] if order is None else [parts[field][i] for i in order]
            return torch.from_numpy(np.stack(arrays))

        names = [s.name for s in self.modality_specs]
        return MultimodalBatch(
            inputs=[stack(name) for name in names],
            padding=[stack(f"{name}.pad") if f"{name}.pad" in parts else None for name in names],
            labels=stack("labels") if "labels" in parts else None,
            present=stack("present") if "present" in parts else None,
        )

    def _read_positions(self, positions: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Field → arrays of the samples at ``positions`` (split indices), in that order."""
        shard_of = np.searchsorted(self.starts, positions, side="right") - 1
        parts: dict[str, list[Any]] = {f: [None] * len(positions) for f in self.fields}
        for shard in np.unique(shard_of):
            where = np.flatnonzero(shard_of == shard)
            rows = positions[where] - self.starts[shard]
            sort = np.argsort(rows, kind="stable")
            read = self._read(int(shard), rows[sort])
            for field, arrays in read.items():
                for i, array in zip(where[sort], arrays, strict=True):
                    parts[field][i] = array
        return parts

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        """Samples ``index`` (B,) int64 of the split, read from their shards."""
        positions = index.detach().cpu().numpy().astype(np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"sample indices must be in 0..{len(self) - 1}")
        return self._batch(self._read_positions(positions))

    def stretch(self, order: np.ndarray, start: int, stop: int) -> dict[str, list[np.ndarray]]:
        """Field → arrays of positions ``[start, stop)`` of the stream that visits the shards in ``order``."""
        counts = self.counts[order]
        ends = np.cumsum(counts)
        parts: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}
        for k, shard in enumerate(order):
            lo, hi = int(ends[k] - counts[k]), int(ends[k])
            if hi <= start or lo >= stop:
                continue
            rows = np.arange(max(start, lo) - lo, min(stop, hi) - lo)
            for field, arrays in self._read(int(shard), rows).items():
                parts[field].extend(arrays)
        return parts

    def training_loader(self, batch_size: int, seed: int) -> ShardLoader:
        """The streaming training loader (:class:`ShardLoader`) with this data set's worker and shuffle settings."""
        return ShardLoader(
            self, batch_size, seed, num_workers=self.num_workers, shuffle_batches=self.shuffle_batches
        )


def _shard_order(n_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the shards (the same on every rank)."""
    if not shuffle:
        return np.arange(n_shards)
    return np.random.default_rng([seed, epoch]).permutation(n_shards)


class _GroupReader(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Reads one rank's part of a shuffle group: the key ``(epoch, j, skip)`` → this rank's
    ``n_j · batch_size`` samples of the j-th group of ``n_j`` global batches of epoch ``epoch``, shuffled, as
    ``n_j − skip`` batches (the first ``skip`` left out). Runs in DataLoader workers."""

    def __init__(self, loader: ShardLoader, steps: int) -> None:
        super().__init__()
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size
        self.group = loader.shuffle_batches
        self.shuffle = loader.shuffle
        self.seed = loader.seed
        self.steps = steps
        self.rank, self.world = dist.rank(), dist.world_size()

    def __getitem__(self, key: tuple[int, int, int]) -> list[MultimodalBatch] | WorkerError:
        try:
            return self._group(*key)
        except DataFileError as e:
            return WorkerError(str(e))

    def _group(self, epoch: int, j: int, skip: int) -> list[MultimodalBatch]:
        b = self.batch_size
        n_j = min(self.group, self.steps - j * self.group)  # steps in this group
        start = j * self.group * b * self.world + self.rank * n_j * b  # this rank's stretch of the group
        order = _shard_order(len(self.dataset.files), self.seed, epoch, self.shuffle)
        parts = self.dataset.stretch(order, start, start + n_j * b)
        rows = np.arange(n_j * b)
        if self.shuffle:
            rows = np.random.default_rng([self.seed, epoch, j, self.rank]).permutation(rows)
        return [self.dataset._batch(parts, rows[k * b : (k + 1) * b]) for k in range(skip, n_j)]


class _Keys:
    """The group keys of the epoch a :class:`ShardLoader` is iterating (its DataLoader's sampler)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(self.keys)


class ShardLoader:
    """Streams training batches from a :class:`ShardDataset`, split across ranks and DataLoader workers.

    Each epoch visits the shards in an order drawn from ``(seed, epoch)``: one stream of N samples. Of its
    ``S = N // (W · batch_size)`` global batches (W processes; the samples after the last full global batch are
    left out on every rank, different ones each epoch), consecutive groups of ``shuffle_batches`` steps form
    shuffle groups: rank r reads its own contiguous ``1/W`` of each group's stretch of the stream, shuffles it
    and hands it out as batches; ``num_workers`` DataLoader workers (kept from one epoch to the next) read the
    groups in turn. So every rank reads 1/W of the data, in long sequential stretches, the ranks see disjoint
    samples and the same number of steps, and every sample of the full global batches is seen once per epoch.

    Resumable like :class:`~commlearn.data.loader.BatchLoader` (Lightning's stateful-loader protocol): the
    sequence of batches does not depend on the number of workers, so a resumed run continues exactly — on the
    same number of processes. On another number of processes (with the same global batch) it continues at the
    next shuffle group, skipping the rest of the group it stopped in (at most ``shuffle_batches`` steps;
    said once).

    Args:
        dataset: the shards.
        batch_size: samples per batch (per process).
        seed: seed of the shard orders and the shuffles.
        shuffle: new shard order and shuffled groups each epoch (False: shards and samples in order).
        num_workers: DataLoader workers that read shards (0: read in this process).
        shuffle_batches: steps per shuffle group.
    """

    def __init__(
        self,
        dataset: ShardDataset,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        num_workers: int = 0,
        shuffle_batches: int = 16,
    ) -> None:
        if batch_size < 1 or num_workers < 0 or shuffle_batches < 1:
            raise ValueError(
                "batch_size and shuffle_batches must be ≥ 1 and num_workers ≥ 0, got "
                f"{batch_size}, {shuffle_batches} and {num_workers}"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.shuffle_batches = shuffle_batches
        self.epoch = 0
        self._yielded = 0
        self._skip = 0
        self._saved_world: int | None = None  # processes of the run whose state was loaded
        self._keys = _Keys()
        self._workers: torch.utils.data.DataLoader[Any] | None = None  # made at the first epoch

    def shard_order(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the shards (the same on every rank)."""
        return _shard_order(len(self.dataset.files), self.seed, epoch, self.shuffle)

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        w = dist.world_size()
        steps = len(self.dataset) // (self.batch_size * w)
        if steps == 0:
            procs = f" on each of {w} processes" if w > 1 else ""
            raise ValueError(
                f"the shards hold {len(self.dataset)} samples, fewer than one batch of {self.batch_size}{procs}: "
                "lower data.batch_size"
            )
        return steps

    def set_epoch(self, epoch: int) -> None:
        """Choose epoch ``epoch`` (a position restored by :meth:`load_state_dict` is kept for that epoch)."""
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch": e, "batches": k, "world_size": W}``: k steps of epoch e done on W processes."""
        return {"epoch": self.epoch, "batches": self._yielded, "world_size": dist.world_size()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (from the next step of its epoch).

        Raises:
            ValueError: a state that this loader did not write.
        """
        try:
            epoch, batches, world = int(state["epoch"]), int(state["batches"]), int(state["world_size"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a ShardLoader state: {state!r}") from None
        self.epoch, self._skip, self._yielded, self._saved_world = epoch, batches, batches, world

    def _first_group(self, done: int, steps: int) -> tuple[int, int]:
        """The group to start at and the batches of it already done, after ``done`` steps of the epoch."""
        first, skip = divmod(done, self.shuffle_batches)
        if skip and self._saved_world not in (None, dist.world_size()):
            left_out = min(self.shuffle_batches * (first + 1), steps) - done
            if dist.rank() == 0:
                warnings.warn(
                    f"the run resumed on {dist.world_size()} processes mid-way through a shuffle group written "
                    f"on {self._saved_world}: it continues at the next group, leaving out {left_out} steps "
                    "of this epoch",
                    stacklevel=3,
                )
            first, skip = first + 1, 0
        self._saved_world = None
        return first, skip

    def __iter__(self) -> Iterator[MultimodalBatch]:
        steps = len(self)
        epoch, done = self.epoch, self._skip
        self._skip = 0
        first, skip = self._first_group(done, steps)
        n_groups = -(-steps // self.shuffle_batches)
        self._keys.keys = [(epoch, j, skip if j == first else 0) for j in range(first, n_groups)]
        source: Any
        if self.num_workers == 0:
            reader = _GroupReader(self, steps)
            source = (reader[key] for key in self._keys)
        else:
            if self._workers is None:  # after the processes started: the reader takes this rank and W
                self._workers = torch.utils.data.DataLoader(
                    _GroupReader(self, steps),
                    batch_size=None,
                    sampler=self._keys,  # type: ignore[arg-type]
                    num_workers=self.num_workers,
                    persistent_workers=True,
                    # not the global generator, which a resumed run restores before its first iteration
                    generator=torch.Generator().manual_seed(self.seed),
                )
            source = self._workers
        self._yielded = first * self.shuffle_batches + skip
        for group in source:
            for batch in raise_worker_error(group):
                self._yielded += 1
                yield batch
        self.epoch = epoch + 1
        self._yielded = 0


def shard_splits(root: str | Path | None, num_workers: int = 2, shuffle_batches: int = 16) -> DataSplits:
    """Every split a shard folder holds (:class:`ShardDataset` each), streamed while training: ``num_workers``
    DataLoader workers per process read them; each epoch visits the shards in a new order and every process
    shuffles ``shuffle_batches`` batches' worth of samples at a time."""
    if root is None:
        raise ConfigError("data.root must name the folder written by `commlearn shards` for data.name=shards")
    splits = read_index(root)["splits"]
    parts = {s: ShardDataset(root, s, num_workers, shuffle_batches) for s in SPLITS if s in splits}
    return DataSplits(**parts)
