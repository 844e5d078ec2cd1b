"""Trifeature rendering: the vectorised renderer against a per-pixel Python loop drawing the same images.

Per repeat, the vectorised :func:`commlearn.data.trifeature.render` draws ``n_fast`` images and the reference
(``render_reference.py``, one pixel and one sub-sample at a time in Python floats) draws one of them; the
speed-up of that repeat is (reference seconds per image) ÷ (vectorised seconds per image). The reference's
pixels are checked against the vectorised ones. The full paper split (2400 + 200 images) is also rendered
once, to compare with the public implementation's rendering time.
"""

from __future__ import annotations

import time

import numpy as np

from commlearn.data.trifeature import RenderSettings, image_seeds, make_splits, render
from common import BenchResult, Metric, check_positive
from render_reference import render_reference

PUBLIC_PAPER_RENDER_S = 8 * 60 + 16  # the public implementation, 224 px data set (issue "Speed")


def bench_render(
    settings_name: str, n_fast: int, n_reference: int, budget_s: float, full_split: bool
) -> BenchResult:
    """``render_speedup`` for one render preset.

    Args:
        settings_name: "paper" (224 px) or "cpu" (64 px, 2×2 supersampling).
        n_fast: images the vectorised renderer draws per repeat.
        n_reference: repeats; each draws one new image with the reference.
        budget_s: stop adding repeats past this many seconds (at least one is made).
        full_split: also time rendering the whole train + test split once.
    """
    check_positive("n_fast", n_fast)
    check_positive("n_reference", n_reference)
    if settings_name not in ("paper", "cpu"):
        raise ValueError(f"settings_name must be 'paper' or 'cpu', got {settings_name!r}")
    settings = RenderSettings.paper() if settings_name == "paper" else RenderSettings.cpu()
    res = BenchResult(
        f"render_{settings_name}",
        f"Trifeature {settings.canvas_size} px: vectorised render() vs per-pixel Python reference, same images",
    )
    rng = np.random.default_rng(0)
    attrs = rng.integers(0, 10, size=(n_fast + n_reference, 3))
    seeds = image_seeds(0, np.arange(n_fast + n_reference))
    render(attrs[:2, 0], attrs[:2, 1], attrs[:2, 2], seeds[:2], settings)  # warm-up (tables, allocations)
    fast_per_image: list[float] = []
    ref_per_image: list[float] = []
    mismatches = 0
    start = time.perf_counter()
    for i in range(n_reference):
        sl = slice(i, i + n_fast)
        t = time.perf_counter()
        fast = render(attrs[sl, 0], attrs[sl, 1], attrs[sl, 2], seeds[sl], settings)
        fast_per_image.append((time.perf_counter() - t) / n_fast)
        t = time.perf_counter()
        ref = render_reference(
            attrs[i : i + 1, 0], attrs[i : i + 1, 1], attrs[i : i + 1, 2], seeds[i : i + 1], settings
        )
        ref_per_image.append(time.perf_counter() - t)
        mismatches += int(not np.array_equal(ref[0], fast[0]))
        if time.perf_counter() - start > budget_s:
            break
    res.metrics["render_speedup"] = Metric(
        "x", [r / f for r, f in zip(ref_per_image, fast_per_image, strict=True)], target=">= 100"
    )
    res.metrics["fast_ms_per_image"] = Metric("ms", [1e3 * f for f in fast_per_image])
    res.metrics["reference_s_per_image"] = Metric("s", ref_per_image)
    res.details = {
        "n_fast_per_repeat": n_fast,
        "reference_images": len(ref_per_image),
        "pixel_mismatches": mismatches,
    }
    if mismatches:
        res.error = f"{mismatches} reference image(s) differ from the vectorised renderer"
    if full_split:
        t = time.perf_counter()
        train, test = make_splits(0, settings)
        seconds = time.perf_counter() - t
        res.metrics["full_split_s"] = Metric("s", [seconds], note=f"{len(train) + len(test)} images, one run")
        if settings_name == "paper":
            res.details["public_full_split_s"] = PUBLIC_PAPER_RENDER_S
            res.details["full_split_speedup_vs_public"] = PUBLIC_PAPER_RENDER_S / seconds
    return res
