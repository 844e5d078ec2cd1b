"""The CPU benchmark suite's entry point: ``python benchmarks/run.py [--quick] [--only GROUPS] [--threads N]``.

Runs the benchmarks side by side in one run, on one machine state, then writes ``results.json`` (every
sample), ``RESULTS.md`` (the tables) and the scaling plots into ``benchmarks/`` — or into ``benchmarks/out/``
(git-ignored) for ``--quick``, a smoke run at small sizes that never overwrites the full results. What each
benchmark measures: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench_data import bench_data
from bench_dist import bench_dist_memory, plot_dist_memory
from bench_parts import bench_augment, bench_fusion, bench_probe_round, bench_render, paper_fusion_geometry
from bench_step import bench_scaling, bench_step, plot_scaling
from commlearn.experiments.trifeature import time_to_accuracy
from commlearn.speed import keep_freed_memory
from common import BENCH_DIR, Bench, run_suite, write_json, write_markdown

#: Learning curves of the cpu preset, written by the command in :data:`CURVES_COMMAND` (not re-run here).
CURVES = BENCH_DIR.parent / "docs" / "trifeature_cpu_curves.json"
CURVES_COMMAND = (
    "taskset -c 0 env OMP_NUM_THREADS=1 commlearn experiment trifeature --preset cpu "
    "--methods comm,comm_full_only,comm_masked_only --curves 1,2,3,4"
)

GROUPS = ("render", "augment", "fusion", "step", "data", "probe", "scaling", "dist")
#: Groups a run without ``--only`` leaves out (slow, or measuring something else than the CPU targets).
OPTIONAL_GROUPS = ("dist",)


@dataclass(frozen=True)
class Plan:
    """Sizes, repeats and limits of one mode."""

    render_fast: int  # images the vectorised renderer draws per repeat
    render_repeats: int
    full_split: bool
    augment_batch: int
    repeats: int  # augmentation and fusion
    fusion_batch: int  # rows: CoMM fuses both views, 2 × the batch size
    step_paper: tuple[int, int]  # (warm-up, measured) steps
    step_cpu: tuple[int, int]
    data_steps: tuple[int, int]  # (warm-up, measured) steps of each of the disk and memory runs
    probe_round: tuple[str, tuple[str, ...]]  # (preset, overrides)
    scaling_batches: tuple[int, ...]
    scaling_modalities: tuple[int, ...]
    scaling_steps: tuple[int, int]
    timeout_s: float  # of each worker process
    dist_b_local: int  # loss memory per rank: samples per process
    dist_worlds: tuple[int, ...]  # … and the numbers of processes simulated


FULL = Plan(
    render_fast=256, render_repeats=5, full_split=True, augment_batch=64, repeats=3, fusion_batch=128,
    step_paper=(1, 3), step_cpu=(2, 10), data_steps=(1, 3), probe_round=("paper", ()),
    scaling_batches=(32, 64, 128, 256, 512), scaling_modalities=(2, 3, 4, 5, 6), scaling_steps=(1, 3), timeout_s=420.0,
    dist_b_local=128, dist_worlds=(1, 2, 4, 8, 16),
)  # fmt: skip
QUICK = Plan(
    render_fast=32, render_repeats=1, full_split=False, augment_batch=8, repeats=1, fusion_batch=16,
    step_paper=(1, 1), step_cpu=(1, 2), data_steps=(1, 1),
    probe_round=("cpu", ("data.options.n_probe_train_pairs=600", "data.options.n_probe_test_pairs=300")),
    scaling_batches=(16, 32, 64), scaling_modalities=(2, 3, 4), scaling_steps=(1, 1), timeout_s=150.0,
    dist_b_local=32, dist_worlds=(1, 2, 4, 8),
)  # fmt: skip


def benchmarks(plan: Plan, quick: bool, threads: int | None) -> dict[str, list[Bench]]:
    """The benchmarks of each group, in the order they run."""
    fusion_args = (plan.fusion_batch, *paper_fusion_geometry(), plan.repeats, 120.0)
    preset, overrides = plan.probe_round
    scaling_args = (*plan.scaling_steps, plan.timeout_s, not quick, threads)
    return {
        "render": [
            (
                f"render_{p}",
                lambda p=p: bench_render(p, plan.render_fast, plan.render_repeats, plan.full_split),
            )
            for p in ("paper", "cpu")
        ],
        "augment": [("augment_paper", lambda: bench_augment(plan.augment_batch, plan.repeats, 60.0))],
        "fusion": [("fusion", lambda: bench_fusion((2, 3, 5), *fusion_args))],
        "step": [
            ("step_paper", lambda: bench_step("paper", quick, *plan.step_paper, plan.timeout_s, threads)),
            ("step_cpu", lambda: bench_step("cpu", quick, *plan.step_cpu, plan.timeout_s, threads)),
        ],
        "data": [("data_disk_images", lambda: bench_data(quick, *plan.data_steps, plan.timeout_s, threads))],
        "probe": [(f"probe_round_{preset}", lambda: bench_probe_round(preset, overrides, judged=not quick))],
        "scaling": [
            ("scaling_batch", lambda: bench_scaling("batch", plan.scaling_batches, *scaling_args)),
            (
                "scaling_modalities",
                lambda: bench_scaling("modalities", plan.scaling_modalities, *scaling_args),
            ),
        ],
        "dist": [("dist_loss_memory", lambda: bench_dist_memory(plan.dist_b_local, plan.dist_worlds, 128))],
    }


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat (< 3 min)")
    default = ",".join(g for g in GROUPS if g not in OPTIONAL_GROUPS)
    p.add_argument(
        "--only",
        default=default,
        help=f"comma-separated groups of {','.join(GROUPS)} (default: all but {','.join(OPTIONAL_GROUPS)})",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default benchmarks/, --quick: …/out/)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads here and in the workers")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be ≥ 1, got {args.threads}")
    args.groups = [g for g in args.only.split(",") if g]
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        p.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    return args


def time_to_accuracy_section(curves: Path) -> list[str]:
    """RESULTS.md's time-to-accuracy table of the Trifeature cpu preset, read from its committed learning
    curves (minutes of training on one core, one thread); none when the file is missing."""
    if not curves.exists():
        return []
    table = time_to_accuracy(json.loads(curves.read_text()))
    return [
        "## Time to accuracy: Trifeature cpu preset (`make demo`)",
        "",
        f"Not measured by this command: read from `docs/{curves.name}`, written by `{CURVES_COMMAND}` "
        "(one core, one thread; `make demo` trains on 2 threads, about 1.5x faster). Each cell: the first "
        "probed epoch at or above the threshold and the minutes of training to it. U is the lower of U1 and "
        "U2; S is probed on the shorter synergy runs.",
        "",
        *table.splitlines(),
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    out: Path = args.out or (BENCH_DIR / "out" if args.quick else BENCH_DIR)
    out.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()  # as the commlearn command line does for its process (the probing round runs here)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    groups = benchmarks(QUICK if args.quick else FULL, args.quick, args.threads)
    command = " ".join(["python benchmarks/run.py", *argv])
    meta, results = run_suite(
        [b for g in args.groups for b in groups[g]], command, "quick" if args.quick else "full"
    )
    plots = []
    for r in results:
        if r.name.startswith("scaling_") and r.error is None:
            plot_scaling(r, out / f"{r.name}.png")
            plots.append(f"{r.name}.png")
        if r.name == "dist_loss_memory" and r.error is None:
            plot_dist_memory(r, out / f"{r.name}.png")
            plots.append(f"{r.name}.png")
    write_json(out / "results.json", meta, results)
    write_markdown(out / "RESULTS.md", meta, results, plots, time_to_accuracy_section(CURVES))
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'} in {meta['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
