"""Tests of the benchmark suite's helpers (``pytest benchmarks/``): statistics, fits, reports, argument checks.

The measurements themselves are exercised end to end by ``python benchmarks/run.py --quick``; here each
helper is checked on small inputs, and the two cheap benchmarks run at toy sizes to check what they assert
(pixel-exact reference rendering, identical fusion outputs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from bench_fusion import bench_fusion
from bench_render import bench_render
from bench_scaling import bench_scaling
from bench_train import add_flop_efficiency
from common import (
    BenchResult,
    Metric,
    cpu_reading,
    interleaved,
    linear_fit,
    other_cpu_share,
    ratios,
    repeat,
    run_worker,
)
from presets import get_preset, synthetic_images
from report import write_json, write_markdown
from run import _parse


def test_metric_statistics_and_targets() -> None:
    m = Metric("x", [3.0, 1.0, 2.0], target=">= 2")
    assert (m.min, m.median, m.max) == (1.0, 2.0, 3.0)
    assert m.passed() is True
    assert Metric("s", [0.2, 0.3], target="<= 0.1").passed() is False
    assert Metric("s", [0.2], target="<= 0.1", judged=False).passed() is None
    assert Metric("s", [0.2]).passed() is None
    assert m.to_dict()["n"] == 3


def test_linear_fit_recovers_a_line_and_flags_curvature() -> None:
    fit = linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit["slope"] == pytest.approx(2.0)
    assert fit["intercept"] == pytest.approx(1.0)
    assert fit["max_rel_residual"] < 1e-9
    assert linear_fit([1, 2, 3, 4], [1, 4, 9, 16])["max_rel_residual"] > 0.1


def test_linear_fit_judges_every_point_relative_to_its_size() -> None:
    batch = [32, 64, 128, 256, 512]
    # step times measured at the cpu preset (fastest step per point): 4.8-6.1 ms per sample, no curvature,
    # but an unweighted line misses the batch-32 point by 21 %
    measured = [0.18748, 0.39030, 0.64874, 1.37578, 2.43854]
    fit = linear_fit(batch, measured)
    assert fit["max_rel_residual"] < 0.10 < 0.2 < fit["max_rel_residual_unweighted"]
    # a real B² term that doubles the largest step is still flagged
    assert linear_fit(batch, [b / 100 + (b / 512) ** 2 * 5.12 for b in batch])["max_rel_residual"] > 0.15
    with pytest.raises(ValueError, match="positive y"):
        linear_fit([1, 2], [0.0, 1.0])


def test_linear_fit_rejects_unpaired_points() -> None:
    with pytest.raises(ValueError, match="needs ≥ 2 paired points, got 3 x and 2 y"):
        linear_fit([1, 2, 3], [1, 2])


def test_repeat_and_interleaved_count_calls() -> None:
    calls = {"a": 0, "b": 0}

    def bump(k: str) -> None:
        calls[k] += 1

    times = repeat(lambda: bump("a"), repeats=3, budget_s=60.0, warmup=2)
    assert len(times) == 3 and calls["a"] == 5
    a, b = interleaved([lambda: bump("a"), lambda: bump("b")], repeats=2, budget_s=60.0, warmup=0)
    assert len(a) == len(b) == 2 and calls == {"a": 7, "b": 2}
    assert ratios([4.0, 9.0], [2.0, 3.0]) == [2.0, 3.0]


def test_timing_helpers_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeats must be > 0, got 0"):
        repeat(lambda: None, repeats=0, budget_s=1.0)
    with pytest.raises(ValueError, match="budget_s must be > 0, got -1"):
        interleaved([lambda: None], repeats=1, budget_s=-1)


def test_presets_and_their_errors() -> None:
    paper = get_preset("paper")
    assert paper.model.embed_dim == 512 and paper.model.image_encoder == "alexnet" and paper.image_size == 224
    assert [s.shape for s in get_preset("cpu").specs(3)] == [(3, 64, 64)] * 3
    data = synthetic_images(5, 3, 8)
    assert len(data) == 5 and data.get_batch(torch.arange(2)).inputs[2].dtype == torch.uint8
    with pytest.raises(ValueError, match="preset must be one of \\['paper', 'cpu'\\], got 'gpu'"):
        get_preset("gpu")
    with pytest.raises(ValueError, match="n_modalities must be ≥ 1, got 0"):
        paper.specs(0)


def test_render_benchmark_checks_pixels_against_the_reference() -> None:
    res = bench_render("cpu", n_fast=4, n_reference=1, budget_s=30.0, full_split=False)
    assert res.error is None and res.details["pixel_mismatches"] == 0
    assert res.metrics["render_speedup"].median > 1.0
    with pytest.raises(ValueError, match="settings_name must be 'paper' or 'cpu', got 'big'"):
        bench_render("big", 4, 1, 1.0, False)


def test_fusion_benchmark_batched_and_separate_agree() -> None:
    res = bench_fusion("toy", (2, 3), batch=4, tokens=3, dim=8, heads=2, repeats=1, budget_s=10.0)
    for n in (2, 3):
        assert res.details[f"n{n}"]["max_abs_diff"] < 1e-5
        gflop = res.details[f"n{n}"]["gflop"]
        assert gflop["separate"] > gflop["batched"]  # n+1 full-length passes cost more FLOPs
        assert len(res.metrics[f"fusion_batched_vs_separate_n{n}"].samples) == 1
    with pytest.raises(ValueError, match="tokens must be > 0, got 0"):
        bench_fusion("toy", (2,), batch=4, tokens=0, dim=8, heads=2, repeats=1, budget_s=1.0)


def test_scaling_rejects_bad_axes_and_too_few_points() -> None:
    with pytest.raises(ValueError, match="axis must be 'batch' or 'modalities', got 'width'"):
        bench_scaling("width", (1, 2, 3), "cpu", 1, 1, 10.0, False)
    with pytest.raises(ValueError, match="needs at least 3 points, got 2"):
        bench_scaling("batch", (8, 16), "cpu", 1, 1, 10.0, False)


def test_flop_efficiency_uses_the_given_peak() -> None:
    res = BenchResult("step_paper", "toy", details={"gflop_per_step": 100.0, "judged": True})
    res.metrics["achieved_gflops"] = Metric("GFLOP/s", [90.0, 45.0])
    add_flop_efficiency(res, 100.0)
    eff = res.metrics["flop_efficiency"]
    assert eff.samples == [0.9, 0.45] and eff.target == ">= 0.90" and eff.passed() is False
    with pytest.raises(ValueError, match="peak_gflops must be > 0, got 0"):
        add_flop_efficiency(res, 0.0)


def test_reports_are_written(tmp_path: Path) -> None:
    res = BenchResult("render_paper", "toy render", seconds=1.0)
    res.metrics["render_speedup"] = Metric("x", [120.0, 150.0], target=">= 100")
    failed = BenchResult("probe_synthetic", "failed before reporting", error="ValueError: boom")
    meta = {
        "command": "python benchmarks/run.py --quick",
        "mode": "quick",
        "total_seconds": 3.0,
        "peak_gflops": 90.0,
        "load_average_at_end": [0.1, 0.2, 0.3],
        "other_cpu_share": 0.02,
        "busy": False,
        "machine": {
            "cpu": "toy",
            "logical_cpus": 2,
            "torch": "x",
            "torch_threads": 2,
            "cpu_capability": "AVX2",
            "lightning": "y",
            "python": "3",
            "platform": "linux",
            "git": "abc",
            "date": "today",
            "load_average_at_start": [0.1, 0.2, 0.3],
        },
    }
    scaling = BenchResult("scaling_batch", "toy scaling")
    point = {"x": 32, "step_s": 0.2, "step_s_min": 0.19, "step_s_max": 0.3, "cpu_busy": 0.98}
    scaling.details = {
        "axis": "batch",
        "points": [{**point, "step_peak_mb": 100.0, "peak_rss_mb": 500.0}],
        "ms_per_sample": 6.0,
        "mb_per_sample": 3.0,
    }
    write_json(tmp_path / "results.json", meta, [res, failed, scaling])
    write_markdown(tmp_path / "RESULTS.md", meta, [res, failed, scaling], ["scaling_batch.png"])
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["benchmarks"][0]["metrics"]["render_speedup"]["median"] == 135.0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| render_paper | render_speedup | 135.0 | 120.0 | 150.0 | >= 100 | yes |" in text
    assert "**Error:** ValueError: boom" in text
    assert "| 32 | 0.190 | 0.200 | 0.300 | 0.980 | 100.0 | 500.0 |" in text
    assert "![scaling_batch.png](scaling_batch.png)" in text
    assert "- Other processes used 2.0 % of the CPUs during the run; load average" in text
    assert "busy" not in text.split("## Targets")[0]


def test_other_cpu_share_subtracts_the_suites_own_time() -> None:
    cores = os.cpu_count() or 1
    # 10 s of wall; the machine was busy 12 CPU-seconds, 10 of them the suite's own
    assert other_cpu_share((100.0, 5.0, 0.0), (112.0, 15.0, 10.0)) == pytest.approx(2.0 / (10 * cores))
    assert other_cpu_share((100.0, 5.0, 0.0), (114.9, 15.0, 10.0)) == pytest.approx(4.9 / (10 * cores))
    assert other_cpu_share((100.0, 5.0, 0.0), (109.9, 15.0, 10.0)) == 0.0  # tick rounding is not negative
    assert other_cpu_share((None, 5.0, 0.0), (None, 6.0, 1.0)) is None


def test_machine_cpu_time_includes_this_process() -> None:
    before = cpu_reading()
    if before[0] is None:
        pytest.skip("/proc/stat is not available")
    spin_from = time.process_time()
    while time.process_time() - spin_from < 0.3:
        pass
    after = cpu_reading()
    assert after[0] is not None and after[0] - before[0] >= 0.2
    assert after[1] - before[1] >= 0.25 and after[2] > before[2]


def test_command_line_rejects_unknown_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse(["--quick", "--only", "step,fusion"]).groups == ["step", "fusion"]
    with pytest.raises(SystemExit):
        _parse(["--only", "step,speed"])
    assert "unknown group(s) ['speed']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--threads", "0"])
    assert "--threads must be ≥ 1, got 0" in capsys.readouterr().err


def test_worker_failure_is_reported_with_its_output() -> None:
    with pytest.raises(RuntimeError, match="(?s)worker nope .*usage: worker.py"):
        run_worker("nope", {}, timeout_s=120.0)
