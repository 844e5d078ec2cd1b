"""What the experiments share: probing a trained method on its data's splits, the results folder, and the
table of our numbers beside the published ones (each with its source).

An experiment (``experiments/trifeature.py``, ``experiments/benchmark.py``) is a loop of ``fit(config)`` and
probing; it keeps its results in one folder: ``results.json`` (``{method: {column: score}}``), ``run.json``
(the settings that make two runs' results comparable, seconds per method, and the width of the features each
method's probes read) and ``table.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commlearn.config import PRESENTATION_KEYS, ConfigError, RunConfig, config_to_dict

if TYPE_CHECKING:  # the training stack is imported only when a method is probed
    from commlearn.data.base import MultimodalDataset
    from commlearn.data.splits import DataSplits
    from commlearn.eval.probe import ProbeResult
    from commlearn.methods.base import BaseMethod

#: Published numbers of a method: ``({column: value}, source)``.
Reference = tuple[Mapping[str, float], str]

#: Display names of the methods and variants in the tables (default: the name itself).
LABELS = {
    "comm": "CoMM",
    "comm_full_only": "CoMM (L only)",
    "comm_masked_only": "CoMM (ΣL_i only)",
    "comm_finetuned": "CoMM fine-tuned",
    "cross": "Cross",
    "cross_self": "Cross+Self",
    "factorcl": "FactorCL",
    "infmasking": "InfMasking",
    "cmc": "CMC",
}


def method_list(text: str | None) -> list[str] | None:
    """``--methods`` of an experiment: comma-separated names, or None for the preset's.

    Raises:
        ValueError: the option names no method.
    """
    if text is None:
        return None
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods names no method")
    return methods


def training_overrides(args: Any) -> list[str]:
    """The ``trainer.*`` overrides of the options every experiment takes: ``--epochs``, ``--seed``,
    ``--accelerator``, ``--precision``.

    Raises:
        ValueError: ``--epochs`` below 1.
    """
    out: list[str] = []
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be ≥ 1, got {args.epochs}")
        out.append(f"trainer.max_epochs={args.epochs}")
    for flag, key in (("seed", "seed"), ("accelerator", "accelerator"), ("precision", "precision")):
        if getattr(args, flag) is not None:
            out.append(f"trainer.{key}={getattr(args, flag)}")
    return out


def resolve_method(cfg: RunConfig, name: str) -> tuple[str, dict[str, Any]]:
    """The registered method and its options that experiment entry ``name`` stands for: a method with its
    ``experiment.method_options``, or a variant of ``experiment.variants`` (its method, its options on top).

    Raises:
        ConfigError: neither a registered method nor a variant of the preset.
    """
    from commlearn.method_names import METHOD_NAMES as METHODS  # no torch: names are checked before training

    variant = cfg.experiment.variants.get(name)
    if variant is not None:
        method = variant.get("method") if isinstance(variant, dict) else None
        if method not in METHODS:
            raise ConfigError(f"experiment.variants.{name} must name a method of {sorted(METHODS)}")
        return method, {**cfg.experiment.method_options.get(method, {}), **variant.get("options", {})}
    if name not in METHODS:
        choices = sorted(METHODS) + sorted(cfg.experiment.variants)
        raise ConfigError(f"unknown method {name!r}; choose one of {choices}")
    return name, dict(cfg.experiment.method_options.get(name, {}))


def probe_sets(
    data: DataSplits, seed: int = 0, test_fraction: float = 0.2
) -> tuple[MultimodalDataset, MultimodalDataset]:
    """The samples probes are fitted on and scored on: ``data.probe_train`` (or ``data.train``) and the
    published ``data.test``; without one, a seeded random ``test_fraction`` of the probe-train samples.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1) when it is needed.
    """
    import torch

    from commlearn.data.registry import Subset

    probe_train = data.probe_train or data.train
    if data.test is not None:
        return probe_train, data.test
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(len(probe_train), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(test_fraction * len(probe_train))))
    return Subset(probe_train, order[n_test:]), Subset(probe_train, order[:n_test])


def probe_splits(
    method: BaseMethod,
    probe_train: MultimodalDataset,
    test: MultimodalDataset,
    val: MultimodalDataset | None = None,
    seed: int = 0,
    modalities: Sequence[int] | None = None,
    data_name: str = "data",
) -> tuple[dict[str, ProbeResult], int]:
    """Linear probes (DESIGN §6) of every task of ``probe_train`` on the method's frozen features.

    The probes' L2 strength is chosen on ``val`` when a validation split is published (the probes are then
    refitted on train + val), else on a held-out 40 % of ``probe_train``; they are scored on ``test``.
    Features are solved where the method lives (a GPU solve is faster).

    Args:
        method: a trained method.
        probe_train: the samples the probes are fitted on.
        test: the samples they are scored on.
        val: the published validation split, or None.
        seed: seed of the hold-out split.
        modalities: modality indices to embed, the others missing (default: all).
        data_name: the data set's name, for the error message.

    Returns:
        ``({task: ProbeResult}, width D of the probed features (N, D))``.

    Raises:
        ValueError: the data has no labels.
    """
    import torch

    from commlearn.eval import extract_features, probe_tasks

    train_x, train_y = extract_features(method, probe_train, modalities=modalities)
    test_x, test_y = extract_features(method, test, modalities=modalities)
    val_rows = None
    if val is not None:
        val_x, val_y = extract_features(method, val, modalities=modalities)
        if train_y is not None and val_y is not None:
            train_x, train_y, val_rows = torch.cat([train_x, val_x]), torch.cat([train_y, val_y]), len(val_x)
    if train_y is None or test_y is None:
        raise ValueError(
            f"the data set {data_name!r} has no labels to probe: add a labels entry "
            "(data.options.labels names it for data.name=arrays)"
        )
    device = next(method.parameters()).device
    lab_tr = train_y if train_y.ndim == 2 else train_y[:, None]
    lab_te = test_y if test_y.ndim == 2 else test_y[:, None]
    results = probe_tasks(
        train_x.to(device),
        lab_tr,
        test_x.to(device),
        lab_te,
        probe_train.task_names,
        probe_train.task_type,
        seed=seed,
        val_rows=val_rows,
    )
    return results, int(train_x.shape[1])


def format_table(
    results: Mapping[str, Mapping[str, float]],
    columns: Sequence[tuple[str, str]],
    references: Mapping[str, Reference],
    ref_columns: Sequence[tuple[str, str]],
    labels: Mapping[str, str],
    widths: Mapping[str, int] | None = None,
    fmt: Callable[[str, float], str] = lambda _key, v: f"{v:.1f}",
    ref_fmt: Callable[[str, float], str] | None = None,
) -> str:
    """Markdown table: per method our scores, the width of its probed features, the published scores and
    their source.

    Args:
        results: ``{method: {column key: our score}}``.
        columns: ``(key, header)`` of our columns.
        references: ``{method: ({column key: published score}, source)}``.
        ref_columns: ``(key, header)`` of the published columns.
        labels: display name of each method (default: its name).
        widths: ``{method: D}``, the width of the features its probes read ("–" when absent).
        fmt: ``fmt(column key, value)`` → cell text.
        ref_fmt: the same for published numbers (default: ``fmt``).
    """
    head = ["method", *(h for _, h in columns), "probed width", *(h for _, h in ref_columns), "source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, scores in results.items():
        ref, source = references.get(name, ({}, "–"))
        ours = [_cell(scores.get(k), k, fmt) for k, _ in columns]
        width = str((widths or {}).get(name, "–"))
        published = [_cell(ref.get(k), k, ref_fmt or fmt) for k, _ in ref_columns]
        lines.append(f"| {labels.get(name, name)} | " + " | ".join([*ours, width, *published, source]) + " |")
    return "\n".join(lines)


def _cell(value: float | None, key: str, fmt: Callable[[str, float], str]) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt(key, value)


def comparable_settings(cfg: RunConfig) -> dict[str, Any]:
    """What makes two experiments' results comparable: the config (plain dict) apart from what differs between
    the methods of one table (method name and options, run folder, the ``experiment`` section) and the
    :data:`~commlearn.config.PRESENTATION_KEYS`."""
    settings = config_to_dict(cfg)
    settings["method"].pop("name", None)
    settings["method"].pop("options", None)
    settings["trainer"].pop("output", None)
    for key in PRESENTATION_KEYS:
        section, name = key.split(".")
        settings[section].pop(name, None)
    settings.pop("experiment", None)
    return settings


def previous_results(out: Path, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Results and metadata already in ``out`` from a run with the same ``settings`` (kept, not recomputed).

    Returns:
        ``(results, run.json content)``; both empty when ``out`` holds none or other settings.
    """
    try:
        meta = json.loads((out / "run.json").read_text())
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}, {}
    if meta.get("settings") != json.loads(json.dumps(settings)):
        return {}, {}
    return dict(results), dict(meta)


def write_results(out: Path, results: Mapping[str, Any], meta: Mapping[str, Any], table: str) -> None:
    """Write ``results.json``, ``run.json`` (``meta``) and ``table.md`` into ``out``."""
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "run.json").write_text(json.dumps(meta, indent=2))
    (out / "table.md").write_text(table + "\n")
