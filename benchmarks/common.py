"""Shared helpers of the benchmark suite: statistics, timing, the machine, presets, worker processes.

Every benchmark returns a :class:`BenchResult`: named metrics, each with min/median/max over its repeats, an
optional target, and free-form details. Times are wall-clock seconds from ``time.perf_counter``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULT_MARKER = "BENCH_RESULT "


# ------------------------------------------------------------------------------------------- statistics
@dataclass
class Metric:
    """One measured quantity over its repeats.

    Attributes:
        unit: e.g. ``"s"``, ``"pairs/s"``, ``"x"`` (a ratio).
        samples: one value per repeat.
        target: a threshold such as ``">= 0.9"``, or None.
        judged: whether the target applies to this run (quick smoke runs use other sizes: not judged).
        note: one line shown in the table.
    """

    unit: str
    samples: list[float]
    target: str | None = None
    judged: bool = True
    note: str = ""

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def max(self) -> float:
        return max(self.samples)

    def passed(self) -> bool | None:
        """Whether the median meets the target (None: no target, or not judged in this run)."""
        if self.target is None or not self.judged or not self.samples:
            return None
        op, value = self.target.split()
        bound = float(value)
        return self.median >= bound if op == ">=" else self.median <= bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "n": len(self.samples),
            "samples": self.samples,
            "target": self.target,
            "passed": self.passed(),
            "note": self.note,
        }


@dataclass
class BenchResult:
    """What one benchmark reports.

    Attributes:
        name: benchmark id (``render_speedup``...).
        description: one sentence: what is compared with what.
        metrics: named metrics.
        details: configuration and any extra numbers (JSON-serialisable).
        seconds: wall time of the whole benchmark.
        error: why it failed or was cut short, if it did.
    """

    name: str
    description: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "details": self.details,
            "seconds": self.seconds,
            "error": self.error,
        }


def check_positive(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def repeat(fn: Callable[[], Any], repeats: int, budget_s: float, warmup: int = 1) -> list[float]:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, stopping early past ``budget_s``.

    At least one timed call is always made.

    Returns:
        seconds of each timed call.
    """
    check_positive("repeats", repeats)
    check_positive("budget_s", budget_s)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s:
            break
    return times


def interleaved(
    fns: Sequence[Callable[[], Any]], repeats: int, budget_s: float, warmup: int = 1
) -> list[list[float]]:
    """Time several functions side by side: each repeat runs every one once, in turn.

    Interleaving puts the same background load on every contender, so ratios taken per repeat are steadier
    than ratios of separately measured medians on a shared machine.

    Returns:
        one list of per-repeat seconds per function.
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
    judges the smallest against it: a step time with a 5 % spread at batch 32 then reads as a 20 % departure
    from linearity. ``max_rel_residual_unweighted`` reports that reading too.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"linear_fit needs ≥ 2 paired points, got {len(x)} x and {len(y)} y values")
    xt = torch.tensor(x, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    if bool((yt <= 0).any()):
        raise ValueError(f"linear_fit needs positive y values (times, sizes), got {y}")
    design = torch.stack([torch.ones_like(xt), xt], dim=1)

    def fit(weights: Tensor) -> tuple[Tensor, float]:
        coef = torch.linalg.lstsq(design * weights[:, None], (yt * weights)[:, None]).solution.squeeze(1)
        return coef, float(((yt - design @ coef).abs() / yt).max())

    coef, rel = fit(1.0 / yt)
    return {
        "intercept": float(coef[0]),
        "slope": float(coef[1]),
        "max_rel_residual": rel,
        "max_rel_residual_unweighted": fit(torch.ones_like(yt))[1],
    }


# --------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# Settings that change CPU timings (thread counts, OpenMP spin policy) or what data is read.
_ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "COMMLEARN_CACHE")


def machine_cpu_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot, all CPUs together (``/proc/stat``; steal time, the
    hypervisor serving other guests, counts as busy); None where ``/proc/stat`` is not available."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the benchmark workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def other_cpu_share(
    start: tuple[float | None, float, float], end: tuple[float | None, float, float]
) -> float | None:
    """Share of all CPUs that other processes used between two ``(machine, own, wall)`` second readings.

    0 on a machine left to the benchmarks; 0.5 on 2 cores means one core was busy elsewhere on average.
    None where the machine's CPU time cannot be read.
    """
    (machine0, own0, wall0), (machine1, own1, wall1) = start, end
    if machine0 is None or machine1 is None or wall1 <= wall0:
        return None
    other = (machine1 - machine0) - (own1 - own0)
    return max(0.0, other) / ((wall1 - wall0) * (os.cpu_count() or 1))


def cpu_reading() -> tuple[float | None, float, float]:
    """``(machine CPU s, own CPU s, wall s)`` now, for :func:`other_cpu_share`."""
    return machine_cpu_seconds(), own_cpu_seconds(), time.monotonic()


def machine_info() -> dict[str, Any]:
    """The machine and software this run measures (recorded in results.json and RESULTS.md)."""
    import lightning
    import numpy

    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": numpy.__version__,
        "git": _git_commit(),
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
        "load_average_at_start": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def matmul_gflops(n: int, repeats: int = 5) -> list[float]:
    """Achieved GFLOP/s of an fp32 (n × n) @ (n × n) matmul (2n³ FLOPs), one value per repeat."""
    check_positive("n", n)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    times = repeat(lambda: torch.mm(a, b, out=out), repeats, budget_s=60.0, warmup=1)
    return [2.0 * n**3 / t / 1e9 for t in times]


# ----------------------------------------------------------------------------------------------- memory
def _status_kb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


def rss_mb() -> float:
    """Current resident set size of this process, MB (Linux ``VmRSS``)."""
    return _status_kb("VmRSS") / 1024.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux ``VmHWM``)."""
    return _status_kb("VmHWM") / 1024.0


# ----------------------------------------------------------------------------------------------- workers
def run_worker(task: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``benchmarks/worker.py`` in a fresh Python process and return the JSON it reports.

    A fresh process gives each measurement a clean heap, so its peak RSS belongs to that measurement alone.

    Raises:
        RuntimeError: the worker failed, timed out or printed no result (with the tail of its output).
    """
    check_positive("timeout_s", timeout_s)
    cmd = [sys.executable, str(BENCH_DIR / "worker.py"), task, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_DIR)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"worker {task} {args} timed out after {timeout_s:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])  # type: ignore[no-any-return]
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    raise RuntimeError(f"worker {task} exited with {proc.returncode} and no result:\n" + "\n".join(tail))


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result for :func:`run_worker` to find."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses → dicts, tuples → lists, tensors and numpy scalars → Python numbers."""
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj
