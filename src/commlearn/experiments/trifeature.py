"""The bimodal Trifeature experiment: does a method capture redundancy, uniqueness and synergy?

Protocol (CoMM, ICLR 2025, section 4.1; DESIGN §5): pairs (x1, x2) of Trifeature images share the shape (R);
each image's texture is unique to it (U1, U2); synergy S asks whether (texture of x1, colour of x2) follows a
fixed mapping M. Each method is pre-trained twice — on unbiased pairs (probed for R, U1, U2) and on biased
pairs that all follow M (probed for S) — then linear probes on frozen features score each task with balanced
accuracy on pairs of unseen attribute combinations. Features are extracted once per split and pre-training;
the probes of the tasks reuse them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from commlearn.config import DataConfig, MethodConfig, RunConfig, TrainerConfig
from commlearn.data.trifeature import ATTRIBUTES, RenderSettings
from commlearn.data.trifeature_pairs import Roles, TrifeatureData, TrifeaturePairs, build_trifeature
from commlearn.eval import probe_tasks
from commlearn.methods.base import BaseMethod
from commlearn.nn.factory import ModelConfig

TASKS = ("R", "U1", "U2", "S")
DEFAULT_METHODS = ("comm", "cross", "cross_self")

# Linear-probe accuracies of the paper (ICLR 2025, Fig. 3; 224 px, AlexNet, 100 epochs). U is reported once.
PAPER = {
    "cross": {"R": 100.0, "U": 11.6, "S": 50.0},
    "factorcl": {"R": 99.8, "U": 62.5, "S": 46.5},
    "cross_self": {"R": 99.7, "U": 86.9, "S": 50.0},
    "comm": {"R": 99.9, "U": 87.8, "S": 71.9},
}
LABELS = {"comm": "CoMM", "cross": "Cross", "cross_self": "Cross+Self", "factorcl": "FactorCL"}


@dataclass(frozen=True)
class Preset:
    """Everything that sizes the experiment.

    Attributes:
        render: image settings.
        model: architecture shared by all methods.
        batch_size, lr, weight_decay: optimisation (AdamW).
        epochs: pre-training epochs over ``n_train_pairs`` pairs (per method, per regime).
        n_train_pairs, n_probe_train_pairs, n_probe_test_pairs: pair-set sizes (None: all test pairs).
        image_augment: keyword arguments of :class:`commlearn.augment.ImageAugment`.
        method_options: per method, its ``method.options`` (e.g. FactorCL's critic width).
    """

    render: RenderSettings
    model: ModelConfig
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 10
    n_train_pairs: int = 10_000
    n_probe_train_pairs: int = 6_000
    n_probe_test_pairs: int | None = None
    image_augment: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)


def _presets() -> dict[str, Preset]:
    cpu_augment = {"crop_scale": [0.2, 1.0], "hue": 0.0, "p_blur": 0.0}
    return {
        # The paper's setting, for a GPU: 224 px, AlexNet per modality, 36 tokens of width 512, 100 epochs.
        "paper": Preset(
            render=RenderSettings.paper(),
            model=ModelConfig(
                embed_dim=512,
                n_heads=8,
                n_layers=1,
                head_hidden=[512, 512],
                head_out=256,
                image_encoder="alexnet",
                image_positions="sincos",
            ),
            lr=3e-4,
            epochs=100,
            n_probe_train_pairs=10_000,
        ),
        # Small enough for `make demo` on 2 CPU cores (see README for the measured budget).
        "cpu": Preset(
            render=RenderSettings.cpu(),
            model=ModelConfig(),
            epochs=5,
            image_augment=cpu_augment,
            method_options={"factorcl": {"critic_hidden": 128}},
        ),
        # A smoke test: seconds, not meaningful accuracies.
        "tiny": Preset(
            render=replace(RenderSettings.cpu(), canvas_size=32, shape_size=18, texture_period=3.0),
            model=ModelConfig(
                embed_dim=32, n_heads=2, head_hidden=[64], head_out=32, image_channels=[8, 16, 16]
            ),
            batch_size=32,
            epochs=1,
            n_train_pairs=256,
            n_probe_train_pairs=400,
            n_probe_test_pairs=400,
            image_augment=cpu_augment,
            method_options={"factorcl": {"critic_hidden": 32}},
        ),
    }


PRESETS = _presets()


def _run_config(
    preset: Preset, method: str, output: Path, seed: int, epochs: int, accelerator: str, precision: str
) -> RunConfig:
    return RunConfig(
        data=DataConfig(name="trifeature", batch_size=preset.batch_size),
        model=replace(preset.model),
        method=MethodConfig(
            name=method,
            lr=preset.lr,
            weight_decay=preset.weight_decay,
            augment=True,
            augment_options={"image": dict(preset.image_augment)},
            options=dict(preset.method_options.get(method, {})),
        ),
        trainer=TrainerConfig(
            max_epochs=epochs,
            seed=seed,
            output=str(output),
            accelerator=accelerator,
            devices=1,
            precision=precision,
            log_every_n_steps=20,
            keep_epoch_checkpoints=False,  # last.ckpt (resume, probing) is all the experiment reads
        ),
    )


def _features(method: BaseMethod, pairs: TrifeaturePairs) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = method.extract_features(pairs, batch_size=256)
    assert labels is not None
    return feats, labels


def pretrain_and_probe(
    method: str,
    pretrain: TrifeaturePairs,
    probe_train: TrifeaturePairs,
    probe_test: TrifeaturePairs,
    tasks: Sequence[str],
    preset: Preset,
    output: Path,
    seed: int,
    epochs: int,
    accelerator: str = "auto",
    precision: str = "32-true",
) -> dict[str, float]:
    """Pre-train ``method`` on ``pretrain`` pairs, then probe ``tasks`` (a subset of R, U1, U2, S).

    Returns:
        ``{task: balanced accuracy in %}``.
    """
    from commlearn.train import fit

    cfg = _run_config(preset, method, output, seed, epochs, accelerator, precision)
    result = fit(cfg, dataset=pretrain)
    train_x, train_y = _features(result.method, probe_train)
    test_x, test_y = _features(result.method, probe_test)
    device = next(result.method.parameters()).device  # probe where the model trained (a GPU solve is faster)
    train_x, test_x = train_x.to(device), test_x.to(device)
    cols = [TASKS.index(t) for t in tasks]
    scores = probe_tasks(
        train_x, train_y[:, cols], test_x, test_y[:, cols], list(tasks), "multiclass", seed=seed
    )
    return {t: round(float(scores[t].score), 2) for t in tasks}


def run_experiment(
    preset: str | Preset = "cpu",
    methods: Sequence[str] = DEFAULT_METHODS,
    epochs: int | None = None,
    seed: int = 0,
    roles: Roles | None = None,
    output: str | Path = "runs/trifeature",
    data_dir: str | Path | None = None,
    accelerator: str = "auto",
    precision: str = "32-true",
) -> dict[str, dict[str, float]]:
    """Run the whole experiment and write ``results.json``, ``rus.png`` and ``table.md`` into ``output``.

    Returns:
        ``{method: {"R": …, "U1": …, "U2": …, "S": …}}`` balanced accuracies in %.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    if isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    n_epochs = epochs if epochs is not None else p.epochs
    if n_epochs < 1:
        raise ValueError(f"--epochs must be ≥ 1, got {n_epochs}")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data: TrifeatureData = build_trifeature(
        p.render,
        seed,
        roles or Roles(),
        p.n_train_pairs,
        p.n_probe_train_pairs,
        p.n_probe_test_pairs,
        data_dir,
    )
    print(
        f"[trifeature] data ready in {time.perf_counter() - t0:.1f} s: {len(data.pretrain_unbiased)} pairs per run"
    )
    results, timings = _previous_results(out, p, n_epochs, seed, data.roles, precision)
    for name in methods:
        t1 = time.perf_counter()
        unbiased = pretrain_and_probe(
            name, data.pretrain_unbiased, data.probe_train, data.probe_test, ("R", "U1", "U2"), p,
            out / name / "unbiased", seed, n_epochs, accelerator, precision,
        )  # fmt: skip
        biased = pretrain_and_probe(
            name, data.pretrain_biased, data.probe_train, data.probe_test, ("S",), p,
            out / name / "biased", seed, n_epochs, accelerator, precision,
        )  # fmt: skip
        results[name] = {**unbiased, **biased}
        timings[name] = round(time.perf_counter() - t1, 1)
        print(f"[trifeature] {name}: {results[name]} ({timings[name]:.0f} s)")
        _write_outputs(out, results, timings, p, n_epochs, seed, data.roles, precision)
    print(format_table(results))
    print(f"[trifeature] total {time.perf_counter() - t0:.0f} s; results in {out}")
    return results


def _previous_results(
    out: Path, preset: Preset, epochs: int, seed: int, roles: Roles, precision: str
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Results of other methods already in ``out`` from a run with the same settings (kept, not recomputed)."""
    try:
        meta = json.loads((out / "run.json").read_text())
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}, {}
    if meta.get("settings") != _settings(preset, epochs, seed, roles, precision):
        return {}, {}
    return results, dict(meta.get("seconds_per_method", {}))


def _settings(preset: Preset, epochs: int, seed: int, roles: Roles, precision: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "epochs": epochs,
        "seed": seed,
        "roles": {"share": roles.share, "unique": roles.unique, "synergy": list(roles.synergy)},
        "canvas_px": preset.render.canvas_size,
        "batch_size": preset.batch_size,
        "n_train_pairs": preset.n_train_pairs,
    }
    if precision != "32-true":  # the default is left out, so earlier full-precision runs still merge
        settings["precision"] = precision
    return settings


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table of our accuracies beside the paper's."""
    lines = [
        "| method | R | U1 | U2 | S | paper R | paper U | paper S |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ref = PAPER.get(name, {})
        cells = [f"{r.get(t, float('nan')):.1f}" for t in TASKS]
        refs = [f"{ref[k]:.1f}" if k in ref else "–" for k in ("R", "U", "S")]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells + refs) + " |")
    return "\n".join(lines)


def _write_outputs(
    out: Path,
    results: dict[str, dict[str, float]],
    timings: dict[str, float],
    preset: Preset,
    epochs: int,
    seed: int,
    roles: Roles,
    precision: str,
) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2))
    meta = {"settings": _settings(preset, epochs, seed, roles, precision), "seconds_per_method": timings}
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
    p.add_argument("--preset", default="cpu", help=f"one of {sorted(PRESETS)}")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated method names")
    p.add_argument("--epochs", type=int, help="pre-training epochs per run (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--share", default="shape", help=f"redundant attribute, one of {list(ATTRIBUTES)}")
    p.add_argument("--unique", default="texture", help="unique attribute")
    p.add_argument("--synergy", default="texture,color", help="ATTR_OF_X1,ATTR_OF_X2 of the synergy mapping")
    p.add_argument("--output", default="runs/trifeature", help="results folder")
    p.add_argument("--data-dir", help="image cache folder (default: $COMMLEARN_CACHE or ~/.cache/commlearn)")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    p.add_argument(
        "--precision", default="32-true", help="32-true, bf16-mixed or 16-mixed (mixed precision: GPUs)"
    )


def run_from_args(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run the experiment from parsed command-line arguments."""
    from commlearn.methods.registry import METHODS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    synergy = tuple(a.strip() for a in args.synergy.split(","))
    if len(synergy) != 2:
        raise ValueError(f"--synergy takes two attributes ATTR1,ATTR2, got {args.synergy!r}")
    roles = Roles(share=args.share, unique=args.unique, synergy=synergy)  # type: ignore[arg-type]
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}")
    return run_experiment(
        args.preset, methods, args.epochs, args.seed, roles, args.output, args.data_dir, args.accelerator,
        args.precision,
    )  # fmt: skip
