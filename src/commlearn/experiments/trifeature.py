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
from typing import Any

from commlearn.config import RunConfig, load_config, preset_names

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
LABELS = {
    "comm": "CoMM",
    "cross": "Cross",
    "cross_self": "Cross+Self",
    "factorcl": "FactorCL",
    "infmasking": "InfMasking",
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
    """The config of one pre-training: the preset with ``overrides``, the method with its options in the
    preset (``experiment.method_options``; an overridden ``method.options`` key wins), the regime's data
    (``biased`` for the synergy run) and its run folder ``output/<method>/<regime>``."""
    cfg = load_config(preset_config(preset), overrides)
    cfg.method.name = method
    cfg.method.options = {**cfg.experiment.method_options.get(method, {}), **cfg.method.options}
    cfg.data.options["biased"] = regime == "biased"
    cfg.trainer.output = str(output / method / regime)
    return cfg


def pretrain_and_probe(cfg: RunConfig, tasks: Sequence[str]) -> dict[str, float]:
    """``fit(cfg)`` (resumed or reused when its run folder holds it), then probe ``tasks`` (of R, U1, U2, S).

    Returns:
        ``{task: balanced accuracy in %}``.
    """
    from commlearn.eval import extract_features, probe_tasks
    from commlearn.train import fit

    result = fit(cfg)
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
    return {t: round(float(scores[t].score), 2) for t in tasks}


def run_experiment(
    preset: str = "cpu",
    methods: Sequence[str] | None = None,
    output: str | Path = "runs/trifeature",
    overrides: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Run the whole experiment and write ``results.json``, ``rus.png`` and ``table.md`` into ``output``.

    Args:
        preset: ``cpu``, ``paper`` or ``tiny`` (the packaged ``trifeature-*`` presets).
        methods: method names (default: the preset's ``experiment.methods``).
        output: results folder; each pre-training runs in ``output/<method>/<unbiased|biased>``.
        overrides: ``section.key=value`` overrides applied to every pre-training.

    Returns:
        ``{method: {"R": …, "U1": …, "U2": …, "S": …}}`` balanced accuracies in %.
    """
    from commlearn.methods.registry import method_class

    base = load_config(preset_config(preset), overrides)
    names = list(methods) if methods is not None else list(base.experiment.methods)
    for name in names:
        method_class(name)  # an unknown name stops here, before any training
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    settings = _settings(base)
    results, timings = _previous_results(out, settings)
    for name in names:
        t1 = time.perf_counter()
        scores: dict[str, float] = {}
        for regime, tasks in REGIMES.items():
            scores.update(pretrain_and_probe(run_config(preset, name, regime, out, overrides), tasks))
        results[name] = scores
        timings[name] = round(time.perf_counter() - t1, 1)
        print(f"[trifeature] {name}: {results[name]} ({timings[name]:.0f} s)")
        _write_outputs(out, results, timings, settings)
    print(format_table(results))
    print(f"[trifeature] total {time.perf_counter() - t0:.0f} s; results in {out}")
    return results


def _settings(cfg: RunConfig) -> dict[str, Any]:
    """What makes two experiments' results comparable: the config apart from the method and run folder."""
    from commlearn.config import config_to_dict

    settings = config_to_dict(cfg)
    for section, key in (
        ("method", "name"),
        ("method", "options"),
        ("trainer", "output"),
        ("data", "options"),
    ):
        settings[section].pop(key, None)
    options = dict(cfg.data.options)
    options.pop("biased", None)
    settings["data"]["options"] = options
    settings.pop("experiment", None)
    return settings


def _previous_results(
    out: Path, settings: dict[str, Any]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Results of other methods already in ``out`` from a run with the same settings (kept, not recomputed)."""
    try:
        meta = json.loads((out / "run.json").read_text())
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}, {}
    if meta.get("settings") != json.loads(json.dumps(settings)):
        return {}, {}
    return results, dict(meta.get("seconds_per_method", {}))


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table of our accuracies beside the published ones, each with its source."""
    lines = [
        "| method | R | U1 | U2 | S | published R | published U | published S | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ref, source = REFERENCES.get(name, ({}, "–"))
        cells = [f"{r.get(t, float('nan')):.1f}" for t in TASKS]
        refs = [f"{ref[k]:.1f}" if k in ref else "–" for k in ("R", "U", "S")]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join([*cells, *refs, source]) + " |")
    return "\n".join(lines)


def _write_outputs(
    out: Path, results: dict[str, dict[str, float]], timings: dict[str, float], settings: dict[str, Any]
) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2))
    meta = {"settings": settings, "seconds_per_method": timings}
    (out / "run.json").write_text(json.dumps(meta, indent=2))
    (out / "table.md").write_text(format_table(results) + "\n")
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
    p.add_argument("--methods", help="comma-separated method names (default: the preset's)")
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
    out: list[str] = []
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be ≥ 1, got {args.epochs}")
        out.append(f"trainer.max_epochs={args.epochs}")
    if args.seed is not None:
        out.append(f"trainer.seed={args.seed}")
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
    if args.accelerator is not None:
        out.append(f"trainer.accelerator={args.accelerator}")
    if args.precision is not None:
        out.append(f"trainer.precision={args.precision}")
    return [*out, *args.overrides]


def run_from_args(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run the experiment from parsed command-line arguments."""
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods is not None and not methods:
        raise ValueError("--methods names no method")
    return run_experiment(args.preset, methods, args.output, overrides_from_args(args))
