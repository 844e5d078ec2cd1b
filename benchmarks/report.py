"""Writing a benchmark run: ``results.json`` (everything) and ``RESULTS.md`` (the tables people read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import BenchResult, to_jsonable


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2e}"


def _verdict(passed: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not judged"}[passed]


def write_json(path: Path, meta: dict[str, Any], results: list[BenchResult]) -> None:
    """All metrics (with every sample), details and errors as one JSON document."""
    doc = {"meta": meta, "benchmarks": [r.to_dict() for r in results]}
    path.write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")


def _comparisons(results: list[BenchResult]) -> list[str]:
    """Lines comparing this run with the public implementation's figures quoted in the issue."""
    lines: list[str] = []
    by_name = {r.name: r for r in results}
    step = by_name.get("step_paper")
    if step is not None and "public_implementation" in step.details:
        pub = step.details["public_implementation"]
        m = step.metrics["step_pairs_per_s"]
        lines.append(
            f"- Training step, paper preset: {_fmt(m.median)} pairs/s here vs {pub['pairs_per_s']} pairs/s "
            f"({pub['step_s_in_loop']} s/step in its loop); {_fmt(step.details['gflop_per_step'])} GFLOP/step "
            f"here vs {pub['gflop_per_step']:.0f}; peak RSS {_fmt(step.details['peak_rss_mb'])} MB vs 3100–3700 MB."
        )
    render = by_name.get("render_paper")
    if render is not None and "public_full_split_s" in render.details:
        lines.append(
            f"- Rendering the 224 px data set ({render.metrics['full_split_s'].note}): "
            f"{_fmt(render.metrics['full_split_s'].median)} s here vs {render.details['public_full_split_s']} s."
        )
    aug = by_name.get("augment_paper")
    if aug is not None and "public_pil_ms_per_sample" in aug.details:
        lines.append(
            f"- Image augmentation, 224 px: {_fmt(aug.metrics['augment_per_sample_ms'].median)} ms/sample batched "
            f"here vs {_fmt(aug.details['public_pil_ms_per_sample'])} ms/sample for per-sample PIL."
        )
    rnd = by_name.get("probe_round_paper")
    if rnd is not None and "public_round_s" in rnd.details:
        lines.append(
            f"- One probing round of the four tasks, paper preset: {_fmt(rnd.metrics['probe_round_s'].median)} s "
            f"here vs ≈ {rnd.details['public_round_s']} s."
        )
    if lines:
        lines.insert(0, "Against the public implementation (its figures are quoted from the issue, measured on "
                     "this machine type, not in this run):")  # fmt: skip
    return lines


def _busy_line(meta: dict[str, Any]) -> str:
    """How much of the machine other processes took during the run, and the load averages around it."""
    m = meta["machine"]
    loads = (
        f"load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}, "
        f"at end {', '.join(f'{x:.2f}' for x in meta['load_average_at_end'])} (these include the suite itself)"
    )
    share = meta.get("other_cpu_share")
    head = (
        f"- Other processes used {100 * share:.1f} % of the CPUs during the run; {loads}"
        if share is not None
        else f"- {loads[0].upper()}{loads[1:]}"
    )
    return head + (" — **the machine was busy: timings are noisy**" if meta["busy"] else "")


def write_markdown(path: Path, meta: dict[str, Any], results: list[BenchResult], plots: list[str]) -> None:
    """``RESULTS.md``: machine, command, targets, every metric (min/median/max over repeats), scaling."""
    m = meta["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"- Command: `{meta['command']}` ({meta['mode']} mode), {meta['total_seconds']:.0f} s in all, {m['date']}",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} with {m['torch_threads']} "
        f"threads ({m['cpu_capability']}), lightning {m['lightning']}, Python {m['python']}, {m['platform']}",
        f"- Code: git {m['git']}; environment: "
        + (", ".join(f"{k}={v}" for k, v in m.get("env", {}).items()) or "no thread or OpenMP variables set"),
        f"- fp32 matmul peak used for FLOP efficiency: {meta['peak_gflops']:.0f} GFLOP/s (best of this run)",
        _busy_line(meta),
        "",
    ]
    if meta["mode"] == "quick":
        lines += ["> Quick smoke run: smaller sizes and single repeats; targets are not judged.", ""]
    lines += [
        "## Targets",
        "",
        "| benchmark | metric | median | min | max | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, metric in r.metrics.items():
            if metric.target is not None and metric.samples:
                lines.append(
                    f"| {r.name} | {name} | {_fmt(metric.median)} | {_fmt(metric.min)} | {_fmt(metric.max)} | "
                    f"{metric.target} | {_verdict(metric.passed())} |"
                )
    comparisons = _comparisons(results)
    if comparisons:
        lines += ["", *comparisons]
    lines += ["", "## All measurements", ""]
    for r in results:
        lines += [f"### {r.name}", "", r.description + f" ({r.seconds:.0f} s).", ""]
        if r.error:
            lines += [f"**Error:** {r.error}", ""]
        if r.metrics:
            lines += ["| metric | min | median | max | n | unit | note |", "|---|---|---|---|---|---|---|"]
            for name, metric in r.metrics.items():
                if metric.samples:
                    lines.append(
                        f"| {name} | {_fmt(metric.min)} | {_fmt(metric.median)} | {_fmt(metric.max)} | "
                        f"{len(metric.samples)} | {metric.unit} | {metric.note} |"
                    )
            lines.append("")
        if r.name.startswith("scaling_") and "points" in r.details:
            d = r.details
            x_name = "batch size" if d["axis"] == "batch" else "modalities"
            lines += [
                f"| {x_name} | step s min | median | max | CPU busy | step memory MB | peak RSS MB |",
                "|---|---|---|---|---|---|---|",
            ]
            for p in d["points"]:
                lines.append(
                    f"| {p['x']} | {_fmt(p['step_s_min'])} | {_fmt(p['step_s'])} | {_fmt(p['step_s_max'])} | "
                    f"{_fmt(p.get('cpu_busy'))} | {_fmt(p['step_peak_mb'])} | {_fmt(p['peak_rss_mb'])} |"
                )
            unit = "sample" if d["axis"] == "batch" else "modality"
            lines += [
                "",
                f"Slopes: {_fmt(d[f'ms_per_{unit}'])} ms and {_fmt(d[f'mb_per_{unit}'])} MB per {unit}.",
                "",
            ]
    if plots:
        lines += ["## Scaling curves", ""] + [f"![{p}]({p})" for p in plots] + [""]
    path.write_text("\n".join(lines))
