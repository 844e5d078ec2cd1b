"""Where the paper-preset CoMM step spends its time, each part against its floor at the matmul peak.

Run ``python benchmarks/step_breakdown.py [--batch 64] [--repeats 3]``: bare steps (no Lightning, no data
loading) on synthetic 224 px pairs, split into

* the augmentation (two views of both modalities);
* the encoders: both AlexNet trunks, forward + backward, on the two views stacked (2B images each);
* the rest: adapters, the n+1 fusion passes, head, loss, their backward and the AdamW step
  (full step − augmentation − encoders).

FLOPs of each part are counted with ``torch.utils.flop_counter``; a part's floor is its FLOPs ÷ the fp32
matmul peak measured in the same run, so ``floor ÷ time`` is the part's FLOP efficiency. The step's
``flop_efficiency`` target (issue "Speed": ≥ 0.90) needs the whole step within 1/0.9 of the sum of floors.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_train import _count_flops
from commlearn.train import keep_freed_memory
from common import matmul_gflops, repeat
from presets import get_preset, synthetic_images


def _flops(fn: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="pairs per step (paper preset: 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each part (median)")
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    method = get_preset("paper").build(2)
    method.train()
    optimizer = method.configure_optimizers()
    batch = synthetic_images(args.batch, 2, 224).get_batch(torch.arange(args.batch))
    with torch.no_grad():
        v1, v2 = method.views(batch)
    stacked = [torch.cat([a, b]) for a, b in zip(v1, v2, strict=True)]
    encoders = method.model.encoders  # type: ignore[union-attr]

    def augment() -> None:
        with torch.no_grad():
            method.views(batch)

    def encode() -> None:
        for encoder, images in zip(encoders, stacked, strict=True):
            encoder(images).sum().backward()

    def step() -> None:
        method.compute_loss(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops = {"encoders": _flops(encode)}
    method.zero_grad(set_to_none=True)
    flops["step"], flops["augmentation"] = _count_flops(method, batch)
    flops["rest"] = flops["step"] - flops["augmentation"] - flops["encoders"]
    peak = max(matmul_gflops(2048)) * 1e9
    times = {name: statistics.median(repeat(fn, args.repeats, budget_s=600.0)) for name, fn in
             (("augmentation", augment), ("encoders", encode))}  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    times["step"] = statistics.median(repeat(step, args.repeats, budget_s=600.0))
    times["rest"] = times["step"] - times["augmentation"] - times["encoders"]
    print(
        f"paper preset, batch {args.batch}, {torch.get_num_threads()} threads, matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    print(f"{'part':<13} {'time s':>7} {'GFLOP':>7} {'floor s':>8} {'efficiency':>10}")
    for part in ("augmentation", "encoders", "rest", "step"):
        floor = flops[part] / peak
        print(
            f"{part:<13} {times[part]:7.2f} {flops[part] / 1e9:7.0f} {floor:8.2f} {floor / times[part]:10.2f}"
        )
    slack = flops["step"] / peak / 0.9 - times["step"]
    print(
        f"a step at FLOP efficiency 0.90 takes {flops['step'] / peak / 0.9:.2f} s: {slack:+.2f} s from here"
    )


if __name__ == "__main__":
    main()
