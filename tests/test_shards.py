"""WebDataset shards: written from any data set (``commlearn shards``), read back by index, and streamed while
training so that every sample of the full global batches is seen once per epoch, across ranks and workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tarfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from commlearn import dist
from commlearn.cli import main
from commlearn.data.base import ArrayDataset
from commlearn.data.registry import DataSplits
from commlearn.data.shards import ShardDataset, ShardLoader, write_shards
from commlearn.data.synthetic import make_synthetic

N, PER_SHARD = 60, 7  # 9 shards, the last one of 4 samples
_TIMEOUT_S = 120.0


def _ids(n: int = N) -> DataSplits:
    """Vectors whose label is the sample's index: batches say which samples they hold."""
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(n, 6, generator=g), torch.randn(n, 5, generator=g)]
    return DataSplits(train=ArrayDataset(x, labels=torch.arange(n)))


@pytest.fixture(scope="module")
def id_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards") / "ids"
    write_shards(_ids(), root, PER_SHARD)
    return root


def test_shards_read_back_every_modality_kind(tmp_path: Path) -> None:
    source = make_synthetic(23, ("vector", "sequence", "image", "tokens"), dim=4, seq_len=5, image_size=8)
    test = make_synthetic(
        9, ("vector", "sequence", "image", "tokens"), dim=4, seq_len=5, image_size=8, seed=1
    )
    index = write_shards(DataSplits(train=source, test=test), tmp_path, samples_per_shard=10)
    assert [s["samples"] for s in index["splits"]["train"]["shards"]] == [10, 10, 3]
    assert index["splits"]["train"]["fields"] == ["m0", "m1", "m1.pad", "m2", "m3", "labels"]
    shards = ShardDataset(tmp_path, "train")
    assert len(shards) == 23 and shards.modality_specs == source.modality_specs
    assert shards.task_names == source.task_names and shards.task_type == source.task_type
    idx = torch.tensor([22, 0, 13, 9, 10, 13])  # across shards, out of order, repeated
    got, want = shards.get_batch(idx), source.get_batch(idx)
    assert [p is None for p in got.padding] == [p is None for p in want.padding] == [True, False, True, True]
    pairs = zip(
        [*got.inputs, got.padding[1], got.labels], [*want.inputs, want.padding[1], want.labels], strict=True
    )
    for a, b in pairs:
        assert a is not None and b is not None and a.dtype == b.dtype
        assert torch.equal(a, b)
    assert torch.equal(ShardDataset(tmp_path, "test").get_batch(torch.arange(9)).inputs[2], test.inputs[2])
    # a tar file readers of the WebDataset format understand: members grouped by key
    with tarfile.open(tmp_path / "train-000002.tar") as tar:
        assert tar.getnames()[:6] == [
            f"000000020.{f}.npy" for f in ("m0", "m1", "m1.pad", "m2", "m3", "labels")
        ]


def test_shard_errors_are_one_line(tmp_path: Path, id_shards: Path) -> None:
    with pytest.raises(ValueError, match="already holds shards"):
        write_shards(_ids(), id_shards, PER_SHARD)
    with pytest.raises(ValueError, match=r"index.json not found: data.root must be a folder written by"):
        ShardDataset(tmp_path)
    with pytest.raises(ValueError, match=r"has no split 'val'; it has \['train'\]"):
        ShardDataset(id_shards, "val")
    broken = tmp_path / "broken"
    write_shards(_ids(), broken, PER_SHARD)
    shard = broken / "train-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(
        ValueError, match=r"cannot read shard .*train-000001.tar \(.*\): write the shards again$"
    ):
        ShardDataset(broken).get_batch(torch.tensor([8]))
    streamed = ShardLoader(ShardDataset(broken), 4, num_workers=1)  # met by a worker: still the one line
    with pytest.raises(
        ValueError, match=r"^cannot read shard .*train-000001.tar \(.*\): write the shards again$"
    ):
        list(streamed)


def _epochs(
    monkeypatch: pytest.MonkeyPatch, root: Path, world: int, batch: int, **kw: Any
) -> list[list[list[int]]]:
    """Sample ids per rank of two epochs, the ranks simulated in this process one after the other."""
    monkeypatch.setattr(dist, "world_size", lambda: world)
    out = []
    for r in range(world):
        monkeypatch.setattr(dist, "rank", lambda r=r: r)
        loader = ShardLoader(ShardDataset(root), batch, seed=3, **kw)
        ranks = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            ranks.append([int(i) for b in loader for i in b.labels])
        out.append(ranks)
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
def test_stream_sees_every_sample_once_per_epoch(
    monkeypatch: pytest.MonkeyPatch, id_shards: Path, world: int
) -> None:
    batch = 4
    seen = _epochs(monkeypatch, id_shards, world, batch, shuffle_batches=2)
    steps = N // (batch * world)
    for epoch in range(2):
        per_rank = [seen[r][epoch] for r in range(world)]
        assert all(len(ids) == steps * batch for ids in per_rank)  # the same number of full batches
        everything = [i for ids in per_rank for i in ids]
        assert len(set(everything)) == len(everything) == steps * batch * world  # disjoint, none twice
    assert seen[0][0] != seen[0][1]  # a new order each epoch


def test_stream_order_does_not_depend_on_workers(monkeypatch: pytest.MonkeyPatch, id_shards: Path) -> None:
    serial = _epochs(monkeypatch, id_shards, 2, 4, shuffle_batches=2)
    workers = _epochs(monkeypatch, id_shards, 2, 4, shuffle_batches=2, num_workers=2)
    assert serial == workers


