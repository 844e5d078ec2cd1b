"""The benchmark suite's one entry point: ``python benchmarks/run.py [--quick] [--only NAMES] [--out DIR]``.

Runs every benchmark side by side in one run (same machine state, the matmul peak measured in the same run),
then writes ``results.json`` (every sample) and ``RESULTS.md`` (min/median/max tables) plus the scaling plots
into ``benchmarks/`` — or ``benchmarks/out/`` (git-ignored) for ``--quick``, a smoke run with small sizes that never
overwrites the full results. See ``benchmarks/README.md`` for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench_augment import bench_augment
from bench_fusion import bench_fusion
from bench_probe import bench_probe, bench_probe_round
from bench_render import bench_render
from bench_scaling import bench_scaling, plot_scaling
from bench_train import add_flop_efficiency, bench_train_step
from common import BENCH_DIR, BenchResult, Metric, cpu_reading, machine_info, matmul_gflops, other_cpu_share
from report import write_json, write_markdown

GROUPS = ("render", "step", "fusion", "augment", "probe", "scaling")


@dataclass(frozen=True)
class Plan:
    """Sizes, repeats and time limits of one mode (full or quick)."""

    render_fast: int
    render_refs: int
    render_full_split: bool
    step_paper: tuple[int, int]  # (warmup, measured steps)
    step_cpu: tuple[int, int]
    fusion_paper: bool
    fusion_repeats: int
    augment_batch: dict[str, int]
    augment_repeats: int
    probe_size: tuple[int, int, int]  # (train rows, test rows, dims)
    probe_repeats: int
    probe_round: tuple[str, int, int | None]  # (preset, probe-train pairs, probe-test pairs or all)
    scaling_batches: tuple[int, ...]
    scaling_modalities: tuple[int, ...]
    scaling_steps: tuple[int, int]
    worker_timeout_s: float


FULL = Plan(
    render_fast=256,
    render_refs=5,
    render_full_split=True,
    step_paper=(1, 3),
    step_cpu=(2, 10),
    fusion_paper=True,
    fusion_repeats=3,
    augment_batch={"paper": 64, "cpu": 64},
    augment_repeats=3,
    probe_size=(10_000, 2_000, 512),
    probe_repeats=3,
    probe_round=("paper", 10_000, None),
    scaling_batches=(32, 64, 128, 256, 512),
    scaling_modalities=(2, 3, 4, 5, 6),
    scaling_steps=(1, 3),
    worker_timeout_s=420.0,
)
QUICK = Plan(
    render_fast=32,
    render_refs=1,
    render_full_split=False,
    step_paper=(1, 1),
    step_cpu=(1, 2),
    fusion_paper=False,
    fusion_repeats=1,
    augment_batch={"paper": 8, "cpu": 16},
    augment_repeats=1,
    probe_size=(2_000, 500, 128),
    probe_repeats=1,
    probe_round=("cpu", 600, 300),
    scaling_batches=(16, 32, 64),
    scaling_modalities=(2, 3, 4),
    scaling_steps=(1, 1),
    worker_timeout_s=150.0,
)


Thunk = Callable[[], BenchResult]


def _benchmarks(plan: Plan, quick: bool, threads: int | None) -> dict[str, list[tuple[str, Thunk]]]:
    """The benchmarks of each group as (name, thunk) pairs, run in this order."""
    preset, n_train, n_test = plan.probe_round
    steps = plan.scaling_steps
    timeout = plan.worker_timeout_s
    fusion: list[tuple[str, Thunk]] = [
        ("fusion_cpu", lambda: bench_fusion("cpu", (2, 3, 5), 128, 16, 128, 4, plan.fusion_repeats, 30.0))
    ]
    if plan.fusion_paper:
        fusion.append(
            (
                "fusion_paper",
                lambda: bench_fusion("paper", (2, 3, 5), 64, 36, 512, 8, plan.fusion_repeats, 60.0),
            )
        )
    return {
        "render": [
            (
                "render_paper",
                lambda: bench_render(
                    "paper", plan.render_fast, plan.render_refs, 60.0, plan.render_full_split
                ),
            ),
            (
                "render_cpu",
                lambda: bench_render("cpu", plan.render_fast, plan.render_refs, 30.0, plan.render_full_split),
            ),
        ],
        "step": [
            ("step_paper", lambda: bench_train_step("paper", quick, timeout, *plan.step_paper, threads)),
            ("step_cpu", lambda: bench_train_step("cpu", quick, timeout, *plan.step_cpu, threads)),
        ],
        "fusion": fusion,
        "augment": [
            (
                "augment_paper",
                lambda: bench_augment("paper", plan.augment_batch["paper"], plan.augment_repeats, 60.0),
            ),
            (
                "augment_cpu",
                lambda: bench_augment("cpu", plan.augment_batch["cpu"], plan.augment_repeats, 60.0),
            ),
        ],
        "probe": [
            ("probe_synthetic", lambda: bench_probe(*plan.probe_size, plan.probe_repeats, 90.0)),
            (f"probe_round_{preset}", lambda: bench_probe_round(preset, n_train, n_test)),
        ],
        "scaling": [
            (
                "scaling_batch",
                lambda: bench_scaling(
                    "batch", plan.scaling_batches, "cpu", *steps, timeout, not quick, threads
                ),
            ),
            (
                "scaling_modalities",
                lambda: bench_scaling(
                    "modalities", plan.scaling_modalities, "cpu", *steps, timeout, not quick
                ),
            ),
        ],
    }


BUSY_OTHER_SHARE = 0.05
"""A run is flagged busy when other processes took more than this share of all CPUs during it."""


def _run_one(name: str, thunk: Thunk) -> BenchResult:
    start = time.perf_counter()
    try:
        result = thunk()
    except Exception as e:  # noqa: BLE001 - one failing benchmark must not lose the others' results
        result = BenchResult(name, "failed before reporting", error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    result.seconds = time.perf_counter() - start
    return result


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat (< 3 min)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups from {','.join(GROUPS)}")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default benchmarks/, or benchmarks/out/ with --quick)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and in the workers (default: torch's choice)",
    )
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be ≥ 1, got {args.threads}")
    groups = [g for g in args.only.split(",") if g]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        p.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    args.groups = groups
    return args


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """Run the selected benchmarks and write the reports; returns the results."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    plan = QUICK if args.quick else FULL
    out: Path = args.out if args.out is not None else (BENCH_DIR / "out" if args.quick else BENCH_DIR)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cpu_at_start = cpu_reading()
    meta: dict = {
        "command": " ".join(["python benchmarks/run.py", *argv]),
        "mode": "quick" if args.quick else "full",
    }
    meta["machine"] = machine_info()
    peak_result = BenchResult("matmul_peak", "fp32 2048×2048 matmul with all torch threads, GFLOP/s")
    peak_samples = matmul_gflops(2048, repeats=3 if args.quick else 10)
    peak_result.metrics["matmul_gflops"] = Metric("GFLOP/s", peak_samples)

    results: list[BenchResult] = [peak_result]
    thunks = _benchmarks(plan, args.quick, args.threads)
    for group in args.groups:
        for name, thunk in thunks[group]:
            result = _run_one(name, thunk)
            results.append(result)
            print(f"[{time.perf_counter() - start:6.0f} s] {result.name}: {result.seconds:.0f} s"
                  + (f" — ERROR {result.error}" if result.error else ""), flush=True)  # fmt: skip
    end_samples = matmul_gflops(2048, repeats=3 if args.quick else 10)
    peak_result.metrics["matmul_gflops"].samples.extend(end_samples)
    peak_result.details = {"at_start": peak_samples, "at_end": end_samples}
    meta["peak_gflops"] = max(peak_samples + end_samples)
    for r in results:
        if r.name.startswith("step_") and r.error is None:
            add_flop_efficiency(r, meta["peak_gflops"])
    meta["load_average_at_end"] = list(os.getloadavg())
    # Load averages count this suite's own threads and lag by minutes (a run started right after other work
    # reads busy); the CPU time other processes took during the run is the direct measure.
    meta["other_cpu_share"] = other_cpu_share(cpu_at_start, cpu_reading())
    if meta["other_cpu_share"] is not None:
        meta["busy"] = meta["other_cpu_share"] > BUSY_OTHER_SHARE
    else:
        cores = meta["machine"]["logical_cpus"] or 1
        meta["busy"] = (
            max(meta["machine"]["load_average_at_start"][0], meta["load_average_at_end"][0])
            > 0.5 * cores + 0.5
        )
    meta["total_seconds"] = time.perf_counter() - start
    plots = []
    for r in results:
        if r.name.startswith("scaling_") and "points" in r.details:
            name = f"{r.name}.png"
            plot_scaling(r, out / name)
            plots.append(name)
    write_json(out / "results.json", meta, results)
    write_markdown(out / "RESULTS.md", meta, results, plots)
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'} in {meta['total_seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
