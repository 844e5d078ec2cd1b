"""The speed benchmarks on a CUDA GPU: ``python benchmarks/gpu.py [--quick] [--out DIR]``.

Side by side in one run, on one GPU, timed with CUDA events (or host clocks after a synchronisation):

* ``peak``: dense matmul TFLOP/s at fp32 (no TF32), TF32 and bf16 (8192³), the ceilings of the ratios below;
* ``step_<precision>``: the paper-preset CoMM step inside Lightning ``Trainer.fit`` with the real
  ``BatchLoader`` over Trifeature pairs resident on the GPU, at ``32-true`` and ``bf16-mixed``: pairs/s,
  achieved TFLOP/s (FLOPs counted with ``FlopCounterMode``), efficiency vs the matching matmul peak,
  data fraction (``get_batch`` + augmentation ÷ step), peak GPU memory;
* ``fusion``: the n+1 masked fusion passes in one call vs n+1 calls (n = 2, 3, 5; fwd+bwd; paper sizes);
* ``augment``: batched SimCLR augmentation of a paper batch on the GPU, ms per image;
* ``scaling``: bare step time and peak memory vs batch size (32…512) and vs modalities (2…6);
* ``probe_round``: one Trifeature probing round at the paper preset (features of 10 000 + all test pairs,
  four probes solved on the GPU).

Prints a table last and writes ``gpu_results.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench_fusion import _model, _separate
from bench_train import _count_flops, _StepTimer, _TimedDataset, _within
from commlearn.data.loader import BatchLoader
from commlearn.data.trifeature_pairs import build_trifeature
from commlearn.eval import probe_tasks
from commlearn.train import keep_freed_memory, on_device
from common import linear_fit
from presets import get_preset, synthetic_images

DEV = torch.device("cuda")


def cuda_ms(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> list[float]:
    """Milliseconds of ``fn`` per call, one CUDA-event pair per call, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(end))
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def peaks(quick: bool) -> dict[str, float]:
    """Dense matmul TFLOP/s (median) at fp32, TF32 and bf16 on random data."""
    n = 4096 if quick else 8192
    out = {}
    for label, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                               ("bf16", torch.bfloat16, False)):  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = torch.randn(n, n, device=DEV, dtype=dtype), torch.randn(n, n, device=DEV, dtype=dtype)
        ms = cuda_ms(lambda a=a, b=b: a @ b, 10)
        out[label] = 2 * n**3 / (statistics.median(ms) * 1e-3) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def step(precision: str, batch: int, warmup: int, steps: int, pairs: Any) -> dict[str, Any]:
    """The paper-preset CoMM step in ``Trainer.fit`` at ``precision`` (data resident on the GPU)."""
    torch.manual_seed(0)
    preset = get_preset("paper")
    method = preset.build(2)
    probe = pairs.get_batch(torch.arange(batch)).to(DEV)
    method.to(DEV)
    gflop = _count_flops(method, probe)[0] / 1e9
    method.cpu()
    assert method.augment is not None
    timer = _StepTimer(sync=torch.cuda.synchronize)
    timer.attach(method.augment)
    data = _TimedDataset(on_device(pairs, DEV), sync=torch.cuda.synchronize)
    loader = BatchLoader(data, batch, seed=0)
    torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(
        max_steps=warmup + steps, accelerator="gpu", devices=1, precision=precision,  # type: ignore[arg-type]
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, num_sanity_val_steps=0, log_every_n_steps=20, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(method, loader)
    ends = timer.ends[warmup - 1 :]
    cycles = [hi - lo for lo, hi in zip(ends[:-1], ends[1:], strict=True)]
    load = [_within(data.calls, lo, hi) for lo, hi in zip(ends[:-1], ends[1:], strict=True)]
    aug = [_within(timer.augment_calls, lo, hi) for lo, hi in zip(ends[:-1], ends[1:], strict=True)]
    step_s = statistics.median(cycles)
    return {
        "precision": precision,
        "batch": batch,
        "step_ms": summary([1e3 * c for c in cycles]),
        "pairs_per_s": summary([batch / c for c in cycles]),
        "gflop_per_step": gflop,
        "achieved_tflops": gflop / step_s / 1e3,
        "data_fraction": summary([(lo + a) / c for lo, a, c in zip(load, aug, cycles, strict=True)]),
        "augment_ms": summary([1e3 * a for a in aug]),
        "load_ms": summary([1e3 * lo for lo in load]),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def fusion(quick: bool) -> dict[str, Any]:
    """Separate ÷ batched fwd+bwd time of the n+1 masked fusion passes (128 rows, 36 tokens, width 512)."""
    out = {}
    for n in (2, 3, 5):
        torch.manual_seed(n)
        model = _model(n, 512, 8).to(DEV)
        xs = [torch.randn(128, 36, 512, device=DEV, requires_grad=True) for _ in range(n)]

        def call(batched: bool, model: Any = model, xs: list[torch.Tensor] = xs) -> None:
            outs = model.forward_all_masks(xs) if batched else _separate(model, xs)
            torch.stack([o.sum() for o in outs]).sum().backward()

        with torch.no_grad():
            diff = max(float((a - b).abs().max()) for a, b in
                       zip(model.forward_all_masks(xs), _separate(model, xs), strict=True))  # fmt: skip
        reps = 10 if quick else 50
        fast = cuda_ms(lambda call=call: call(True), reps)
        slow = cuda_ms(lambda call=call: call(False), reps)
        out[f"n{n}"] = {
            "batched_ms": statistics.median(fast),
            "separate_ms": statistics.median(slow),
            "ratio": statistics.median(slow) / statistics.median(fast),
            "max_abs_diff": diff,
        }
    return out


def augment(quick: bool) -> dict[str, Any]:
    """Batched paper-preset augmentation of one training batch (2 views × 2 modalities × 64 images)."""
    from commlearn.augment import MultimodalAugment

    preset = get_preset("paper")
    two_view = MultimodalAugment([preset.image_augment() for _ in range(2)]).to(DEV)
    x = torch.randint(0, 256, (64, 3, 224, 224), dtype=torch.uint8, device=DEV)
    ms = cuda_ms(lambda: two_view([x, x.flip(0)]), 10 if quick else 50)
    return {"batch_ms": statistics.median(ms), "ms_per_image": statistics.median(ms) / (4 * 64)}


def scaling(quick: bool) -> dict[str, Any]:
    """Bare step time (compute_loss + backward + AdamW) and peak memory vs batch size and vs modalities."""
    preset = get_preset("paper")
    out: dict[str, Any] = {}
    for axis, values in (("batch", (32, 64, 128, 256, 512)), ("modalities", (2, 3, 4, 5, 6))):
        rows = []
        for v in values if not quick else values[:3]:
            n_mod, b = (2, v) if axis == "batch" else (v, 64)
            torch.manual_seed(0)
            method = preset.build(n_mod).to(DEV)
            opt = method.configure_optimizers()
            data = synthetic_images(b, n_mod, preset.image_size)
            batch = data.get_batch(torch.arange(b)).to(DEV)

            def one(method: Any = method, opt: Any = opt, batch: Any = batch) -> None:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = method.compute_loss(batch).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            ms = cuda_ms(one, 5 if quick else 10)
            rows.append({axis: v, "step_ms": statistics.median(ms),
                         "peak_mb": (torch.cuda.max_memory_allocated() - base) / 2**20})  # fmt: skip
            del method, opt, batch
            torch.cuda.empty_cache()
        xs = [float(r[axis]) for r in rows]
        out[axis] = {
            "points": rows,
            "time_fit": linear_fit(xs, [r["step_ms"] for r in rows]),
            "memory_fit": linear_fit(xs, [r["peak_mb"] for r in rows]),
        }
    return out


def probe_round(quick: bool) -> dict[str, Any]:
    """One probing round at the paper preset: features once per split (random-init CoMM) + 4 GPU probes."""
    preset = get_preset("paper")
    t = time.perf_counter()
    data = build_trifeature(preset.render_settings(), seed=0, n_train_pairs=256,
                            n_probe_train_pairs=2000 if quick else 10_000,
                            n_probe_test_pairs=500 if quick else None)  # fmt: skip
    data_s = time.perf_counter() - t
    torch.manual_seed(0)
    method = preset.build(2).to(DEV)
    torch.cuda.synchronize()
    t = time.perf_counter()
    train_x, train_y = method.extract_features(data.probe_train, batch_size=256)
    test_x, test_y = method.extract_features(data.probe_test, batch_size=256)
    torch.cuda.synchronize()
    extract_s = time.perf_counter() - t
    assert train_y is not None and test_y is not None
    t = time.perf_counter()
    scores = probe_tasks(train_x.to(DEV), train_y, test_x.to(DEV), test_y, data.probe_train.task_names,
                         "multiclass", seed=0)  # fmt: skip
    torch.cuda.synchronize()
    probe_s = time.perf_counter() - t
    return {
        "pairs": [len(data.probe_train), len(data.probe_test)],
        "data_s": data_s,
        "extract_s": extract_s,
        "probes_s": probe_s,
        "round_s": extract_s + probe_s,
        "scores_random_init": {k: round(v.score, 2) for k, v in scores.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", default="benchmarks/out", help="folder of gpu_results.json")
    p.add_argument(
        "--only", default="", help="comma-separated subset of: peak,step,fusion,augment,scaling,probe"
    )
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU; on CPU run benchmarks/run.py")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    keep_freed_memory()
    only = set(filter(None, args.only.split(","))) or {
        "peak",
        "step",
        "fusion",
        "augment",
        "scaling",
        "probe",
    }
    res: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "quick": args.quick,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (out / "gpu_results.json").write_text(json.dumps(res, indent=2))

    def timed(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001 — a benchmark that breaks is reported, the others still run
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"[gpu] {name}: {time.perf_counter() - t:.1f} s", flush=True)
        save()

    if "peak" in only:
        timed("peak_tflops", lambda: peaks(args.quick))
    if "step" in only:
        data = build_trifeature(get_preset("paper").render_settings(), seed=0, n_train_pairs=10_000,
                                n_probe_train_pairs=100, n_probe_test_pairs=100)  # fmt: skip
        warm, steps = (3, 5) if args.quick else (10, 40)
        for prec in ("32-true", "bf16-mixed"):
            timed(f"step_{prec}", lambda prec=prec: step(prec, 64, warm, steps, data.pretrain_unbiased))
    if "fusion" in only:
        timed("fusion", lambda: fusion(args.quick))
    if "augment" in only:
        timed("augment", lambda: augment(args.quick))
    if "scaling" in only:
        timed("scaling", lambda: scaling(args.quick))
    if "probe" in only:
        timed("probe_round", lambda: probe_round(args.quick))
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
