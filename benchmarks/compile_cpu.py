"""Does ``torch.compile`` of the AlexNet trunks speed up the paper-preset CPU step?

Run ``python benchmarks/compile_cpu.py``: bare steps (loss, backward, AdamW) on 32 synthetic 224 px pairs,
eager, then the two encoders compiled (``nn.Module.compile``, inductor), then eager again; prints each step
and the median of steps 3–5.
"""

from __future__ import annotations

import statistics
import time

import torch

from commlearn.train import keep_freed_memory
from presets import get_preset, synthetic_images

BATCH = 32


def steps(compiled: bool, batch: object, n: int = 5) -> float:
    """Median seconds of the last ``n - 2`` of ``n`` steps of a fresh paper-preset CoMM."""
    torch.manual_seed(0)
    method = get_preset("paper").build(2)
    if compiled:
        for encoder in method.model.encoders:  # type: ignore[union-attr]
            encoder.compile()
    optimizer = method.configure_optimizers()
    times = []
    for k in range(n):
        start = time.perf_counter()
        method.compute_loss(batch).loss.backward()  # type: ignore[arg-type]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        print(f"{'compiled' if compiled else 'eager'} step {k}: {times[-1]:.2f} s", flush=True)
    return statistics.median(times[2:])


def main() -> None:
    keep_freed_memory()
    batch = synthetic_images(BATCH, 2, 224).get_batch(torch.arange(BATCH))
    eager, compiled, eager_again = steps(False, batch), steps(True, batch), steps(False, batch)
    print(f"eager {eager:.2f} / {eager_again:.2f} s, compiled {compiled:.2f} s: "
          f"compiled is {min(eager, eager_again) / compiled:.2f}× eager")  # fmt: skip


if __name__ == "__main__":
    main()
