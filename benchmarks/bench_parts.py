"""The benchmarks that run in the suite's own process: rendering, image augmentation, CoMM's n+1 fusion
passes and one probing round. Settings come from the packaged presets (``trifeature-paper``/``-cpu``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from commlearn.augment import default_augment
from commlearn.config import load_config
from commlearn.data.base import ModalitySpec
from commlearn.data.registry import build_data
from commlearn.data.trifeature import RenderSettings, make_splits, render
from commlearn.eval import extract_features, probe_tasks
from commlearn.nn.fusion import MMFusion
from commlearn.train import make_method
from common import BenchResult, Metric, check_positive, interleaved, ratios
from render_reference import time_speedup

# The public implementation's figures (issue "Speed"; measured on this machine type, not here).
PUBLIC_RENDER_SPLIT_S = 8 * 60 + 16.0  # the 224 px data set
PUBLIC_AUGMENT_MS = 1000.0 / 64  # per-sample PIL pipeline, 224 px
PUBLIC_PROBE_ROUND_S = 26 * 60.0  # one probing round of the four tasks, paper preset


def bench_render(preset: str, n_fast: int, repeats: int, full_split: bool) -> BenchResult:
    """Per repeat, the vectorised ``render`` draws ``n_fast`` images and the per-pixel reference
    (``render_reference.py``) the first of them, pixels checked equal; ``render_speedup`` = reference ÷
    vectorised seconds per image. ``full_split``: also render the whole train + test split once."""
    check_positive("repeats", repeats)
    settings = RenderSettings(**load_config(f"trifeature-{preset}").data.options["render"])
    res = BenchResult(
        f"render_{preset}",
        f"Trifeature {settings.canvas_size} px: vectorised render() on {n_fast} images vs the per-pixel Python "
        "reference on one of them, same pixels",
    )
    zeros = np.zeros(2, dtype=np.int64)
    render(zeros, zeros, zeros, np.arange(2), settings)  # warm-up (tables, allocations)
    runs = [time_speedup(settings, n_reference=1, n_fast=n_fast, seed=i) for i in range(repeats)]
    res.metrics["render_speedup"] = Metric("x", [r["speedup"] for r in runs], target=">= 100")
    res.metrics["fast_ms_per_image"] = Metric("ms", [1e3 * r["fast_per_image_s"] for r in runs])
    res.metrics["reference_s_per_image"] = Metric("s", [r["reference_per_image_s"] for r in runs])
    if full_split:
        t = time.perf_counter()
        train, test = make_splits(0, settings)
        res.metrics["full_split_s"] = Metric(
            "s",
            [time.perf_counter() - t],
            target="<= 30" if preset == "paper" else None,
            public=PUBLIC_RENDER_SPLIT_S if preset == "paper" else None,
            note=f"{len(train) + len(test)} images, one run",
        )
    return res


def bench_augment(batch: int, repeats: int, budget_s: float) -> BenchResult:
    """The paper preset's ``ImageAugment`` (SimCLR recipe, 224 px) on a uint8 batch in one call vs the same
    module called sample by sample, interleaved; ms per sample."""
    check_positive("batch", batch)
    cfg = load_config("trifeature-paper")
    side = cfg.data.options["render"]["canvas_size"]
    aug = default_augment(
        ModalitySpec("image", "image", (3, side, side)), cfg.method.augment_options.get("image")
    )
    assert aug is not None
    x = torch.randint(
        0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )

    def per_sample() -> None:
        for i in range(batch):
            aug(x[i : i + 1])

    fast, slow = interleaved([lambda: aug(x), per_sample], repeats, budget_s)
    res = BenchResult(
        "augment_paper",
        f"SimCLR image augmentation, {side} px, batch {batch}: one batched call vs a loop over the samples",
    )
    res.metrics["augment_ms_per_sample"] = Metric(
        "ms", [1e3 * t / batch for t in fast], public=PUBLIC_AUGMENT_MS, note="batched call (public: PIL)"
    )
    res.metrics["augment_ms_per_sample_loop"] = Metric(
        "ms", [1e3 * t / batch for t in slow], note="per sample"
    )
    res.metrics["augment_batched_speedup"] = Metric("x", ratios(slow, fast))
    return res


def paper_fusion_geometry() -> tuple[int, int, int]:
    """(tokens per modality, token width, heads) of the paper preset's fusion (AlexNet's 6×6 map: 36 tokens)."""
    model = load_config("trifeature-paper").model
    return 36, model.embed_dim, model.n_heads


def fusion_model(n: int, dim: int, heads: int) -> MMFusion:
    """CoMM's fusion over ``n`` modalities with identity encoders and adapters: the fusion alone."""
    return MMFusion(
        [nn.Identity() for _ in range(n)], [nn.Identity() for _ in range(n)], dim, heads, n_layers=1
    )


def separate_passes(model: MMFusion, xs: list[Tensor]) -> list[Tensor]:
    """What the public implementation does: n+1 fusions of the full sequence, each hiding the other
    modalities with an attention (key padding) mask: modality i alone (i = 1..n), then all."""
    full = torch.cat([t[0] for t in model.tokenize(xs) if t is not None], dim=1)
    per = xs[0].shape[1]
    outs = []
    for i in range(len(xs)):
        hidden = torch.ones(full.shape[:2], dtype=torch.bool, device=full.device)
        hidden[:, i * per : (i + 1) * per] = False
        outs.append(model.fusion(full, hidden))
    return [*outs, model.fusion(full)]


