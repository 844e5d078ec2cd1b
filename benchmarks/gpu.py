"""The suite on one CUDA GPU: ``python benchmarks/gpu.py [--quick] [--only step,probe,fusion] [--out DIR]``.

With the CPU suite's harness, on the GPU:

* ``step``: the paper-preset CoMM step inside Lightning ``Trainer.fit`` fed by the ``BatchLoader`` over
  Trifeature pairs resident on the GPU (``commlearn.train.on_device``), at ``32-true`` and ``bf16-mixed``,
  a synchronisation at every time stamp: step time, pairs/s, data share, peak GPU memory;
* ``probe``: one probing round at the paper preset (features and the four probes on the GPU);
* ``fusion``: the n+1 masked fusion passes in one call vs n+1 calls (n = 2, 3, 5; forward + backward).

Writes ``gpu_results.json`` and ``GPU_RESULTS.md`` into ``--out`` (default ``benchmarks/out/``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

from bench_parts import bench_fusion, bench_probe_round, paper_fusion_geometry
from bench_step import measure_steps, step_metrics
from commlearn.config import load_config
from commlearn.data.base import MultimodalDataset
from commlearn.data.registry import build_data
from commlearn.speed import keep_freed_memory
from commlearn.train import on_device
from common import BENCH_DIR, Bench, BenchResult, run_suite, write_json, write_markdown

GROUPS = ("step", "probe", "fusion")


def gpu_step(precision: str, pairs: MultimodalDataset, warmup: int, steps: int, quick: bool) -> BenchResult:
    """The paper-preset step on the GPU at ``precision`` (see the module docstring)."""
    cfg = load_config("trifeature-paper", ["trainer.accelerator=gpu", f"trainer.precision={precision}"])
    torch.cuda.reset_peak_memory_stats()
    r = measure_steps(cfg, pairs, warmup, steps, sync=torch.cuda.synchronize)
    metrics = step_metrics(r, judged=not quick)
    del metrics["cpu_busy_fraction"]
    res = BenchResult(
        f"step_{precision}",
        f"CoMM training step, trifeature-paper preset, batch {r['batch_size']}, {precision}, in Trainer.fit "
        f"fed by the BatchLoader over Trifeature pairs on {torch.cuda.get_device_name()}",
        metrics,
    )
    res.details = {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {','.join(GROUPS)}")
    p.add_argument(
        "--out", type=Path, default=BENCH_DIR / "out", help="output folder (default benchmarks/out/)"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    groups = [g for g in args.only.split(",") if g]
    if sorted(set(groups) - set(GROUPS)):
        p.error(f"unknown group(s) {sorted(set(groups) - set(GROUPS))}; choose from {list(GROUPS)}")
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU; on a CPU run benchmarks/run.py")
    keep_freed_memory()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    benches: list[Bench] = []
    if "step" in groups:
        cfg = load_config("trifeature-paper")
        pairs = on_device(build_data(cfg.data, cfg.trainer.seed).train, torch.device("cuda"))
        warmup, steps = (3, 5) if args.quick else (10, 40)
        benches += [
            (f"step_{prec}", lambda prec=prec: gpu_step(prec, pairs, warmup, steps, args.quick))
            for prec in ("32-true", "bf16-mixed")
        ]
    if "probe" in groups:
        overrides = ("data.options.n_probe_train_pairs=2000", "data.options.n_probe_test_pairs=500")
        benches.append(("probe_round_paper", lambda: bench_probe_round(
            "paper", overrides if args.quick else (), judged=not args.quick, device="cuda")))  # fmt: skip
    if "fusion" in groups:
        reps = 10 if args.quick else 50
        geometry = paper_fusion_geometry()
        benches.append(
            ("fusion", lambda: bench_fusion((2, 3, 5), 128, *geometry, reps, 120.0, device="cuda"))
        )
    command = " ".join(["python benchmarks/gpu.py", *argv])
    meta, results = run_suite(benches, command, "quick" if args.quick else "full")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gpu_results.json", meta, results)
    write_markdown(args.out / "GPU_RESULTS.md", meta, results)
    print(f"wrote {args.out / 'gpu_results.json'} and {args.out / 'GPU_RESULTS.md'}")


if __name__ == "__main__":
    main()
