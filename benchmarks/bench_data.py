"""The data share of a training step when images stay on disk: the ``mm-imdb-raw`` preset, posters as JPEG files.

A fresh worker process (``python benchmarks/bench_data.py '<json args>'``, :func:`worker`) writes a small
release in MM-IMDb's JSON + JPEG layout (posters 300 × 444 px, IMDb's ``SX300`` thumbnails, JPEG quality 90,
with texture so that decoding costs what a photo costs; plots of 60–160 words), builds the data and the method
as ``commlearn fit`` does (``load_config`` → ``build_data`` → ``make_method``) and runs Lightning
``Trainer.fit`` twice, side by side on the same model settings:

- **disk**: the data set's own training loader (:meth:`FileImageDataset.training_loader`, a ``BatchLoader``
  whose DataLoader workers decode and resize the posters), wrapped to time how long each step waits for its
  batch;
- **memory**: the same batches decoded beforehand and gathered from memory (``ArrayDataset`` + ``BatchLoader``):
  the step without any decoding.

Per step it records the cycle (end of one training batch to the end of the next) and the wait inside the
loader's ``next``. ``data_fraction`` = wait ÷ disk cycle (target ≤ 0.10); ``decode_cpu_fraction`` = the seconds
one batch takes to decode in one process ÷ the memory cycle: the CPU the workers need beside the step, which
comes out of the step's own time when they share its cores (e.g. under ``taskset -c 1``).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from bench_step import StepTimer
from commlearn.config import RunConfig, load_config
from commlearn.data.base import ArrayDataset, MultimodalBatch
from commlearn.data.images import FileImageDataset
from commlearn.data.loader import BatchLoader
from commlearn.data.registry import build_data
from commlearn.speed import keep_freed_memory
from commlearn.train import make_method
from common import RESULT_MARKER, BenchResult, Metric, run_worker

POSTER_W, POSTER_H = 300, 444
_WORDS = (
    "a young man woman family war love city life world finds must his her their new old secret "
    "story friends town police killer murder past dark comedy journey home father mother school"
).split()


def write_release(root: Path, n_train: int, n_other: int, seed: int = 0) -> None:
    """A small MM-IMDb release: ``split.json``, ``dataset/<id>.json`` and ``dataset/<id>.jpeg``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "dataset"
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:POSTER_H, 0:POSTER_W]
    split: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    sizes = {"train": n_train, "dev": n_other, "test": n_other}
    k = 0
    for name, n in sizes.items():
        for _ in range(n):
            film = f"{k:07d}"
            k += 1
            base = rng.uniform(0, 255, size=3)
            ramp = np.stack([x * rng.uniform(-0.3, 0.3), y * rng.uniform(-0.3, 0.3), (x + y) * 0.1], -1)
            noise = rng.normal(0, 25, size=(POSTER_H, POSTER_W, 3))
            pixels = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{film}.jpeg", quality=90)
            plot = " ".join(rng.choice(_WORDS, size=int(rng.integers(60, 160))))
            genres = [str(g) for g in rng.choice(["Drama", "Comedy", "Action", "Sci-Fi"], size=2)]
            (folder / f"{film}.json").write_text(json.dumps({"plot": [plot], "genres": genres}))
            split[name].append(film)
    (root / "split.json").write_text(json.dumps(split))


