"""Image augmentation: the batched on-tensor SimCLR recipe against the same recipe applied sample by sample.

``batched``: one ``ImageAugment`` call on a (B, 3, H, W) uint8 batch (per-sample random parameters).
``per-sample loop``: the same module called B times on (1, 3, H, W) slices — what a per-sample data pipeline
does, minus PIL. Also timed: the two views of a whole training batch (``MultimodalAugment`` over the two
image modalities), which is what one CoMM step pays.
"""

from __future__ import annotations

import torch

from commlearn.augment import MultimodalAugment
from common import BenchResult, Metric, check_positive, interleaved, ratios, repeat
from presets import get_preset

# The public implementation's per-sample PIL pipeline: 1.0 s per batch of 64 (issue "Speed"; not measured here).
PUBLIC_PIL_MS_PER_SAMPLE = 1000.0 / 64


def bench_augment(preset_name: str, batch: int, repeats: int, budget_s: float) -> BenchResult:
    """``augment_per_sample_ms`` of the batched and the per-sample application for one preset.

    Args:
        preset_name: "paper" (224 px, full SimCLR recipe) or "cpu" (64 px, no blur or hue).
        batch: images per batch.
        repeats: timed repeats (interleaved).
        budget_s: time budget.
    """
    check_positive("batch", batch)
    preset = get_preset(preset_name)
    aug = preset.image_augment()
    size = preset.image_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    res = BenchResult(
        f"augment_{preset_name}",
        f"SimCLR image augmentation ({preset_name} preset, {size} px, batch {batch}): one batched call vs "
        "a loop over samples",
    )

    def batched() -> None:
        aug(x)

    def per_sample() -> None:
        for i in range(batch):
            aug(x[i : i + 1])

    fast, slow = interleaved([batched, per_sample], repeats, budget_s)
    res.metrics["augment_per_sample_ms"] = Metric("ms", [1e3 * t / batch for t in fast], note="batched call")
    res.metrics["augment_per_sample_ms_loop"] = Metric(
        "ms", [1e3 * t / batch for t in slow], note="per-sample loop"
    )
    res.metrics["augment_batched_speedup"] = Metric("x", ratios(slow, fast))
    two_view = MultimodalAugment([preset.image_augment() for _ in range(2)])
    pair = [x, x.flip(0)]
    step = repeat(lambda: two_view(pair), repeats, budget_s / 2)
    res.metrics["two_views_two_modalities_ms"] = Metric(
        "ms", [1e3 * t for t in step], note=f"one training batch: 2 views × 2 modalities × {batch} images"
    )
    if preset_name == "paper":
        res.details["public_pil_ms_per_sample"] = PUBLIC_PIL_MS_PER_SAMPLE
    return res
