"""Training-step throughput inside the real loop: Lightning ``Trainer.fit`` fed by the real ``BatchLoader``.

The measurement runs in a fresh worker process (:func:`train_worker`), so its peak RSS is its own. Per step
it records:

* the step cycle: time from the end of one training batch to the end of the next (data fetch, the hooks,
  augmentation, forward, backward, optimiser step, logging);
* data loading: time inside ``dataset.get_batch`` (the loader's only work), via a timing proxy data set;
* augmentation: time inside ``method.augment`` (on-device, inside the training step), via module hooks;
* CPU user/system time and minor page faults of the process.

FLOPs of one step (augmentation + forward + backward; the optimiser's element-wise update is not counted)
are counted once with ``torch.utils.flop_counter.FlopCounterMode``; ``flop_efficiency`` is the achieved
FLOP/s of a step divided by the fp32 matmul peak measured in the same run.
"""

from __future__ import annotations

import logging
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from commlearn.data.base import MultimodalBatch, MultimodalDataset
from commlearn.data.loader import BatchLoader
from commlearn.train import keep_freed_memory
from common import BenchResult, Metric, check_positive, peak_rss_mb, rss_mb, run_worker
from presets import get_preset, synthetic_images

# The public implementation at the paper preset on this machine type (issue "Speed"; not measured here).
PUBLIC_PAPER = {
    "step_s_in_loop": 9.6,
    "step_s_compute_only": 8.8,
    "pairs_per_s": 6.65,
    "gflop_per_step": 1335.0,
}


def _no_sync() -> None:
    """CPU work is done when the call returns: nothing to wait for."""


class _TimedDataset:
    """Forwards a :class:`MultimodalDataset` and records when each ``get_batch`` started and how long it took.

    ``sync`` waits for queued device work (``torch.cuda.synchronize`` on a GPU) before each time stamp.
    """

    def __init__(self, inner: MultimodalDataset, sync: Callable[[], None] = _no_sync) -> None:
        self.inner = inner
        self.sync = sync
        self.modality_specs = inner.modality_specs
        self.task_names = inner.task_names
        self.task_type = inner.task_type
        self.calls: list[tuple[float, float]] = []

    def __len__(self) -> int:
        return len(self.inner)

    def get_batch(self, index: Tensor) -> MultimodalBatch:
        self.sync()
        start = time.perf_counter()
        batch = self.inner.get_batch(index)
        self.sync()
        self.calls.append((start, time.perf_counter() - start))
        return batch


class _StepTimer(L.Callback):
    """Time stamps and resource usage at the end of every training batch; augmentation intervals via hooks.

    ``sync`` waits for queued device work before each time stamp (as in :class:`_TimedDataset`).
    """

    def __init__(self, sync: Callable[[], None] = _no_sync) -> None:
        self.sync = sync
        self.ends: list[float] = []
        self.usage: list[resource.struct_rusage] = []
        self.augment_calls: list[tuple[float, float]] = []
        self._aug_start = 0.0

    def attach(self, module: torch.nn.Module) -> None:
        """Time every forward of ``module`` (the method's augmentation)."""

        def pre(*_: Any) -> None:
            self.sync()
            self._aug_start = time.perf_counter()

        def post(*_: Any) -> None:
            self.sync()
            self.augment_calls.append((self._aug_start, time.perf_counter() - self._aug_start))

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.sync()
        self.ends.append(time.perf_counter())
        self.usage.append(resource.getrusage(resource.RUSAGE_SELF))