class _TimedLoader:
    """A training loader whose iteration records the seconds each ``next`` waited (``waits``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waits: list[tuple[float, float]] = []  # (end of the wait, seconds)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:  # set_epoch, state_dict, load_state_dict
        return getattr(self.inner, name)

    def __iter__(self) -> Iterator[MultimodalBatch]:
        it = iter(self.inner)
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            end = time.perf_counter()
            self.waits.append((end, end - start))
            yield batch


def _fit(cfg: RunConfig, loader: Any, specs: list[Any], steps: int) -> list[float]:
    """Step end times of ``steps`` CoMM steps of ``cfg`` on ``loader`` in Lightning ``Trainer.fit``."""
    torch.manual_seed(cfg.trainer.seed)
    method = make_method(cfg, specs, None)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(method, loader)
    return timer.ends


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One measurement (runs in the worker process).

    Args:
        args: ``batch_size``, ``warmup``, ``steps``, ``num_workers`` (DataLoader workers of the disk loader),
            ``threads`` (torch threads, optional).
    """
    keep_freed_memory()  # as the commlearn command line does
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    b, warmup, steps = int(args["batch_size"]), int(args["warmup"]), int(args["steps"])
    n = b * (warmup + steps + 1)
    with tempfile.TemporaryDirectory() as tmp:
        write_release(Path(tmp), n, 4)
        overrides = [
            f"data.root={tmp}",
            f"data.batch_size={b}",
            f"data.options.num_workers={args['num_workers']}",
        ]
        cfg = load_config("mm-imdb-raw", [*overrides, "trainer.accelerator=cpu"])
        train = build_data(cfg.data, cfg.trainer.seed).train
        assert isinstance(train, FileImageDataset)
        specs = list(train.modality_specs)
        start = time.perf_counter()
        decoded = train.get_batch(torch.arange(n))  # every poster decoded once, here
        decode_per_batch = (time.perf_counter() - start) * b / n
        memory = BatchLoader(
            ArrayDataset(decoded.inputs, specs, padding=decoded.padding),
            b, shuffle=True, drop_last=True, seed=cfg.trainer.seed,
        )  # fmt: skip
        ends_memory = _fit(cfg, memory, specs, warmup + steps)
        disk = _TimedLoader(train.training_loader(b, cfg.trainer.seed))
        ends_disk = _fit(cfg, disk, specs, warmup + steps)
    cycles_disk = [hi - lo for lo, hi in zip(ends_disk[warmup - 1 : -1], ends_disk[warmup:], strict=True)]
    cycles_memory = [
        hi - lo for lo, hi in zip(ends_memory[warmup - 1 : -1], ends_memory[warmup:], strict=True)
    ]
    waits = [w for end, w in disk.waits if ends_disk[warmup - 1] < end <= ends_disk[-1]][: len(cycles_disk)]
    return {
        "cycle_disk_s": cycles_disk,
        "cycle_memory_s": cycles_memory,
        "wait_s": waits,
        "decode_s_per_batch": decode_per_batch,
        "batch_size": b,
        "num_workers": int(args["num_workers"]),
        "image_size": int(specs[0].shape[-1]),
        "threads": torch.get_num_threads(),
    }


def bench_data(
    quick: bool, warmup: int, steps: int, timeout_s: float, threads: int | None, num_workers: int = 2
) -> BenchResult:
    """The data share of a CoMM step at the ``mm-imdb-raw`` preset (quick: batch 16)."""
    batch = 16 if quick else load_config("mm-imdb-raw").data.batch_size
    args = {
        "batch_size": batch,
        "warmup": warmup,
        "steps": steps,
        "num_workers": num_workers,
        "threads": threads,
    }
    r = run_worker(Path(__file__), args, timeout_s)
    disk, memory, waits = r["cycle_disk_s"], r["cycle_memory_s"], r["wait_s"]
    mem = statistics.median(memory)
    res = BenchResult(
        "data_disk_images",
        f"CoMM step at the mm-imdb-raw preset ({r['image_size']} px posters decoded from 300 × 444 JPEG files by "
        f"{r['num_workers']} DataLoader workers, batch {r['batch_size']}) vs the same step on batches in memory, "
        "Lightning Trainer.fit (fresh process)",
        {
            "data_fraction": Metric(
                "fraction",
                [w / c for w, c in zip(waits, disk, strict=False)],
                "<= 0.10",
                not quick,
                note="wait for the batch ÷ step (disk)",
            ),
            "decode_cpu_fraction": Metric(
                "fraction",
                [r["decode_s_per_batch"] / m for m in memory],
                note="decoding one batch in one process ÷ step (memory)",
            ),
            "step_disk_s": Metric("s", disk),
            "step_memory_s": Metric("s", memory),
            "step_slowdown": Metric(
                "fraction", [d / mem - 1.0 for d in disk], note="disk step ÷ memory step − 1"
            ),
            "wait_s": Metric("s", waits),
        },
    )
    res.details = {
        k: r[k] for k in ("batch_size", "num_workers", "image_size", "threads", "decode_s_per_batch")
    }
    return res


def main(argv: list[str]) -> None:
    """``python benchmarks/bench_data.py [--quick]``: one measurement, printed."""
    if argv and argv[0].startswith("{"):  # the worker process of run_worker
        print(RESULT_MARKER + json.dumps(worker(json.loads(argv[0]))), flush=True)
        return
    quick = "--quick" in argv
    res = bench_data(quick, 1, 2 if quick else 3, 600.0, None)
    for name, m in res.metrics.items():
        print(
            f"{name:22s} median {m.median:.4g} {m.unit}  (min {min(m.samples):.4g}, max {max(m.samples):.4g})"
        )
    print(json.dumps(res.details))


if __name__ == "__main__":
    main(sys.argv[1:])
