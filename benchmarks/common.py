"""The suite's shared harness: metrics, interleaved timing, the line fit, the machine and how busy other
processes kept it, running a list of benchmarks, and the two reports (``results.json``, ``RESULTS.md``).

Every benchmark returns a :class:`BenchResult`: named metrics, each with min/median/max over its repeats, an
optional target and the public implementation's figure where the issue quotes one. Times are wall-clock
seconds from ``time.perf_counter``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULT_MARKER = "BENCH_RESULT "
BUSY_OTHER_SHARE = 0.05
"""A run is flagged busy when other processes took more than this share of all CPUs during it."""


@dataclass
class Metric:
    """One measured quantity over its repeats.

    Attributes:
        unit: e.g. ``"s"``, ``"pairs/s"``, ``"x"`` (a ratio).
        samples: one value per repeat.
        target: ``">= 100"`` or ``"<= 0.10"`` (judged on the median), or None.
        judged: whether the target applies to this run (quick runs use other sizes).
        public: the paper's public implementation's figure for the same quantity (quoted, not measured here).
        note: one line shown in the tables.
    """

    unit: str
    samples: list[float]
    target: str | None = None
    judged: bool = True
    public: float | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    def passed(self) -> bool | None:
        """Whether the median meets the target (None: no target, or not judged in this run)."""
        if self.target is None or not self.judged or not self.samples:
            return None
        op, value = self.target.split()
        return self.median >= float(value) if op == ">=" else self.median <= float(value)

    def to_dict(self) -> dict[str, Any]:
        stats = (
            {"min": min(self.samples), "median": self.median, "max": max(self.samples)}
            if self.samples
            else {}
        )
        return {**asdict(self), **stats, "passed": self.passed()}


@dataclass
class BenchResult:
    """What one benchmark reports: ``name``, a one-sentence ``description`` (what is compared with what),
    ``metrics``, JSON-ready ``details``, its wall ``seconds`` and the ``error`` that stopped it, if any."""

    name: str
    description: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": {k: m.to_dict() for k, m in self.metrics.items()}}


def check_positive(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def interleaved(
    fns: Sequence[Callable[[], Any]], repeats: int, budget_s: float, warmup: int = 1
) -> list[list[float]]:
    """Time functions side by side: each repeat calls every one once, in turn, until ``repeats`` repeats or
    past ``budget_s`` (at least one repeat). The contenders share the same background load, so ratios taken
    repeat by repeat are steadier than ratios of separately measured medians.

    Returns:
        per function, the seconds of each repeat.
    """
    check_positive("repeats", repeats)
    check_positive("budget_s", budget_s)
    start = time.perf_counter()
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    while len(times[0]) < repeats:
        for fn, out in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s:
            break
    return times


def ratios(slow: Sequence[float], fast: Sequence[float]) -> list[float]:
    """Per-repeat ratios ``slow[i] / fast[i]``."""
    return [s / f for s, f in zip(slow, fast, strict=True)]


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """The line ``y ≈ a + b·x`` with the smallest relative residuals, and the largest of them.

    Linearity is judged by relative residuals ``|y − fit| / y``, so the line minimises their sum of squares
    (least squares weighted by 1/y). An unweighted fit through 32…512 lets the largest points set the line and
    judges the smallest against it: a 5 % spread at batch 32 then reads as a 20 % departure from a line.
    ``max_rel_residual_unweighted`` reports that reading too.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"linear_fit needs ≥ 2 paired points, got {len(x)} x and {len(y)} y values")
    xt = torch.tensor(x, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    if bool((yt <= 0).any()):
        raise ValueError(f"linear_fit needs positive y values (times, sizes), got {list(y)}")
    design = torch.stack([torch.ones_like(xt), xt], dim=1)

    def fit(weights: torch.Tensor) -> tuple[torch.Tensor, float]:
        coef = torch.linalg.lstsq(design * weights[:, None], (yt * weights)[:, None]).solution.squeeze(1)
        return coef, float(((yt - design @ coef).abs() / yt).max())

    coef, rel = fit(1.0 / yt)
    return {
        "intercept": float(coef[0]),
        "slope": float(coef[1]),
        "max_rel_residual": rel,
        "max_rel_residual_unweighted": fit(torch.ones_like(yt))[1],
    }


# ------------------------------------------------------------------------------------- the machine
def machine_cpu_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot, all CPUs together (``/proc/stat``; steal time
    counts as busy); None where ``/proc/stat`` cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_reading() -> tuple[float | None, float, float]:
    """``(machine CPU s, CPU s of this process and its finished children, monotonic wall s)`` now."""
    t = os.times()
    return machine_cpu_seconds(), t.user + t.system + t.children_user + t.children_system, time.monotonic()


def other_cpu_share(
    start: tuple[float | None, float, float], end: tuple[float | None, float, float]
) -> float | None:
    """Share of all CPUs that other processes used between two :func:`cpu_reading` values.

    0 on a machine left to the suite; 0.5 on 2 cores means one core was busy elsewhere on average. None where
    the machine's CPU time cannot be read.
    """
    (machine0, own0, wall0), (machine1, own1, wall1) = start, end
    if machine0 is None or machine1 is None or wall1 <= wall0:
        return None
    other = (machine1 - machine0) - (own1 - own0)
    return max(0.0, other) / ((wall1 - wall0) * (os.cpu_count() or 1))


def machine_info() -> dict[str, Any]:
    """The machine and software a run measures."""
    import lightning

    cpu = platform.processor() or "unknown"
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO_DIR, capture_output=True, text=True
    )
    env_keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "COMMLEARN_CACHE")
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "git": git.stdout.strip() or "unknown",
        "env": {k: os.environ[k] for k in env_keys if k in os.environ},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def run_worker(script: Path, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``python script '<json args>'`` in a fresh process and return the JSON it printed on its last line
    starting with :data:`RESULT_MARKER`.

    Raises:
        RuntimeError: the worker failed, timed out or printed no result (with the tail of its output).
    """
    cmd = [sys.executable, str(script), json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_DIR)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"worker {args} timed out after {timeout_s:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])  # type: ignore[no-any-return]
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    raise RuntimeError(f"worker {args} exited with {proc.returncode} and no result:\n{tail}")


# ------------------------------------------------------------------------------------------- a run
Bench = tuple[str, Callable[[], BenchResult]]


def run_suite(benches: Sequence[Bench], command: str, mode: str) -> tuple[dict[str, Any], list[BenchResult]]:
    """Run ``benches`` in order (one failing benchmark is recorded and the others still run) and describe the
    run: command, mode, machine, load averages, the CPU share other processes took and the busy flag."""
    start, cpu_start = time.perf_counter(), cpu_reading()
    meta: dict[str, Any] = {"command": command, "mode": mode, "machine": machine_info()}
    meta["load_average_at_start"] = list(os.getloadavg())
    results = []
    for name, bench in benches:
        t = time.perf_counter()
        try:
            result = bench()
        except Exception as e:  # noqa: BLE001 - one failing benchmark must not lose the others' results
            traceback.print_exc()
            result = BenchResult(name, "failed before reporting", error=f"{type(e).__name__}: {e}")
        result.seconds = time.perf_counter() - t
        results.append(result)
        error = f" — ERROR {result.error}" if result.error else ""
        print(f"[{time.perf_counter() - start:6.0f} s] {name}: {result.seconds:.0f} s{error}", flush=True)
    meta["load_average_at_end"] = list(os.getloadavg())
    # Load averages count the suite's own threads and lag by minutes; the CPU time others took is the measure.
    meta["other_cpu_share"] = other_cpu_share(cpu_start, cpu_reading())
    meta["busy"] = meta["other_cpu_share"] is not None and meta["other_cpu_share"] > BUSY_OTHER_SHARE
    meta["total_seconds"] = time.perf_counter() - start
    return meta, results


# ----------------------------------------------------------------------------------------- reports
def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a == 0 or a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if a >= 10 else f"{v:.3f}" if a >= 0.01 else f"{v:.2e}"


def write_json(path: Path, meta: dict[str, Any], results: list[BenchResult]) -> None:
    """Everything: the run's description and every sample of every metric."""
    doc = {"meta": meta, "benchmarks": [r.to_dict() for r in results]}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_markdown(
    path: Path,
    meta: dict[str, Any],
    results: list[BenchResult],
    plots: Sequence[str] = (),
    appendix: Sequence[str] = (),
) -> None:
    """The tables people read: targets and public figures first, then every metric of every benchmark, the
    plots, and ``appendix`` (markdown lines of measurements this run did not make, each naming its source)."""
    m = meta["machine"]
    loads = ", ".join(f"{x:.2f}" for x in meta["load_average_at_start"] + meta["load_average_at_end"])
    share = (
        "an unknown share" if meta["other_cpu_share"] is None else f"{100 * meta['other_cpu_share']:.1f} %"
    )
    busy = " — **the machine was busy: timings are noisy**" if meta["busy"] else ""
    lines = [
        "# Benchmark results",
        "",
        f"- Command: `{meta['command']}` ({meta['mode']} mode), {meta['total_seconds']:.0f} s in all, {m['date']}",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} with {m['torch_threads']} "
        f"threads, lightning {m['lightning']}, Python {m['python']}, {m['platform']}",
        f"- Code: git {m['git']}; environment: "
        + (", ".join(f"{k}={v}" for k, v in m["env"].items()) or "no thread or OpenMP variables set"),
        f"- Other processes used {share} of the CPUs during the run; load average (1/5/15 min) at start and "
        f"end: {loads} (these count the suite too){busy}",
        "",
    ]
    if meta["mode"] == "quick":
        lines += [
            "> Quick smoke run: smaller sizes, single repeats; size-dependent targets are not judged.",
            "",
        ]
    lines += [
        "## Targets and the public implementation",
        "",
        "| benchmark | metric | median | min | max | public code | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdict = {True: "yes", False: "**no**", None: "not judged"}
    for r in results:
        for name, x in r.metrics.items():
            if x.samples and (x.target is not None or x.public is not None):
                lines.append(
                    f"| {r.name} | {name} | {_fmt(x.median)} | {_fmt(min(x.samples))} | {_fmt(max(x.samples))} "
                    f"| {_fmt(x.public)} | {x.target or '–'} | {verdict[x.passed()] if x.target else '–'} |"
                )
    lines += [
        "",
        "Public code: the paper's public implementation, figures quoted from the issue (measured on this machine "
        "type, not in this run).",
        "",
        "## All measurements",
        "",
    ]
    for r in results:
        lines += [f"### {r.name}", "", f"{r.description} ({r.seconds:.0f} s).", ""]
        if r.error:
            lines += [f"**Error:** {r.error}", ""]
        if r.metrics:
            lines += ["| metric | min | median | max | n | unit | note |", "|---|---|---|---|---|---|---|"]
            for name, x in r.metrics.items():
                if x.samples:
                    lines.append(
                        f"| {name} | {_fmt(min(x.samples))} | {_fmt(x.median)} | {_fmt(max(x.samples))} | "
                        f"{len(x.samples)} | {x.unit} | {x.note} |"
                    )
            lines.append("")
        if "points" in r.details:
            d = r.details
            lines += [f"| {d['axis']} | step s (fastest) | median | step memory MB |", "|---|---|---|---|"]
            lines += [
                f"| {p['x']} | {_fmt(p['step_s_min'])} | {_fmt(p['step_s'])} | {_fmt(p['step_peak_mb'])} |"
                for p in d["points"]
            ]
            lines += ["", f"Slopes: {_fmt(1e3 * d['time_fit']['slope'])} ms and "
                      f"{_fmt(d['memory_fit']['slope'])} MB per {d['per']}.", ""]  # fmt: skip
    if plots:
        lines += ["## Scaling curves", "", *[f"![{p}]({p})" for p in plots], ""]
    lines += appendix
    path.write_text("\n".join(lines))