def bench_fusion(
    ns: tuple[int, ...], batch: int, tokens: int, dim: int, heads: int, repeats: int, budget_s: float,
    device: str = "cpu",
) -> BenchResult:  # fmt: skip
    """Forward + backward of the n+1 masked fusion passes: ``MMFusion.forward_all_masks`` (the single-modality
    passes as one call on short sequences, then the full pass) vs :func:`separate_passes`, interleaved, for
    each n in ``ns``; outputs checked equal. ``batch`` rows (CoMM fuses both views: 2 × the batch size) of
    ``tokens`` tokens per modality of width ``dim``."""
    for name, value in (("batch", batch), ("tokens", tokens), ("dim", dim), ("heads", heads)):
        check_positive(name, value)
    warmup = 0 if device == "cpu" else 3  # a CPU call at paper sizes takes seconds; a GPU needs warming
    res = BenchResult(
        "fusion",
        f"n+1 masked fusion passes, forward + backward: forward_all_masks vs n+1 masked full-sequence calls "
        f"({batch} rows, {tokens} tokens per modality, width {dim}, {heads} heads, 1 layer, {device})",
    )
    for n in ns:
        torch.manual_seed(n)
        model = fusion_model(n, dim, heads).to(device)
        xs = [torch.randn(batch, tokens, dim, device=device, requires_grad=True) for _ in range(n)]
        with torch.no_grad():
            pairs = zip(model.forward_all_masks(xs), separate_passes(model, xs), strict=True)
            diff = max(float((a - b).abs().max()) for a, b in pairs)

        def call(batched: bool, model: MMFusion = model, xs: list[Tensor] = xs) -> None:
            outs = model.forward_all_masks(xs) if batched else separate_passes(model, xs)
            torch.stack([o.sum() for o in outs]).sum().backward()
            if device != "cpu":
                torch.cuda.synchronize()

        fast, slow = interleaved([lambda: call(True), lambda: call(False)], repeats, budget_s, warmup)
        res.metrics[f"fusion_batched_vs_separate_n{n}"] = Metric("x", ratios(slow, fast), target=">= 1.0")
        res.metrics[f"batched_ms_n{n}"] = Metric("ms", [1e3 * t for t in fast])
        res.metrics[f"separate_ms_n{n}"] = Metric("ms", [1e3 * t for t in slow])
        res.details[f"max_abs_diff_n{n}"] = diff
        if diff > 1e-4:
            res.error = f"n={n}: forward_all_masks and the masked calls differ by {diff:.2e}"
    return res


@contextlib.contextmanager
def counting_probe_evaluations() -> Iterator[list[int]]:
    """Count the loss-and-gradient evaluations of the probes' L-BFGS fits within the block (the probes'
    cost is their count times the cost of one): yields a one-element list that the block's fits increment."""
    from commlearn.eval import probe

    count = [0]
    solve = probe._lbfgs

    def counted(fg: Callable[[Tensor], tuple[Tensor, Tensor]], *args: Any, **kwargs: Any) -> Tensor:
        def fg_counted(theta: Tensor) -> tuple[Tensor, Tensor]:
            count[0] += 1
            return fg(theta)

        return solve(fg_counted, *args, **kwargs)

    probe._lbfgs = counted
    try:
        yield count
    finally:
        probe._lbfgs = solve


def bench_probe_round(
    preset: str, overrides: tuple[str, ...], judged: bool, device: str = "cpu"
) -> BenchResult:
    """One probing round: the features of every probe-train and probe-test pair
    (``commlearn.eval.extract_features``, each distinct image encoded once), then the four probes R, U1, U2, S
    (``probe_tasks``), on ``device``. The model is randomly initialised: extraction does not depend on the
    weights, the probes' cost does (how many L-BFGS evaluations the fits on these features need)."""
    cfg = load_config(f"trifeature-{preset}", overrides)
    t = time.perf_counter()
    data = build_data(cfg.data, cfg.trainer.seed)
    data_s = time.perf_counter() - t
    assert data.probe_train is not None and data.test is not None
    torch.manual_seed(cfg.trainer.seed)
    method = make_method(cfg, list(data.train.modality_specs), None).to(device)

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    t = time.perf_counter()
    train_x, train_y = extract_features(method, data.probe_train)
    test_x, test_y = extract_features(method, data.test)
    sync()
    extract_s = time.perf_counter() - t
    assert train_y is not None and test_y is not None
    t = time.perf_counter()
    with counting_probe_evaluations() as evaluations:
        scores = probe_tasks(train_x.to(device), train_y, test_x.to(device), test_y,
                             data.probe_train.task_names, "multiclass", seed=cfg.trainer.seed)  # fmt: skip
    sync()
    probes_s = time.perf_counter() - t
    res = BenchResult(
        f"probe_round_{preset}",
        f"one Trifeature probing round, trifeature-{preset} preset: features of {len(data.probe_train)} "
        f"probe-train and {len(data.test)} probe-test pairs, then the probes R, U1, U2, S",
    )
    paper = preset == "paper"
    res.metrics["probe_round_s"] = Metric(
        "s", [extract_s + probes_s], target="<= 200" if paper else None, judged=judged,
        public=PUBLIC_PROBE_ROUND_S if paper else None, note="extraction + 4 probes, one run",
    )  # fmt: skip
    res.metrics["extract_s"] = Metric("s", [extract_s])
    res.metrics["probes_s"] = Metric("s", [probes_s])
    res.metrics["probe_evaluations"] = Metric(
        "", [float(evaluations[0])], note="loss-and-gradient evaluations of every L-BFGS fit of the round"
    )
    res.metrics["probe_ms_per_evaluation"] = Metric("ms", [1e3 * probes_s / max(1, evaluations[0])])
    res.details = {
        "data_s": data_s,
        "scores_random_init": {k: round(float(v.score), 2) for k, v in scores.items()},
    }
    return res
