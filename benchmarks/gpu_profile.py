"""Where a GPU step's time goes: ``python benchmarks/gpu_profile.py`` (needs CUDA).

Times the bare paper-preset CoMM step (bf16 autocast: loss, backward, AdamW) and the augmentation alone, then
prints ``torch.profiler`` tables of 5 calls of each, sorted by CUDA time and by CPU time. A step whose wall
time is well above its summed kernel time is bound by the host (kernel launches, synchronisations).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from presets import get_preset, synthetic_images


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_profile.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.manual_seed(0)
    method = get_preset("paper").build(2).to(dev)
    optimizer = method.configure_optimizers()
    batch = synthetic_images(64, 2, 224).get_batch(torch.arange(64)).to(dev)
    assert method.augment is not None
    augment = method.augment

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = method.compute_loss(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def views() -> None:
        augment(batch.inputs, batch.padding)

    calls: list[tuple[str, Callable[[], None]]] = [("step", step), ("augment", views)]
    for name, fn in calls:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        print(f"{name}: median {1e3 * statistics.median(times):.1f} ms wall over 20 calls")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
        table = prof.key_averages()
        print(table.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=40))
        print(table.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()
