"""Tests of the benchmark suite's harness (collected by ``make test``): statistics, the line fit, the busy share,
the run and its reports, the step timing on a toy model, the two cheap benchmarks' own checks, the command
lines. The measurements themselves run end to end in ``python benchmarks/run.py --quick``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import gpu
from bench_parts import bench_fusion, bench_render, counting_probe_evaluations
from bench_step import bench_scaling, measure_steps, step_metrics, within
from commlearn.config import DataConfig, load_config
from commlearn.data.registry import build_data
from common import (
    RESULT_MARKER,
    BenchResult,
    Metric,
    cpu_reading,
    interleaved,
    linear_fit,
    other_cpu_share,
    ratios,
    run_suite,
    run_worker,
    write_json,
    write_markdown,
)
from run import parse


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Toy models on one thread: on a shared machine, OpenMP threads waiting for a busy core take seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_metric_statistics_and_targets() -> None:
    m = Metric("x", [3.0, 1.0, 2.0], target=">= 2", public=1.5)
    assert m.median == 2.0 and m.passed() is True
    assert (m.to_dict()["min"], m.to_dict()["max"], m.to_dict()["public"]) == (1.0, 3.0, 1.5)
    assert Metric("s", [0.2, 0.3], target="<= 0.1").passed() is False
    assert Metric("s", [0.2], target="<= 0.1", judged=False).passed() is None
    assert Metric("s", [0.2]).passed() is None


def test_linear_fit_recovers_a_line_and_judges_points_relative_to_their_size() -> None:
    fit = linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit["slope"] == pytest.approx(2.0) and fit["intercept"] == pytest.approx(1.0)
    assert fit["max_rel_residual"] < 1e-9
    # y = x² on 1..4: the 1/y-weighted line misses the small points by a large share of their size
    assert linear_fit([1, 2, 3, 4], [1, 4, 9, 16])["max_rel_residual"] > 0.1
    # fastest cpu-preset steps at batch 32…512: no curvature, but an unweighted line misses batch 32 by 21 %
    batch = [32, 64, 128, 256, 512]
    fit = linear_fit(batch, [0.18748, 0.39030, 0.64874, 1.37578, 2.43854])
    assert fit["max_rel_residual"] < 0.10 < 0.2 < fit["max_rel_residual_unweighted"]
    # a B² term that doubles the largest step is flagged
    assert linear_fit(batch, [b / 100 + (b / 512) ** 2 * 5.12 for b in batch])["max_rel_residual"] > 0.15
    with pytest.raises(ValueError, match="positive y"):
        linear_fit([1, 2], [0.0, 1.0])
    with pytest.raises(ValueError, match="needs ≥ 2 paired points, got 3 x and 2 y"):
        linear_fit([1, 2, 3], [1, 2])


def test_interleaved_alternates_the_contenders() -> None:
    order: list[str] = []
    a, b = interleaved([lambda: order.append("a"), lambda: order.append("b")], repeats=2, budget_s=60.0)
    assert order == ["a", "b"] * 3 and len(a) == len(b) == 2  # one warm-up round, then two timed
    assert ratios([4.0, 9.0], [2.0, 3.0]) == [2.0, 3.0]
    with pytest.raises(ValueError, match="budget_s must be > 0, got -1"):
        interleaved([lambda: None], repeats=1, budget_s=-1)


def test_other_cpu_share_subtracts_the_suites_own_time() -> None:
    cores = os.cpu_count() or 1
    # 10 s of wall; the machine was busy 12 CPU-seconds, 10 of them the suite's own
    assert other_cpu_share((100.0, 5.0, 0.0), (112.0, 15.0, 10.0)) == pytest.approx(2.0 / (10 * cores))
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


def test_a_run_keeps_going_past_a_failure_and_writes_both_reports(tmp_path: Path) -> None:
    def render() -> BenchResult:
        res = BenchResult("render_paper", "toy render")
        res.metrics["render_speedup"] = Metric("x", [120.0, 150.0], target=">= 100")
        res.metrics["full_split_s"] = Metric("s", [1.5], public=496.0)
        return res

    def scaling() -> BenchResult:
        point = {"x": 32, "step_s": 0.2, "step_s_min": 0.19, "step_peak_mb": 100.0}
        fit = {"slope": 0.006, "intercept": 0.0}  # 6 ms and 0.006 MB per sample
        details = {"axis": "batch", "per": "sample", "points": [point], "time_fit": fit, "memory_fit": fit}
        return BenchResult("scaling_batch", "toy scaling", details=details)

    def broken() -> BenchResult:
        raise ValueError("boom")

    meta, results = run_suite(
        [("render_paper", render), ("probe", broken), ("scaling_batch", scaling)], "cmd", "quick"
    )
    assert [r.name for r in results] == ["render_paper", "probe", "scaling_batch"]
    assert results[1].error == "ValueError: boom" and meta["total_seconds"] > 0
    meta["other_cpu_share"], meta["busy"] = 0.02, False
    write_json(tmp_path / "results.json", meta, results)
    write_markdown(tmp_path / "RESULTS.md", meta, results, ["scaling_batch.png"])
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["benchmarks"][0]["metrics"]["render_speedup"]["median"] == 135.0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| render_paper | render_speedup | 135.0 | 120.0 | 150.0 | – | >= 100 | yes |" in text
    assert "| render_paper | full_split_s | 1.500 | 1.500 | 1.500 | 496.0 | – | – |" in text
    assert "**Error:** ValueError: boom" in text
    assert "| 32 | 0.190 | 0.200 | 100.0 |" in text and "6.000 ms and 6.00e-03 MB per sample" in text
    assert "- Other processes used 2.0 % of the CPUs during the run" in text and "busy" not in text
    assert "![scaling_batch.png](scaling_batch.png)" in text


def test_results_carry_the_time_to_accuracy_table_of_the_committed_curves(tmp_path: Path) -> None:
    from run import time_to_accuracy_section

    assert time_to_accuracy_section(tmp_path / "missing.json") == []
    curves = {"comm": [{"epoch": 1, "step": 156, "R": 97.0, "U1": 81.0, "U2": 80.5, "S": 55.0,
                        "seconds_unbiased": 120.0, "seconds_biased": 90.0}]}  # fmt: skip
    (tmp_path / "curves.json").write_text(json.dumps(curves))
    lines = time_to_accuracy_section(tmp_path / "curves.json")
    assert lines[0].startswith("## Time to accuracy") and "--curves" in lines[2]
    reached = " | ".join(["1 ep (2.0 min)"] * 4)
    assert f"| CoMM | {reached} | not reached (best 55.0) | not reached (best 55.0) |" == lines[6]


def test_step_timing_on_a_toy_model(one_thread: None) -> None:
    cfg = load_config("trifeature-tiny", ["data.batch_size=8", "trainer.accelerator=cpu"])
    data = build_data(
        DataConfig("synthetic", options={"n_samples": 64, "kinds": ["image"] * 2, "image_size": 32}), 0
    )
    r = measure_steps(cfg, data.train, warmup=1, steps=2)
    assert len(r["cycle_s"]) == len(r["load_s"]) == len(r["augment_s"]) == len(r["cpu_s"]) == 2
    for cycle, load, aug in zip(r["cycle_s"], r["load_s"], r["augment_s"], strict=True):
        assert 0 < load and 0 < aug and load + aug < cycle
    assert r["batch_size"] == 8 and r["peak_rss_mb"] >= r["rss_before_mb"] > 0
    assert within([(1.0, 0.5), (2.0, 0.25), (3.5, 1.0)], 1.0, 3.5) == 1.25  # starts in (lo, hi]


def test_step_metrics_arithmetic() -> None:
    r = {"cycle_s": [2.0, 4.0], "load_s": [0.1, 0.1], "augment_s": [0.1, 0.3], "cpu_s": [4.0, 4.0]}
    m = step_metrics({**r, "batch_size": 64, "threads": 2}, judged=True)
    assert m["step_pairs_per_s"].samples == [32.0, 16.0]
    assert m["data_fraction"].samples == pytest.approx([0.1, 0.1]) and m["data_fraction"].passed() is True
    assert m["cpu_busy_fraction"].samples == [1.0, 0.5]


def test_render_benchmark_checks_pixels_against_the_reference() -> None:
    res = bench_render("cpu", n_fast=4, repeats=1, full_split=False)
    assert res.error is None and res.metrics["render_speedup"].median > 1.0


def test_fusion_benchmark_batched_and_separate_agree(one_thread: None) -> None:
    res = bench_fusion((2, 3), batch=4, tokens=3, dim=8, heads=2, repeats=1, budget_s=10.0)
    assert res.error is None and all(res.details[f"max_abs_diff_n{n}"] < 1e-5 for n in (2, 3))
    assert len(res.metrics["fusion_batched_vs_separate_n3"].samples) == 1
    with pytest.raises(ValueError, match="tokens must be > 0, got 0"):
        bench_fusion((2,), batch=4, tokens=0, dim=8, heads=2, repeats=1, budget_s=1.0)


def test_scaling_rejects_bad_axes_and_too_few_points() -> None:
    with pytest.raises(ValueError, match="axis must be 'batch' or 'modalities', got 'width'"):
        bench_scaling("width", (1, 2, 3), 1, 1, 10.0, False, None)
    with pytest.raises(ValueError, match="needs at least 3 points, got 2"):
        bench_scaling("batch", (8, 16), 1, 1, 10.0, False, None)


def test_worker_result_and_failure(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, sys\nargs = json.loads(sys.argv[1])\nprint('log line')\n"
        f"if args['ok']: print({RESULT_MARKER!r} + json.dumps({{'twice': 2 * args['x']}}))\n"
        "else: raise SystemExit('no luck: ' + str(args['x']))\n"
    )
    assert run_worker(script, {"ok": True, "x": 3}, timeout_s=60.0) == {"twice": 6}
    with pytest.raises(RuntimeError, match="(?s)exited with 1 and no result:\nlog line\nno luck: 3"):
        run_worker(script, {"ok": False, "x": 3}, timeout_s=60.0)


def test_command_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["--quick", "--only", "step,fusion"]).groups == ["step", "fusion"]
    for argv, message in (
        (["--only", "step,speed"], "unknown group(s) ['speed']"),
        (["--threads", "0"], "≥ 1, got 0"),
    ):
        with pytest.raises(SystemExit):
            parse(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu.main(["--only", "step,peak"])
    assert "unknown group(s) ['peak']" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            gpu.main(["--quick"])


def test_probe_evaluations_are_counted_within_the_block_only(one_thread: None) -> None:
    from commlearn.eval import probe, probe_tasks

    solve = probe._lbfgs
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (120, 1), generator=g)
    x = torch.randn(120, 5, generator=g) + y.float()  # class-dependent mean: a learnable probe
    with counting_probe_evaluations() as evaluations:
        probe_tasks(x[:80], y[:80], x[80:], y[80:], ["t"], "multiclass", seed=0)
    assert evaluations[0] > 1 and probe._lbfgs is solve
