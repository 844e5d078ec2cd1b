"""CoMM training steps in the loop users run, each measurement in a fresh worker process.

``step``: throughput and data share at a preset on Trifeature pairs. ``scaling``: step time and step memory vs
the batch size and vs the number of image modalities (cpu preset, random images: timing does not depend on
the pixels). The worker (``python benchmarks/bench_step.py '<json args>'``, :func:`worker`) first calls
``commlearn.speed.keep_freed_memory()`` as the ``commlearn`` command line does, then builds everything as
``commlearn fit`` does — ``load_config`` → ``build_data`` → ``commlearn.train.make_method`` — and runs Lightning
``Trainer.fit`` with the real ``BatchLoader``. Per step it records the cycle (end of one training batch to the
end of the next), the time inside ``get_batch`` (a timing proxy of the data set), the time inside
``method.augment`` (module hooks) and the process's CPU time; a fresh process gives each measurement its own
heap, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import logging
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from commlearn.config import RunConfig, load_config
from commlearn.data.base import ArrayDataset, MultimodalBatch, MultimodalDataset
from commlearn.data.loader import BatchLoader
from commlearn.data.registry import build_data
from commlearn.speed import keep_freed_memory
from commlearn.train import make_method
from common import RESULT_MARKER, BenchResult, Metric, linear_fit, run_worker

PUBLIC_PAPER_PAIRS_PER_S = 6.65  # the public implementation, paper preset, this machine type (issue "Speed")


def _no_sync() -> None:
    """CPU work is done when a call returns: nothing to wait for."""


class TimedDataset:
    """A data set's batches for the loader, recording ``(start, seconds)`` of every ``get_batch``; ``sync``
    waits for queued device work (``torch.cuda.synchronize`` on a GPU) before each time stamp."""

    def __init__(self, inner: MultimodalDataset, sync: Callable[[], None] = _no_sync) -> None:
        self.inner, self.sync = inner, sync
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


class StepTimer(L.Callback):
    """The time and the process's CPU seconds at the end of every training batch, and ``(start, seconds)`` of
    every forward of the module given to :meth:`attach` (the augmentation)."""

    def __init__(self, sync: Callable[[], None] = _no_sync) -> None:
        self.sync = sync
        self.ends: list[float] = []
        self.cpu: list[float] = []
        self.augment_calls: list[tuple[float, float]] = []

    def attach(self, module: torch.nn.Module) -> None:
        start = [0.0]

        def pre(*_: Any) -> None:
            self.sync()
            start[0] = time.perf_counter()

        def post(*_: Any) -> None:
            self.sync()
            self.augment_calls.append((start[0], time.perf_counter() - start[0]))

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.sync()
        self.ends.append(time.perf_counter())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu.append(usage.ru_utime + usage.ru_stime)


def within(calls: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Total seconds of the calls that started in (lo, hi]."""
    return sum(d for s, d in calls if lo < s <= hi)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def measure_steps(
    cfg: RunConfig, dataset: MultimodalDataset, warmup: int, steps: int, sync: Callable[[], None] = _no_sync
) -> dict[str, Any]:
    """Fit ``warmup + steps`` steps of the method ``cfg`` describes (``make_method``) on ``dataset`` with
    Lightning on ``cfg.trainer.accelerator`` at ``cfg.trainer.precision``, batches of ``cfg.data.batch_size``.

    Returns:
        per measured step ``cycle_s``, ``load_s``, ``augment_s``, ``cpu_s``; ``batch_size``, ``threads``,
        ``rss_before_mb`` (method and data built) and ``peak_rss_mb``.
    """
    if warmup < 1:
        raise ValueError(f"warmup must be ≥ 1 (a measured cycle starts at a step end), got {warmup}")
    torch.manual_seed(cfg.trainer.seed)
    timed = TimedDataset(dataset, sync)
    method = make_method(cfg, list(dataset.modality_specs), None)
    timer = StepTimer(sync)
    assert method.augment is not None
    timer.attach(method.augment)
    rss_before = _status_mb("VmRSS")
    trainer = L.Trainer(
        max_steps=warmup + steps, accelerator=cfg.trainer.accelerator, devices=1,
        precision=cfg.trainer.precision, logger=False, enable_checkpointing=False,  # type: ignore[arg-type]
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0, callbacks=[timer],
    )  # fmt: skip
    loader = BatchLoader(timed, cfg.data.batch_size, shuffle=True, drop_last=True, seed=cfg.trainer.seed)
    trainer.fit(method, loader)
    spans = list(zip(timer.ends[warmup - 1 : -1], timer.ends[warmup:], strict=True))
    return {
        "cycle_s": [hi - lo for lo, hi in spans],
        "load_s": [within(timed.calls, lo, hi) for lo, hi in spans],
        "augment_s": [within(timer.augment_calls, lo, hi) for lo, hi in spans],
        "cpu_s": [b - a for a, b in zip(timer.cpu[warmup - 1 : -1], timer.cpu[warmup:], strict=True)],
        "batch_size": cfg.data.batch_size,
        "threads": torch.get_num_threads(),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _status_mb("VmHWM"),
    }


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One measurement on the CPU (runs in the worker process).

    Args:
        args: ``preset`` ("paper"/"cpu": the packaged ``trifeature-<preset>`` config), ``overrides``
            (``section.key=value``), ``warmup``, ``steps``, optional ``images`` (n: n modalities of random
            images of the preset's size instead of Trifeature pairs) and ``threads`` (torch threads).
    """
    keep_freed_memory()  # as the commlearn command line does: the loop measured is the loop users run
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    cfg = load_config(f"trifeature-{args['preset']}", [*args.get("overrides", []), "trainer.accelerator=cpu"])
    if args.get("images"):  # random uint8 images (timing does not depend on the pixels), no temporaries
        n = cfg.data.batch_size * (args["warmup"] + args["steps"] + 1)
        shape = (n, 3, cfg.data.options["render"]["canvas_size"], cfg.data.options["render"]["canvas_size"])
        g = torch.Generator().manual_seed(0)
        images = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=g) for _ in range(args["images"])]
        dataset: MultimodalDataset = ArrayDataset(images)
    else:
        dataset = build_data(cfg.data, cfg.trainer.seed).train
    return measure_steps(cfg, dataset, args["warmup"], args["steps"])


def step_metrics(r: dict[str, Any], judged: bool) -> dict[str, Metric]:
    """Step time, pairs/s, data share (target ≤ 0.10) and CPU use of a :func:`measure_steps` result."""
    cycles, load, aug = r["cycle_s"], r["load_s"], r["augment_s"]
    data = [(lo + a) / c for c, lo, a in zip(cycles, load, aug, strict=True)]
    busy = [u / (c * r["threads"]) for u, c in zip(r["cpu_s"], cycles, strict=True)]
    return {
        "step_s": Metric("s", cycles),
        "step_pairs_per_s": Metric("pairs/s", [r["batch_size"] / c for c in cycles]),
        "data_fraction": Metric(
            "fraction", data, "<= 0.10", judged, note="(get_batch + augmentation) ÷ step"
        ),
        "load_s": Metric("s", load, note="get_batch"),
        "augment_s": Metric("s", aug, note="method.augment, inside the step"),
        "cpu_busy_fraction": Metric(
            "fraction",
            busy,
            note=f"CPU s ÷ (wall s × {r['threads']} threads): ≈ 1 when it had its cores to itself",
        ),
    }


def bench_step(
    preset: str, quick: bool, warmup: int, steps: int, timeout_s: float, threads: int | None
) -> BenchResult:
    """A CoMM step of a preset in ``Trainer.fit`` over Trifeature pairs (quick: the paper preset at batch 8)."""
    overrides = ["data.batch_size=8"] if quick and preset == "paper" else []
    args = {"preset": preset, "overrides": overrides, "warmup": warmup, "steps": steps, "threads": threads}
    r = run_worker(Path(__file__), args, timeout_s)
    res = BenchResult(
        f"step_{preset}",
        f"CoMM training step, trifeature-{preset} preset, batch {r['batch_size']}, in Lightning Trainer.fit "
        "fed by the BatchLoader over Trifeature pairs (fresh process)",
        step_metrics(r, judged=not quick),
    )
    if preset == "paper":
        pairs = res.metrics["step_pairs_per_s"]
        pairs.public = PUBLIC_PAPER_PAIRS_PER_S
        res.metrics["pairs_per_s_vs_public"] = Metric(
            "x", [p / PUBLIC_PAPER_PAIRS_PER_S for p in pairs.samples], target=">= 1.0", judged=not quick
        )
    res.details = {k: r[k] for k in ("batch_size", "threads", "rss_before_mb", "peak_rss_mb")}
    return res


def bench_scaling(
    axis: str,
    values: tuple[int, ...],
    warmup: int,
    steps: int,
    timeout_s: float,
    judged: bool,
    threads: int | None,
) -> BenchResult:
    """Step time and step memory (peak RSS − RSS before training) of the cpu preset against ``axis``: "batch"
    (2 modalities, batch ``values``) or "modalities" (batch 64, ``values`` image modalities); linearity as the
    largest relative residual of the line of least relative residuals (time: through each point's fastest
    step, the one least disturbed by other processes)."""
    if axis not in ("batch", "modalities"):
        raise ValueError(f"axis must be 'batch' or 'modalities', got {axis!r}")
    if len(values) < 3:
        raise ValueError(f"a scaling curve needs at least 3 points, got {len(values)}")
    points = []
    for v in values:
        images, batch = (2, v) if axis == "batch" else (v, 64)
        args = {"preset": "cpu", "overrides": [f"data.batch_size={batch}"], "images": images,
                "warmup": warmup, "steps": steps, "threads": threads}  # fmt: skip
        r = run_worker(Path(__file__), args, timeout_s)
        c = r["cycle_s"]
        mem = r["peak_rss_mb"] - r["rss_before_mb"]
        points.append({"x": v, "step_s": statistics.median(c), "step_s_min": min(c), "step_s_max": max(c),
                       "step_peak_mb": mem})  # fmt: skip
    xs = [float(p["x"]) for p in points]
    time_fit = linear_fit(xs, [p["step_s_min"] for p in points])
    memory_fit = linear_fit(xs, [p["step_peak_mb"] for p in points])
    note = f"largest relative residual of the line of least relative residuals, {len(points)} points"
    res = BenchResult(
        f"scaling_{axis}",
        f"CoMM step time and step memory vs {axis} (trifeature-cpu model, random images, Trainer.fit, "
        "fresh process per point)",
    )
    for name, fit in (("time", time_fit), ("memory", memory_fit)):
        res.metrics[f"{name}_linearity_residual"] = Metric(
            "fraction", [fit["max_rel_residual"]], target="<= 0.15", judged=judged, note=note
        )
    per = "sample" if axis == "batch" else "modality"
    res.details = {"axis": axis, "per": per, "points": points, "time_fit": time_fit, "memory_fit": memory_fit}
    return res


def plot_scaling(result: BenchResult, path: Path) -> None:
    """Step time (median with min–max bars, fastest step fitted) and step memory against the swept quantity,
    each with its fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = result.details
    pts = d["points"]
    xs = [p["x"] for p in pts]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    lo = [p["step_s"] - p["step_s_min"] for p in pts]
    hi = [p["step_s_max"] - p["step_s"] for p in pts]
    ax_t.errorbar(xs, [p["step_s"] for p in pts], yerr=[lo, hi], fmt="o", capsize=3, label="median (min–max)")
    ax_t.plot(xs, [p["step_s_min"] for p in pts], "x", label="fastest step (fitted)")
    ax_m.plot(xs, [p["step_peak_mb"] for p in pts], "o", label="peak RSS − RSS before training")
    for ax, fit in ((ax_t, d["time_fit"]), (ax_m, d["memory_fit"])):
        ax.plot(xs, [fit["intercept"] + fit["slope"] * x for x in xs], "--", label="fitted line")
        ax.set_xlabel("batch size" if d["axis"] == "batch" else "number of modalities")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_t.set_ylabel("step time (s)")
    ax_m.set_ylabel("step memory (MB)")
    fig.suptitle(result.description, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    print(RESULT_MARKER + json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