def _within(calls: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Total duration of the calls that started in (lo, hi]."""
    return sum(d for s, d in calls if lo < s <= hi)


def _count_flops(method: Any, batch: MultimodalBatch) -> tuple[float, float]:
    """FLOPs of one training step (augment + forward + backward) and of the augmentation alone."""
    with FlopCounterMode(display=False) as total:
        method.compute_loss(batch).loss.backward()
    method.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as aug:
        method.augment(batch.inputs, batch.padding)
    return float(total.get_total_flops()), float(aug.get_total_flops())


def _bare_steps(method: Any, dataset: MultimodalDataset, batch_size: int, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps without Lightning on pre-fetched batches (augment included).

    ``compute_loss`` → ``backward`` → AdamW step → ``zero_grad``: the same work as a step of the real loop
    minus data loading and the trainer's hooks and logging. One unmeasured step first (fresh optimiser).
    """
    if steps < 1:
        return []
    optimizer = method.configure_optimizers()
    method.train()
    batches = [dataset.get_batch(torch.arange(batch_size) + k) for k in range(steps + 1)]
    times: list[float] = []
    for batch in batches:
        start = time.perf_counter()
        method.compute_loss(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times[1:]


def _dataset(args: dict[str, Any]) -> MultimodalDataset:
    preset = get_preset(args["preset"])
    n_needed = args["batch_size"] * (args["warmup"] + args["steps"] + 1)
    if args["data"] == "trifeature":
        from commlearn.data.trifeature_pairs import build_trifeature

        if args["n_modalities"] != 2:
            raise ValueError(f"Trifeature pairs have 2 modalities, got n_modalities={args['n_modalities']}")
        data = build_trifeature(
            preset.render_settings(), seed=0, n_train_pairs=max(10_000, n_needed), n_probe_train_pairs=100,
            n_probe_test_pairs=100,
        )  # fmt: skip
        return data.pretrain_unbiased
    return synthetic_images(n_needed, args["n_modalities"], preset.image_size)


def train_worker(args: dict[str, Any]) -> dict[str, Any]:
    """Fit ``warmup + steps`` steps with Lightning and report per-step timings (runs in a worker process).

    Args:
        args: ``preset`` ("paper"/"cpu"), ``n_modalities``, ``batch_size``, ``warmup`` (≥ 1), ``steps``,
            ``data`` ("trifeature"/"synthetic"), ``count_flops`` (bool); optional ``bare_steps`` (steps timed
            again without Lightning afterwards) and ``threads`` (torch threads; default: torch's choice).

    Returns:
        JSON-ready dict: per-step ``cycle_s``, ``load_s``, ``augment_s``, ``user_s``, ``sys_s``,
        ``minor_faults``; ``bare_step_s``; ``gflop_step``/``gflop_augment`` (or None); ``rss_before_mb``,
        ``peak_rss_mb``.
    """
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args["warmup"] < 1:
        raise ValueError(
            f"warmup must be ≥ 1 (the first measured cycle starts at a step end), got {args['warmup']}"
        )
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    keep_freed_memory()  # as commlearn.train.fit does: the loop measured is the loop users run
    torch.manual_seed(0)
    preset = get_preset(args["preset"])
    dataset = _TimedDataset(_dataset(args))
    method = preset.build(args["n_modalities"])
    timer = _StepTimer()
    assert method.augment is not None
    timer.attach(method.augment)
    rss_before = rss_mb()
    gflop_step = gflop_aug = None
    if args["count_flops"]:
        flops, aug_flops = _count_flops(method, dataset.inner.get_batch(torch.arange(args["batch_size"])))
        gflop_step, gflop_aug = flops / 1e9, aug_flops / 1e9
        timer.augment_calls.clear()
    loader = BatchLoader(dataset, args["batch_size"], shuffle=True, drop_last=True, seed=0)
    trainer = L.Trainer(
        max_steps=args["warmup"] + args["steps"],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        log_every_n_steps=20,
        callbacks=[timer],
    )
    trainer.fit(method, loader)
    first = args["warmup"] - 1  # cycles k = first+1 .. : from the end of batch k-1 to the end of batch k
    out: dict[str, list[float]] = {
        k: [] for k in ("cycle_s", "load_s", "augment_s", "user_s", "sys_s", "minor_faults")
    }
    for k in range(first + 1, len(timer.ends)):
        lo, hi = timer.ends[k - 1], timer.ends[k]
        u0, u1 = timer.usage[k - 1], timer.usage[k]
        out["cycle_s"].append(hi - lo)
        out["load_s"].append(_within(dataset.calls, lo, hi))
        out["augment_s"].append(_within(timer.augment_calls, lo, hi))
        out["user_s"].append(u1.ru_utime - u0.ru_utime)
        out["sys_s"].append(u1.ru_stime - u0.ru_stime)
        out["minor_faults"].append(float(u1.ru_minflt - u0.ru_minflt))
    out["bare_step_s"] = _bare_steps(
        method, dataset.inner, args["batch_size"], int(args.get("bare_steps", 0))
    )
    return {
        **out,
        "gflop_step": gflop_step,
        "gflop_augment": gflop_aug,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "args": args,
    }


def bench_train_step(
    preset_name: str,
    quick: bool,
    timeout_s: float,
    warmup: int = 1,
    steps: int = 3,
    threads: int | None = None,
) -> BenchResult:
    """``step_pairs_per_s``, ``flop_efficiency`` and ``data_fraction`` of one preset in the real loop.

    Args:
        preset_name: "paper" or "cpu".
        quick: smoke run (paper preset at batch 8): targets are not judged.
        timeout_s: limit of the worker process.
        warmup: unmeasured steps first (≥ 1).
        steps: measured steps (then as many again without Lightning, for the loop overhead).
        threads: torch threads of the worker (None: torch's default).
    """
    preset = get_preset(preset_name)
    batch = 8 if quick and preset_name == "paper" else preset.batch_size
    args = {
        "preset": preset_name,
        "n_modalities": 2,
        "batch_size": batch,
        "warmup": warmup,
        "steps": steps,
        "data": "trifeature",
        "count_flops": True,
        "bare_steps": steps,
        "threads": threads,
    }
    res = BenchResult(
        f"step_{preset_name}",
        f"CoMM training step, {preset_name} preset, batch {batch}, in Lightning Trainer.fit with BatchLoader "
        "over Trifeature pairs",
    )
    r = run_worker("train", args, timeout_s)
    cycles, load, aug = r["cycle_s"], r["load_s"], r["augment_s"]
    judged = not quick
    res.metrics["step_pairs_per_s"] = Metric("pairs/s", [batch / c for c in cycles])
    res.metrics["step_s"] = Metric("s", cycles)
    res.metrics["compute_s"] = Metric(
        "s",
        [c - lo - a for c, lo, a in zip(cycles, load, aug, strict=True)],
        note="step minus load and augment",
    )
    res.metrics["achieved_gflops"] = Metric("GFLOP/s", [r["gflop_step"] / c for c in cycles])
    res.metrics["data_fraction"] = Metric(
        "fraction",
        [(lo + a) / c for c, lo, a in zip(cycles, load, aug, strict=True)],
        target="<= 0.10",
        judged=judged,
        note="(get_batch + augmentation) ÷ step",
    )
    res.metrics["load_fraction"] = Metric("fraction", [lo / c for c, lo in zip(cycles, load, strict=True)])
    res.metrics["augment_fraction"] = Metric("fraction", [a / c for c, a in zip(cycles, aug, strict=True)])
    bare = r["bare_step_s"]
    if bare:
        res.metrics["loop_overhead_fraction"] = Metric(
            "fraction",
            [c / statistics.median(bare) - 1.0 for c in cycles],
            note=f"step in Trainer.fit ÷ median step without Lightning ({len(bare)} steps) − 1",
        )
    threads_used = r["threads"]
    res.metrics["cpu_busy_fraction"] = Metric(
        "fraction",
        [(u + s) / (c * threads_used) for u, s, c in zip(r["user_s"], r["sys_s"], cycles, strict=True)],
        note=f"CPU time ÷ (wall × {threads_used} threads): ≈ 1 on a quiet machine, lower when it waited for a CPU",
    )
    res.metrics["sys_time_fraction"] = Metric(
        "fraction",
        [s / max(u + s, 1e-9) for u, s in zip(r["user_s"], r["sys_s"], strict=True)],
        note="kernel share of CPU time (page faults, memory zeroing)",
    )
    res.details = {
        "batch_size": batch,
        "warmup_steps": warmup,
        "measured_steps": len(cycles),
        "gflop_per_step": r["gflop_step"],
        "gflop_augment_per_step": r["gflop_augment"],
        "peak_rss_mb": r["peak_rss_mb"],
        "step_peak_mb": r["peak_rss_mb"] - r["rss_before_mb"],
        "minor_faults_per_step": r["minor_faults"],
        "worker_threads": r["threads"],
        "bare_step_s": bare,
    }
    res.details["judged"] = judged
    if preset_name == "paper" and not quick:
        res.details["public_implementation"] = PUBLIC_PAPER
        res.details["pairs_per_s_vs_public"] = (
            res.metrics["step_pairs_per_s"].median / PUBLIC_PAPER["pairs_per_s"]
        )
    return res


def add_flop_efficiency(result: BenchResult, peak_gflops: float) -> None:
    """Add ``flop_efficiency`` = achieved GFLOP/s of each step ÷ ``peak_gflops`` (the run's matmul peak)."""
    check_positive("peak_gflops", peak_gflops)
    achieved = result.metrics["achieved_gflops"].samples
    result.metrics["flop_efficiency"] = Metric(
        "fraction",
        [a / peak_gflops for a in achieved],
        target=">= 0.90" if result.name == "step_paper" else None,
        judged=bool(result.details.get("judged", False)),
        note=f"{result.details['gflop_per_step']:.0f} GFLOP/step ÷ step time ÷ {peak_gflops:.0f} GFLOP/s matmul peak",
    )
