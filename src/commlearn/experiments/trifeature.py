"""The bimodal Trifeature experiment: does a method capture redundancy, uniqueness and synergy?

Protocol (CoMM, ICLR 2025, section 4.1; DESIGN §5): pairs (x1, x2) of Trifeature images share the shape (R);
each image's texture is unique to it (U1, U2); synergy S asks whether (texture of x1, colour of x2) follows a
fixed mapping M. Each method is pre-trained twice — on unbiased pairs (probed for R, U1, U2) and on biased
pairs that all follow M (probed for S) — then linear probes on frozen features score each task with balanced
accuracy on pairs of unseen attribute combinations.

The experiment is a loop of ``fit(config)`` and probing over a packaged preset (``trifeature-cpu``,
``trifeature-paper``, ``trifeature-tiny``): every pre-training is an ordinary run folder whose config rebuilds
its data, so ``commlearn probe --checkpoint <run>/checkpoints/last.ckpt`` probes the same features.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from commlearn.config import ConfigError, RunConfig, load_config, preset_names
from commlearn.experiments import report
from commlearn.experiments.report import LABELS, method_list, resolve_method, training_overrides

TASKS = ("R", "U1", "U2", "S")
REGIMES = {"unbiased": ("R", "U1", "U2"), "biased": ("S",)}

# Reference linear-probe accuracies (224 px, AlexNet, 100 epochs; U is reported once) and where each is from.
_COMM_PAPER = "CoMM paper (Dufumier et al., ICLR 2025), Fig. 3"
REFERENCES: dict[str, tuple[dict[str, float], str]] = {
    "cross": ({"R": 100.0, "U": 11.6, "S": 50.0}, _COMM_PAPER),
    "factorcl": ({"R": 99.8, "U": 62.5, "S": 46.5}, _COMM_PAPER),
    "cross_self": ({"R": 99.7, "U": 86.9, "S": 50.0}, _COMM_PAPER),
    "comm": ({"R": 99.9, "U": 87.8, "S": 71.9}, _COMM_PAPER),
    "infmasking": ({"R": 99.9, "U": 90.6, "S": 77.0}, "InfMasking paper (Wen et al., NeurIPS 2025)"),
}


def preset_config(preset: str) -> str:
    """The packaged preset of ``--preset`` (``cpu`` → ``trifeature-cpu``; full names are accepted too)."""
    name = preset if preset.startswith("trifeature-") else f"trifeature-{preset}"
    choices = [n.removeprefix("trifeature-") for n in preset_names() if n.startswith("trifeature-")]
    if name.removeprefix("trifeature-") not in choices:
        raise ValueError(f"unknown preset {preset!r}; choose one of {choices}")
    return name


def run_config(
    preset: str, method: str, regime: str, output: Path, overrides: Sequence[str] = ()
) -> RunConfig:
    """The config of one pre-training: the preset with ``overrides``, the method (or variant, see
    :func:`resolve_method`) with its options (an overridden ``method.options`` key wins), the regime's data
    (``biased`` for the synergy run, trained ``experiment.biased_epochs`` epochs when set) and its run folder
    ``output/<method>/<regime>``."""
    cfg = load_config(preset_config(preset), overrides)
    cfg.method.name, options = resolve_method(cfg, method)
    cfg.method.options = {**options, **cfg.method.options}
    cfg.data.options["biased"] = regime == "biased"
    if regime == "biased" and cfg.experiment.biased_epochs is not None:
        cfg.trainer.max_epochs = min(cfg.experiment.biased_epochs, cfg.trainer.max_epochs)
    cfg.trainer.output = str(output / method / regime)
    return cfg


class Probed(NamedTuple):
    """One pre-training's probe scores."""

    scores: dict[str, float]  # {task: balanced accuracy in %}
    width: int  # D of the probed features (N, D)
    fit_seconds: float  # wall seconds of this call's ``fit``: loading only when a finished run was reused,
    # and only the rest of the training when an interrupted run was resumed