def test_stream_resumes_exactly_and_across_process_counts(
    monkeypatch: pytest.MonkeyPatch, id_shards: Path
) -> None:
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "rank", lambda: 0)
    whole = [b.labels.tolist() for b in ShardLoader(ShardDataset(id_shards), 4, seed=3, shuffle_batches=2)]
    loader = ShardLoader(ShardDataset(id_shards), 4, seed=3, shuffle_batches=2)
    it = iter(loader)
    first = [next(it).labels.tolist() for _ in range(3)]  # into the second shuffle group
    state = loader.state_dict()
    assert state == {"epoch": 0, "batches": 3, "world_size": 2}
    resumed = ShardLoader(ShardDataset(id_shards), 4, seed=3, shuffle_batches=2, num_workers=2)
    resumed.load_state_dict(state)
    assert first + [b.labels.tolist() for b in resumed] == whole
    # rank 1 stopped at the same step; on one process the run continues at the next group, said once
    monkeypatch.setattr(dist, "rank", lambda: 1)
    other = ShardLoader(ShardDataset(id_shards), 4, seed=3, shuffle_batches=2)
    it = iter(other)
    first += [next(it).labels.tolist() for _ in range(3)]
    monkeypatch.setattr(dist, "world_size", lambda: 1)
    monkeypatch.setattr(dist, "rank", lambda: 0)
    one = ShardLoader(ShardDataset(id_shards), 8, seed=3, shuffle_batches=2)
    one.load_state_dict(state)
    with pytest.warns(UserWarning, match="continues at the next group, leaving out 1 steps"):
        rest = [b.labels.tolist() for b in one]
    assert len(rest) == 7 - 4  # steps 4..6 of the epoch's 7
    ids = [i for b in first + rest for i in b]
    assert len(ids) == len(set(ids))


# --- through fit, on two processes ---------------------------------------------------------------------------


def _stream_worker(rank: int, port: int, config: str, run: str, out: str) -> None:
    """One of two processes started as ``torchrun`` starts them; it runs ``fit`` and records the ids it saw."""
    os.environ.update(
        TORCHELASTIC_RUN_ID="test",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        GROUP_RANK="0",
        LOCAL_WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    # a process torchrun starts makes DataLoader workers by fork (Linux's default); one that
    # multiprocessing spawned would spawn them (re-importing everything)
    multiprocessing.set_start_method("fork", force=True)
    from commlearn.config import load_config
    from commlearn.methods.base import BaseMethod
    from commlearn.train import fit

    seen: list[tuple[int, list[int]]] = []
    step = BaseMethod.training_step

    def recording(self: BaseMethod, batch: Any, batch_idx: int) -> torch.Tensor:
        seen.append((self.current_epoch, batch.labels.tolist()))
        return step(self, batch, batch_idx)

    BaseMethod.training_step = recording  # type: ignore[method-assign]
    overrides = [
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=2",
        f"trainer.output={run}",
        "trainer.progress_bar=false",
        "data.batch_size=4",
        "data.options.num_workers=2",
        "data.options.shuffle_batches=2",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(load_config(config, overrides))
    messages = [str(w.message) for w in caught if "SyncBatchNorm" in str(w.message)]
    torch.save(
        {"seen": seen, "norm_warnings": messages, "zero": result.is_global_zero}, Path(out) / f"{rank}.pt"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fit_streams_shards_on_two_processes_each_sample_once_per_epoch(tmp_path: Path) -> None:
    """``commlearn shards`` writes a small array data set; ``fit`` of the config it writes runs on two processes
    with two DataLoader workers each; every sample of the full global batches is seen once per epoch."""
    g = np.random.default_rng(0)
    a, b = g.normal(size=(N, 6)).astype(np.float32), g.normal(size=(N, 5)).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", a=a, b=b, labels=np.arange(N))
    config = {
        "data": {
            "name": "arrays",
            "root": str(tmp_path / "pairs.npz"),
            "options": {"modalities": ["a", "b"]},
        },
        "model": {"embed_dim": 16, "n_heads": 2, "head_hidden": [16], "head_out": 8, "vector_dim": 16},
    }
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(config))
    shards = tmp_path / "shards"
    args = ["shards", "--config", str(tmp_path / "pairs.yaml"), "--output", str(shards)]
    assert main([*args, "--samples-per-shard", str(PER_SHARD)]) == 0
    assert len(json.loads((shards / "index.json").read_text())["splits"]["train"]["shards"]) == 9
    out = tmp_path / "seen"
    out.mkdir()
    run_args = (_free_port(), str(shards / "fit.yaml"), str(tmp_path / "run"), str(out))
    ctx = mp.start_processes(_stream_worker, args=run_args, nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + _TIMEOUT_S
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"the two fit processes did not finish within {_TIMEOUT_S:.0f} s")
    ranks = [torch.load(out / f"{r}.pt", weights_only=False) for r in range(2)]
    steps = N // 8
    for epoch in range(2):
        per_rank = [[i for e, ids in r["seen"] if e == epoch for i in ids] for r in ranks]
        assert [len(ids) for ids in per_rank] == [steps * 4, steps * 4]
        everything = per_rank[0] + per_rank[1]
        assert len(set(everything)) == len(everything) == steps * 8
    # the head's BatchNorm on CPU: said once, by rank 0; the run went on
    assert len(ranks[0]["norm_warnings"]) == 1 and ranks[1]["norm_warnings"] == []
    assert [r["zero"] for r in ranks] == [True, False]
    assert (tmp_path / "run" / "done.json").is_file() and (
        tmp_path / "run" / "checkpoints" / "last.ckpt"
    ).is_file()
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["data"]["name"] == "shards" and cfg["data"]["root"] == str(shards.resolve())
