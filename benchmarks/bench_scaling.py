"""Scaling of a CoMM training step with the batch size and with the number of modalities.

Each point is a fresh worker process running the real loop (Lightning ``Trainer.fit`` + ``BatchLoader``) on
random uint8 images of the chosen preset (timing does not depend on the pixels); it reports the step time and
the step's memory: peak RSS minus the RSS before the first step (model, data and libraries excluded).
Linearity is judged by the largest relative residual of the line that minimises the relative residuals
(``common.linear_fit``); for time, through each point's fastest step, the one least disturbed by other processes.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from common import BenchResult, Metric, linear_fit, run_worker


def bench_scaling(
    axis: str,
    values: tuple[int, ...],
    preset: str,
    warmup: int,
    steps: int,
    timeout_s: float,
    judged: bool,
    threads: int | None = None,
) -> BenchResult:
    """Step time and step memory against ``axis`` ("batch" or "modalities") at ``values``.

    Args:
        axis: "batch" (2 modalities, batch sizes ``values``) or "modalities" (batch 64, ``values`` modalities).
        values: at least 3 points.
        preset: model preset of every point.
        warmup, steps: unmeasured and measured steps per point.
        timeout_s: limit of each worker.
        judged: whether the linearity targets apply (not in quick runs).
        threads: torch threads of the workers (None: torch's default).
    """
    if axis not in ("batch", "modalities"):
        raise ValueError(f"axis must be 'batch' or 'modalities', got {axis!r}")
    if len(values) < 3:
        raise ValueError(f"a scaling curve needs at least 3 points, got {len(values)}")
    label = "batch size" if axis == "batch" else "modalities"
    res = BenchResult(
        f"scaling_{axis}",
        f"CoMM step time and step memory vs {label} ({preset} preset, real loop, fresh process per point)",
    )
    points: list[dict[str, Any]] = []
    for v in values:
        args = {
            "preset": preset,
            "n_modalities": v if axis == "modalities" else 2,
            "batch_size": v if axis == "batch" else 64,
            "warmup": warmup,
            "steps": steps,
            "data": "synthetic",
            "count_flops": False,
            "threads": threads,
        }
        r = run_worker("train", args, timeout_s)
        cycles = r["cycle_s"]
        busy = [(u + s) / (c * r["threads"]) for u, s, c in zip(r["user_s"], r["sys_s"], cycles, strict=True)]
        points.append(
            {
                "x": v,
                "step_s": statistics.median(cycles),
                "step_s_min": min(cycles),
                "step_s_max": max(cycles),
                "cpu_busy": statistics.median(busy),
                "step_peak_mb": r["peak_rss_mb"] - r["rss_before_mb"],
                "peak_rss_mb": r["peak_rss_mb"],
            }
        )
    xs = [float(p["x"]) for p in points]
    time_fit = linear_fit(xs, [p["step_s_min"] for p in points])  # the least-disturbed step of each point
    mem_fit = linear_fit(xs, [p["step_peak_mb"] for p in points])
    note = f"largest relative residual of the relative least-squares line through {len(points)} points"
    res.metrics["time_linearity_residual"] = Metric(
        "fraction", [time_fit["max_rel_residual"]], target="<= 0.15", judged=judged, note=note
    )
    res.metrics["memory_linearity_residual"] = Metric(
        "fraction", [mem_fit["max_rel_residual"]], target="<= 0.15", judged=judged, note=note
    )
    unit = "sample" if axis == "batch" else "modality"
    res.details = {
        "axis": axis,
        "preset": preset,
        "points": points,
        "time_fit": time_fit,
        "memory_fit": mem_fit,
        f"ms_per_{unit}": 1e3 * time_fit["slope"],
        f"mb_per_{unit}": mem_fit["slope"],
    }
    return res


def plot_scaling(result: BenchResult, path: Path) -> None:
    """Two panels (step time, step memory) against the swept quantity, points with min–max bars and the fit."""
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
        ax.plot(xs, [fit["intercept"] + fit["slope"] * x for x in xs], "--", label="least-squares line")
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