def pretrain_and_probe(cfg: RunConfig, tasks: Sequence[str]) -> Probed:
    """``fit(cfg)`` (resumed or reused when its run folder holds it), then probe ``tasks`` (of R, U1, U2, S)."""
    from commlearn.eval import extract_features, probe_tasks
    from commlearn.train import fit

    t0 = time.perf_counter()
    result = fit(cfg)
    fit_seconds = time.perf_counter() - t0
    assert result.data.probe_train is not None and result.data.test is not None
    train_x, train_y = extract_features(result.method, result.data.probe_train)
    test_x, test_y = extract_features(result.method, result.data.test)
    assert train_y is not None and test_y is not None
    device = next(result.method.parameters()).device  # probe where the model trained (a GPU solve is faster)
    train_x, test_x = train_x.to(device), test_x.to(device)
    cols = [TASKS.index(t) for t in tasks]
    scores = probe_tasks(
        train_x, train_y[:, cols], test_x, test_y[:, cols], list(tasks), "multiclass", seed=cfg.trainer.seed
    )
    rounded = {t: round(float(scores[t].score), 2) for t in tasks}
    return Probed(rounded, int(train_x.shape[1]), round(fit_seconds, 1))


def run_experiment(
    preset: str = "cpu",
    methods: Sequence[str] | None = None,
    output: str | Path = "runs/trifeature",
    overrides: Sequence[str] = (),
    curves: Sequence[int] | None = None,
) -> dict[str, dict[str, float]]:
    """Run the whole experiment and write ``results.json``, ``rus.png`` and ``table.md`` into ``output``.

    Args:
        preset: ``cpu``, ``paper`` or ``tiny`` (the packaged ``trifeature-*`` presets).
        methods: method names or variants of the preset's ``experiment.variants`` (default: the preset's
            ``experiment.methods``).
        output: results folder; each pre-training runs in ``output/<method>/<unbiased|biased>``.
        overrides: ``section.key=value`` overrides applied to every pre-training.
        curves: epochs after which to probe (learning curves): each pre-training is trained to the first,
            probed, trained on to the next, and so on; the table holds the last point. Writes
            ``curves.json`` (each point with the regime's cumulative ``fit`` seconds), ``curves.png``
            (accuracy against training steps) and ``time_to_accuracy.md`` (:func:`time_to_accuracy`).

    Returns:
        ``{method: {"R": …, "U1": …, "U2": …, "S": …}}`` balanced accuracies in %.
    """
    base = load_config(preset_config(preset), overrides)
    names = list(methods) if methods is not None else list(base.experiment.methods)
    for name in names:
        resolve_method(base, name)  # an unknown name stops here, before any training
    points = sorted(set(curves or ()))
    if points and (points[0] < 1 or points[-1] > base.trainer.max_epochs):
        raise ConfigError(f"--curves epochs must be in 1..{base.trainer.max_epochs} (trainer.max_epochs)")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    settings = {**_settings(base), **({"curves": points} if points else {})}
    results, meta = report.previous_results(out, settings)
    timings: dict[str, float] = dict(meta.get("seconds_per_method", {}))
    widths: dict[str, int] = dict(meta.get("feature_widths", {}))
    # the points an earlier run with these settings probed (one that was killed included) are kept: a run
    # folder holds only its last state, so they could not be probed again
    curve_rows = _previous_curves(out) if meta else {}
    steps_per_epoch = int(base.data.options.get("n_pairs", 0)) // base.data.batch_size
    for name in names:
        t1 = time.perf_counter()
        scores: dict[str, float] = {}
        rows = {int(r["epoch"]): dict(r) for r in curve_rows.get(name, [])}
        for regime, tasks in REGIMES.items():
            cfg = run_config(preset, name, regime, out, overrides)
            seconds = 0.0
            # the same run trained further: each point resumes the previous one; a shorter (biased) run is
            # probed at the points within its length and at its end
            for epoch in sorted({min(e, cfg.trainer.max_epochs) for e in points}):
                row = rows.setdefault(epoch, {"epoch": epoch, "step": epoch * steps_per_epoch})
                if f"seconds_{regime}" in row:  # probed before
                    seconds = row[f"seconds_{regime}"]
                    scores.update({t: row[t] for t in tasks})
                    continue
                cfg.trainer.max_epochs = epoch
                point = pretrain_and_probe(cfg, tasks)
                seconds += point.fit_seconds
                row.update({**point.scores, f"seconds_{regime}": round(seconds, 1)})
                scores.update(point.scores)
                widths[name] = point.width
                curve_rows[name] = [rows[e] for e in sorted(rows)]
                _write_curves(out, curve_rows)
                _write_outputs(out, results, timings, settings, widths)  # run.json names these settings
            if not points:
                last = pretrain_and_probe(cfg, tasks)
                scores.update(last.scores)
                widths[name] = last.width
        results[name] = {t: scores[t] for t in TASKS}
        timings[name] = round(time.perf_counter() - t1, 1)
        print(f"[trifeature] {name}: {results[name]} ({timings[name]:.0f} s)")
        _write_outputs(out, results, timings, settings, widths)
    print(format_table(results, widths))
    if points:
        print(time_to_accuracy(curve_rows))
    print(f"[trifeature] total {time.perf_counter() - t0:.0f} s; results in {out}")
    return results


