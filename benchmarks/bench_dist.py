"""Loss memory per rank against the number of processes, with simulated ranks (no process group).

With W processes of B_local samples each (B_global = W · B_local), commlearn's losses compute each rank's own
rows against the gathered columns (``commlearn.dist``): a rank holds O(B_local · B_global) of loss memory. A
loss that computed the whole global batch on every rank would hold O(B_global²). Both are measured here for
the CoMM loss (two modalities: three NCE pairs per view pair) in one process: ``commlearn.dist`` is patched so
that the gather hands back W copies of this rank's rows — the shapes, and so the memory, of a real gather —
and the whole-batch loss is the one-process loss on B_global rows.

Memory is the peak of the bytes the loss's forward and backward pass allocate beyond their inputs: on a GPU
``torch.cuda.max_memory_allocated``, on the CPU the allocation timeline of ``torch.profiler`` (each operator's
own allocations, and the frees, in time order).

Run alone: ``python benchmarks/bench_dist.py [--quick]``; in the suite: ``python benchmarks/run.py --only dist``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from commlearn import dist
from commlearn.losses import CoMMLoss
from common import BENCH_DIR, BenchResult, Metric, linear_fit

MB = 2**20
N_EMBEDDINGS = 3  # CoMM with two modalities: two single-modality fusions and the full one, per view


def _copies(world: int) -> Callable[[Tensor], Tensor]:
    """A stand-in for the gather: ``world`` copies of the rows along axis 0 (the identity on one process)."""
    return lambda x: x if world == 1 else x.repeat(world, *([1] * (x.ndim - 1)))


@contextlib.contextmanager
def simulated_ranks(world: int) -> Iterator[None]:
    """Inside, ``commlearn.dist`` acts as rank 0 of ``world`` processes whose rows equal this one's: the gather
    returns ``world`` copies (with gradient), sums over ranks multiply by ``world``."""
    saved = (dist.world_size, dist.rank, dist.gather_with_grad, dist.sum_over_ranks)
    dist.world_size = lambda: world  # type: ignore[assignment]
    dist.rank = lambda: 0  # type: ignore[assignment]
    dist.gather_with_grad = _copies(world)  # type: ignore[assignment]
    dist.sum_over_ranks = lambda x: x * world  # type: ignore[assignment]
    try:
        yield
    finally:
        dist.world_size, dist.rank, dist.gather_with_grad, dist.sum_over_ranks = saved  # type: ignore[assignment]


def peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes ``fn`` allocates beyond what is allocated when it starts."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    points = []
    for e in prof.events():  # frees are "[memory]" events; an operator's allocations are its own usage
        used = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        if used:
            points.append((e.time_range.start, used))
    now = peak = 0
    for _, used in sorted(points):
        now += used
        peak = max(peak, now)
    return peak


def loss_memory(b_local: int, world: int, dim: int, mode: str, device: torch.device) -> int:
    """Peak bytes of one CoMM loss forward + backward on a rank of ``world`` processes: ``mode`` ``"rows"``
    (this rank's B_local rows against the gathered columns) or ``"whole"`` (the whole B_global batch)."""
    if mode not in ("rows", "whole"):
        raise ValueError(f"mode must be 'rows' or 'whole', got {mode!r}")
    rows = b_local if mode == "rows" else b_local * world
    g = torch.Generator(device=device).manual_seed(0)
    z1 = [torch.randn(rows, dim, generator=g, device=device, requires_grad=True) for _ in range(N_EMBEDDINGS)]
    z2 = [torch.randn(rows, dim, generator=g, device=device, requires_grad=True) for _ in range(N_EMBEDDINGS)]
    loss_fn = CoMMLoss(0.1)

    def step() -> None:
        loss: Tensor = loss_fn(z1, z2)
        loss.backward()

    if mode == "rows":
        with simulated_ranks(world):
            return peak_bytes(step, device)
    return peak_bytes(step, device)


def bench_dist_memory(b_local: int, worlds: tuple[int, ...], dim: int, device: str = "auto") -> BenchResult:
    """Loss memory per rank for each number of processes in ``worlds``: own rows vs the whole global batch."""
    if len(worlds) < 3:
        raise ValueError(f"a scaling curve needs at least 3 numbers of processes, got {len(worlds)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    points = []
    for w in worlds:
        rows = loss_memory(b_local, w, dim, "rows", dev) / MB
        whole = loss_memory(b_local, w, dim, "whole", dev) / MB
        points.append({"world": w, "b_global": w * b_local, "rows_mb": rows, "whole_mb": whole})
        print(f"  W={w:>3} B_global={w * b_local:>6}: own rows {rows:9.2f} MB, whole batch {whole:9.2f} MB")
    rows_fit = linear_fit([float(b_local * p["b_global"]) for p in points], [p["rows_mb"] for p in points])
    whole_fit = linear_fit([float(p["b_global"] ** 2) for p in points], [p["whole_mb"] for p in points])
    res = BenchResult(
        "dist_loss_memory",
        f"CoMM loss (2 modalities, d={dim}) forward + backward memory per rank on {dev.type}, B_local={b_local}: "
        "own rows against gathered columns (simulated ranks) vs the whole global batch",
    )
    note = f"largest relative residual of the fitted line, {len(points)} numbers of processes"
    res.metrics["rows_vs_blocal_bglobal_residual"] = Metric(
        "fraction", [rows_fit["max_rel_residual"]], "<= 0.15", note=note
    )
    res.metrics["whole_vs_bglobal2_residual"] = Metric("fraction", [whole_fit["max_rel_residual"]], note=note)
    last = points[-1]
    res.metrics[f"saving_at_W{last['world']}"] = Metric(
        "x", [last["whole_mb"] / last["rows_mb"]], note="whole-batch loss memory / own-rows loss memory"
    )
    for p in points:
        res.metrics[f"rows_mb_W{p['world']}"] = Metric("MB", [p["rows_mb"]])
        res.metrics[f"whole_mb_W{p['world']}"] = Metric("MB", [p["whole_mb"]])
    res.details = {
        "ranks": points,
        "b_local": b_local,
        "dim": dim,
        "device": dev.type,
        "rows_fit": rows_fit,
        "whole_fit": whole_fit,
    }
    return res


def plot_dist_memory(result: BenchResult, path: Path) -> None:
    """Measured memory per rank against W, with the fitted c·B_local·B_global and c·B_global² lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = result.details
    pts, b = d["ranks"], d["b_local"]
    ws = [p["world"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ws, [p["rows_mb"] for p in pts], "o", label="own rows vs gathered columns (commlearn)")
    ax.plot(ws, [p["whole_mb"] for p in pts], "s", label="whole global batch on every rank")
    fr, fw = d["rows_fit"], d["whole_fit"]
    ax.plot(
        ws, [fr["intercept"] + fr["slope"] * b * w * b for w in ws], "--", label="O(B_local · B_global) fit"
    )
    ax.plot(ws, [fw["intercept"] + fw["slope"] * (w * b) ** 2 for w in ws], ":", label="O(B_global²) fit")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ws, [str(w) for w in ws])
    ax.set_xlabel(f"processes W (B_local = {b}, B_global = W · {b})")
    ax.set_ylabel("loss memory per rank (MB)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"CoMM loss, forward + backward, d = {d['dim']}, on {d['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = p.parse_args(argv)
    b_local, worlds = (32, (1, 2, 4, 8)) if args.quick else (128, (1, 2, 4, 8, 16))
    result = bench_dist_memory(b_local, worlds, 128, args.device)
    out = BENCH_DIR / ("out" if args.quick else "")
    out.mkdir(exist_ok=True)
    plot_dist_memory(result, out / "dist_loss_memory.png")
    print(json.dumps({k: round(m.median, 3) for k, m in result.metrics.items()}))
    return result.to_dict()


if __name__ == "__main__":
    main(sys.argv[1:])
