"""Linear probing speed: the DESIGN §6 protocol alone, and one full probing round of the Trifeature tasks.

``probe_seconds``: ``probe_classification`` (hold-out C sweep 1e-6…1e6, finer search, refit, test) on
synthetic features — N train rows × D dims, 10 Gaussian classes — scored on a separate test set.

``probe_round``: what one evaluation of a pre-trained model costs at a preset: features of the probe-train
and probe-test Trifeature pairs extracted once (eval mode, batches of 256), then the four probes R, U1, U2, S
(``probe_tasks``). The model is randomly initialised (its speed does not depend on its weights).
"""

from __future__ import annotations

import time

import torch

from commlearn.data.trifeature_pairs import build_trifeature
from commlearn.eval import probe_classification, probe_tasks
from common import BenchResult, Metric, check_positive, repeat
from presets import get_preset

PUBLIC_PAPER_ROUND_S = 26 * 60  # one probing round of the four tasks, public implementation (issue "Speed")


def _features(n: int, dim: int, means: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, means.shape[0], (n,), generator=g)
    return means[y] + torch.randn(n, dim, generator=g), y


def bench_probe(n_train: int, n_test: int, dim: int, repeats: int, budget_s: float) -> BenchResult:
    """``probe_seconds`` of the CLIP-protocol logistic probe on (n_train × dim) features, 10 classes."""
    for name, value in (("n_train", n_train), ("n_test", n_test), ("dim", dim)):
        check_positive(name, value)
    g = torch.Generator().manual_seed(0)
    means = 0.08 * torch.randn(10, dim, generator=g)  # overlapping classes (≈ 55 % accuracy at 512 dims)
    xtr, ytr = _features(n_train, dim, means, g)
    xte, yte = _features(n_test, dim, means, g)
    res = BenchResult(
        "probe_synthetic",
        f"DESIGN §6 probe (hold-out C sweep + refit) on {n_train} × {dim} features, 10 classes, {n_test} test rows",
    )
    last: list[float] = []

    def run() -> None:
        r = probe_classification(xtr, ytr, xte, yte, seed=0)
        last[:] = [r.score, r.reg[0] if r.reg else float("nan")]

    res.metrics["probe_seconds"] = Metric("s", repeat(run, repeats, budget_s, warmup=0))
    res.details = {"balanced_accuracy": last[0], "chosen_C": last[1]}
    return res


def bench_probe_round(preset_name: str, n_probe_train: int, n_probe_test: int | None) -> BenchResult:
    """One probing round of the four Trifeature tasks at a preset (features once + 4 probes), one run.

    Args:
        preset_name: "paper" or "cpu".
        n_probe_train: probe-train pairs.
        n_probe_test: probe-test pairs (None: every test pair).
    """
    check_positive("n_probe_train", n_probe_train)
    preset = get_preset(preset_name)
    res = BenchResult(
        f"probe_round_{preset_name}",
        f"one Trifeature probing round, {preset_name} preset: features of probe-train/test pairs + probes R, U1, U2, S",
    )
    t = time.perf_counter()
    data = build_trifeature(
        preset.render_settings(), seed=0, n_train_pairs=256, n_probe_train_pairs=n_probe_train,
        n_probe_test_pairs=n_probe_test,
    )  # fmt: skip
    data_s = time.perf_counter() - t
    torch.manual_seed(0)
    method = preset.build(2)
    t = time.perf_counter()
    train_x, train_y = method.extract_features(data.probe_train, batch_size=256)
    test_x, test_y = method.extract_features(data.probe_test, batch_size=256)
    extract_s = time.perf_counter() - t
    assert train_y is not None and test_y is not None
    t = time.perf_counter()
    scores = probe_tasks(train_x, train_y, test_x, test_y, data.probe_train.task_names, "multiclass", seed=0)
    probe_s = time.perf_counter() - t
    res.metrics["probe_round_s"] = Metric("s", [extract_s + probe_s], note="extraction + 4 probes, one run")
    res.metrics["extract_s"] = Metric("s", [extract_s])
    res.metrics["probes_s"] = Metric("s", [probe_s])
    res.details = {
        "probe_train_pairs": len(data.probe_train),
        "probe_test_pairs": len(data.probe_test),
        "feature_dim": int(train_x.shape[1]),
        "data_load_or_render_s": data_s,
        "scores_random_init": {k: round(v.score, 2) for k, v in scores.items()},
    }
    if preset_name == "paper":
        res.details["public_round_s"] = PUBLIC_PAPER_ROUND_S
        res.details["round_speedup_vs_public"] = PUBLIC_PAPER_ROUND_S / (extract_s + probe_s)
    return res