def _write_curves(out: Path, curves: dict[str, list[dict[str, float]]]) -> None:
    """``curves.json``, ``curves.png`` and ``time_to_accuracy.md`` of the points probed so far."""
    (out / "curves.json").write_text(json.dumps(curves, indent=2))
    plot_curves(curves, out / "curves.png")
    (out / "time_to_accuracy.md").write_text(time_to_accuracy(curves) + "\n")


def _previous_curves(out: Path) -> dict[str, list[dict[str, float]]]:
    try:
        return dict(json.loads((out / "curves.json").read_text()))
    except (OSError, ValueError):
        return {}


# Thresholds of the time-to-accuracy table: the cpu preset's targets (docs/trifeature_cpu_preset.md) and a
# lower mark each.
THRESHOLDS: tuple[tuple[str, float], ...] = (("R", 80.0), ("R", 95.0), ("U", 50.0), ("U", 80.0), ("S", 60.0),
                                             ("S", 70.0))  # fmt: skip


def time_to_accuracy(curves: dict[str, list[dict[str, float]]]) -> str:
    """Markdown table: for each method and threshold of :data:`THRESHOLDS`, the first curve point at or above
    it, as ``epoch (minutes of fit)``; U is the lower of U1 and U2; R and U count the unbiased run's minutes,
    S the biased run's (whose points may be fewer). A threshold never reached shows the best accuracy
    instead, a task not probed yet a dash. Points without seconds (curves written before they were recorded) show
    the epoch alone."""
    header = [f"{task} ≥ {value:g}" for task, value in THRESHOLDS]
    lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for name, rows in curves.items():
        cells = []
        for task, value in THRESHOLDS:
            regime = "biased" if task == "S" else "unbiased"
            probed = [r for r in rows if ("U1" if task == "U" else task) in r]
            accuracy = [min(r["U1"], r["U2"]) if task == "U" else r[task] for r in probed]
            hit = next((i for i, a in enumerate(accuracy) if a >= value), None)
            if hit is None:
                cells.append(f"not reached (best {max(accuracy):.1f})" if accuracy else "–")
                continue
            row = probed[hit]
            seconds = row.get(f"seconds_{regime}")
            when = f"{int(row['epoch'])} ep" + (f" ({seconds / 60:.1f} min)" if seconds is not None else "")
            cells.append(when)
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Probe accuracy of each task against pre-training steps, one line per method (the paper's Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chance = {"R": 10.0, "U1": 10.0, "U2": 10.0, "S": 50.0}
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharex=True)
    for ax, task in zip(axes, TASKS, strict=True):
        for name, rows in curves.items():
            probed = [r for r in rows if task in r]  # a shorter biased run has fewer S points
            ax.plot(
                [r["step"] for r in probed],
                [r[task] for r in probed],
                marker="o",
                label=LABELS.get(name, name),
            )
        ax.axhline(chance[task], color="grey", linestyle="--", linewidth=1)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("pre-training steps", fontsize=8)
    axes[0].set_ylabel("linear probe balanced accuracy (%)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _settings(cfg: RunConfig) -> dict[str, Any]:
    """:func:`report.comparable_settings` with the data options of both regimes and their lengths."""
    settings = report.comparable_settings(cfg)
    settings["data"]["options"].pop("biased", None)
    settings["biased_epochs"] = cfg.experiment.biased_epochs
    return settings


def format_table(results: dict[str, dict[str, float]], widths: dict[str, int] | None = None) -> str:
    """Markdown table of our accuracies and the width of each method's probed features beside the published
    accuracies, each with its source."""
    columns = [(t, t) for t in TASKS]
    published = [(k, f"published {k}") for k in ("R", "U", "S")]
    return report.format_table(results, columns, REFERENCES, published, LABELS, widths)


def _write_outputs(
    out: Path,
    results: dict[str, dict[str, float]],
    timings: dict[str, float],
    settings: dict[str, Any],
    widths: dict[str, int],
) -> None:
    meta = {"settings": settings, "seconds_per_method": timings, "feature_widths": widths}
    report.write_results(out, results, meta, format_table(results, widths))
    plot_rus(results, out / "rus.png")


def plot_rus(results: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bars (one group per task, one bar per method) with chance levels, like the paper's Fig. 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [("R", "Redundancy (shape)"), ("U1", "Uniqueness (texture x1)"), ("U2", "Uniqueness (texture x2)"),
             ("S", "Synergy (texture x1 ↔ colour x2)")]  # fmt: skip
    chance = {"R": 10.0, "U1": 10.0, "U2": 10.0, "S": 50.0}
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), sharey=True)
    names = list(results)
    colors = plt.get_cmap("tab10")
    for ax, (task, title) in zip(axes, tasks, strict=True):
        values = [results[n].get(task, 0.0) for n in names]
        bars = ax.bar(range(len(names)), values, color=[colors(i) for i in range(len(names))])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.axhline(chance[task], color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names], rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 105)
    axes[0].set_ylabel("linear probe balanced accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``commlearn experiment trifeature``."""
    p.add_argument("--preset", default="cpu", help="cpu, paper or tiny (the packaged trifeature-* presets)")
    p.add_argument(
        "--methods", help="comma-separated methods or variants, e.g. comm_full_only (default: the preset's)"
    )
    p.add_argument("--curves", help="comma-separated epochs to probe at (learning curves), e.g. 1,2,3,5")
    p.add_argument("--epochs", type=int, help="pre-training epochs per run (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of the data, the models and the probes (default: 0)")
    p.add_argument("--share", help="redundant attribute: shape, texture or color (default: shape)")
    p.add_argument("--unique", help="unique attribute (default: texture)")
    p.add_argument("--synergy", help="ATTR_OF_X1,ATTR_OF_X2 of the synergy mapping (default: texture,color)")
    p.add_argument("--output", default="runs/trifeature", help="results folder")
    p.add_argument("--data-dir", help="image cache folder (default: $COMMLEARN_CACHE or ~/.cache/commlearn)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: auto)")
    p.add_argument("--precision", help="32-true, bf16-mixed or 16-mixed (mixed precision: GPUs)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of every pre-training")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The ``section.key=value`` overrides the experiment's options stand for."""
    out = training_overrides(args)
    for flag, key in (("share", "share"), ("unique", "unique")):
        if getattr(args, flag) is not None:
            out.append(f"data.options.{key}={getattr(args, flag)}")
    if args.synergy is not None:
        synergy = [a.strip() for a in args.synergy.split(",")]
        if len(synergy) != 2:
            raise ValueError(f"--synergy takes two attributes ATTR1,ATTR2, got {args.synergy!r}")
        out.append(f"data.options.synergy={json.dumps(synergy)}")
    if args.data_dir is not None:
        out.append(f"data.root={args.data_dir}")
    return [*out, *args.overrides]


def run_from_args(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run the experiment from parsed command-line arguments."""
    methods = method_list(args.methods)
    curves = None
    if args.curves is not None:
        try:
            curves = [int(e) for e in args.curves.split(",")]
        except ValueError:
            raise ValueError(f"--curves takes comma-separated epochs, got {args.curves!r}") from None
    return run_experiment(args.preset, methods, args.output, overrides_from_args(args), curves)
