"""A method comparison on a real data set: pre-train each method, probe the published test split, and print
our numbers beside the published ones with their source.

Protocol (CoMM, ICLR 2025, section 4.2; DESIGN §6, §11): every method is pre-trained with the data set's
preset (its encoders, hyper-parameters and augmentations; ``commlearn fit --config <preset>`` trains the same),
then linear probes on frozen features are fitted on the published train split, their L2 strength chosen on
the published validation split (else on a held-out 40 % of train), and scored once on the published test
split. ``--finetune`` adds the paper's fine-tuned row: the ``supervised`` method (CoMM's encoder + a linear
head) initialised from the CoMM run's checkpoint and trained on the labels with the preset's
``experiment.finetune`` recipe, scored by its own predictions on the test split.

Every pre-training is an ordinary run folder ``<output>/<method>`` (``<output>/comm_finetuned`` for the
fine-tuned row): a finished run is reused, a killed one resumes, and ``commlearn probe --checkpoint
<output>/<method>/checkpoints/last.ckpt`` gives the same probe scores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commlearn.config import ConfigError, RunConfig, load_config, preset_names
from commlearn.experiments import report
from commlearn.experiments.report import LABELS, Reference, method_list, resolve_method, training_overrides

if TYPE_CHECKING:
    from commlearn.data.base import MultimodalDataset
    from commlearn.train import FitResult

FINETUNED = "comm_finetuned"

# ----------------------------------------------------------------------------------- published numbers
# Columns are "<task> <metric>" of our probes: balanced accuracy and F1 in %, MSE in target units².
_COMM_README = "public CoMM code's README (Dufumier et al., ICLR 2025)"
_INFMASKING = "InfMasking paper (Wen et al., NeurIPS 2025)"

# MultiBench, two modalities, linear probe (fine-tuned: the supervised model from CoMM's encoder); means of
# 5 runs. Columns of DESIGN §11's table: V&T MSE, MIMIC ICD-9 group 7, MOSI, UR-FUNNY, MUsTARD.
_MULTIBENCH_COLUMNS = (
    ("vision-touch", "ee_yaw_next mse"),
    ("mimic", "icd9_7 balanced_accuracy"),
    ("mosi", "positive balanced_accuracy"),
    ("ur-funny", "humor balanced_accuracy"),
    ("mustard", "sarcasm balanced_accuracy"),
)
_MULTIBENCH: dict[str, tuple[tuple[float, ...], str]] = {
    "cross": ((33.09e-4, 66.7, 47.8, 50.1, 53.5), _COMM_README),
    "cross_self": ((7.56e-4, 65.49, 49.0, 59.9, 53.9), _COMM_README),
    "factorcl": ((10.82e-4, 67.3, 51.2, 60.5, 55.8), _COMM_README),
    "comm": ((4.55e-4, 66.4, 67.5, 63.1, 63.9), _COMM_README),
    "infmasking": ((4.23e-4, 68.1, 69.0, 64.3, 66.8), _INFMASKING),
    FINETUNED: ((1.34e-4, 68.18, 74.98, 65.96, 70.42), _COMM_README),
}
_MMIMDB = ("multilabel weighted_f1", "multilabel macro_f1")
# {(preset or data set name, number of modalities): {method: ({column: value}, source)}}
REFERENCES: dict[tuple[str, int], dict[str, Reference]] = {
    **{
        (preset, 2): {m: ({col: values[i]}, src) for m, (values, src) in _MULTIBENCH.items()}
        for i, (preset, col) in enumerate(_MULTIBENCH_COLUMNS)
    },
    ("vision-touch-contact", 3): {
        "cmc": ({"contact_next balanced_accuracy": 94.1}, _COMM_README),
        "comm": ({"contact_next balanced_accuracy": 94.2}, _COMM_README),
    },
    ("ur-funny", 3): {
        "cmc": ({"humor balanced_accuracy": 59.2}, _COMM_README),
        "comm": ({"humor balanced_accuracy": 64.6}, _COMM_README),
    },
    # MM-IMDb with frozen CLIP ViT-B/32 features of the raw posters and plots (weighted / macro F1)
    ("mm-imdb", 2): {
        "cross": (dict(zip(_MMIMDB, (58.9, 50.9), strict=True)), f"{_COMM_README}: CLIP V+L"),
        "cross_self": (dict(zip(_MMIMDB, (56.54, 47.35), strict=True)), f"{_COMM_README}: SLIP"),
        "comm": (dict(zip(_MMIMDB, (61.48, 54.63), strict=True)), f"{_COMM_README}: CoMM with CLIP"),
        "infmasking": (dict(zip(_MMIMDB, (62.60, 55.93), strict=True)), f"{_INFMASKING}: with CLIP"),
    },
}
#: Presets whose published numbers are another preset's (the same data set and task, another release).
_SAME_REFERENCES = {"mm-imdb-raw": "mm-imdb"}
#: What a reader must know beside a preset's published numbers.
NOTES = {
    "mm-imdb": "The published MM-IMDb numbers use frozen CLIP features of the raw posters and plots; this "
    "preset's VGG + word2vec features (multimodal_imdb.hdf5) are not comparable with them.",
    "mm-imdb-raw": "The published MM-IMDb numbers use frozen CLIP (ViT-B/32) encoders; they compare with this "
    "preset's only when its encoders are those, not with encoders trained from scratch.",
}
_METRIC_NAMES = {
    "balanced_accuracy": "bal. acc. %",
    "weighted_f1": "weighted F1 %",
    "macro_f1": "macro F1 %",
    "auroc": "AUROC %",
    "mse": "MSE",
}
_EXTRA_COLUMNS = ("macro_f1", "auroc")  # probe extras shown beside the headline metric


def benchmark_presets() -> list[str]:
    """The packaged presets of real data sets (every preset but the Trifeature ones)."""
    return [n for n in preset_names() if not n.startswith("trifeature-")]


def _check_preset(data: str) -> str:
    choices = benchmark_presets()
    if data not in choices:
        raise ValueError(f"unknown data set preset {data!r}; choose one of {choices}")
    return data


def references_for(preset: str, cfg: RunConfig, n_modalities: int) -> dict[str, Reference]:
    """The published numbers that apply to ``preset`` with ``n_modalities`` (by preset, then by data set)."""
    for name in (preset, _SAME_REFERENCES.get(preset, preset), cfg.data.name):
        if (name, n_modalities) in REFERENCES:
            return REFERENCES[(name, n_modalities)]
    return {}


# ----------------------------------------------------------------------------------------------- runs
def run_config(preset: str, method: str, output: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The config of one pre-training: the preset with ``overrides``, the method (or variant) with its
    ``experiment.method_options`` (an overridden ``method.options`` key wins), run folder ``output/<method>``."""
    cfg = load_config(_check_preset(preset), overrides)
    cfg.method.name, options = resolve_method(cfg, method)
    cfg.method.options = {**options, **cfg.method.options}
    cfg.trainer.output = str(output / method)
    return cfg


def finetune_config(preset: str, output: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The config of the fine-tuned row: the ``supervised`` method initialised from
    ``output/comm/checkpoints/last.ckpt``, trained with ``experiment.finetune`` (epochs, lr), run folder
    ``output/comm_finetuned``; every other setting is the pre-training's."""
    cfg = load_config(_check_preset(preset), overrides)
    recipe = cfg.experiment.finetune
    if recipe.max_epochs < 1 or not recipe.lr > 0:
        raise ConfigError(
            f"experiment.finetune needs max_epochs ≥ 1 and lr > 0, got {recipe.max_epochs} and {recipe.lr}"
        )
    cfg.method.name = "supervised"
    init = (output / "comm" / "checkpoints" / "last.ckpt").resolve()
    cfg.method.options = {"init_checkpoint": str(init)}
    cfg.method.lr = recipe.lr
    cfg.trainer.max_epochs = recipe.max_epochs
    cfg.trainer.output = str(output / FINETUNED)
    return cfg


def probe_run(result: FitResult, cfg: RunConfig) -> tuple[dict[str, float], int]:
    """Probe a finished run on its data's published split (:func:`report.probe_splits`).

    Returns:
        ``({"<task> <metric>": score}, width D of the probed features)``.
    """
    probe_train, test = report.probe_sets(result.data, cfg.trainer.seed)
    results, width = report.probe_splits(
        result.method, probe_train, test, result.data.val, cfg.trainer.seed, data_name=cfg.data.name
    )
    scores: dict[str, float] = {}
    for task, r in results.items():
        scores[f"{task} {r.metric}"] = _rounded(r.metric, r.score)
        scores.update({f"{task} {k}": _rounded(k, r.extra[k]) for k in _EXTRA_COLUMNS if k in r.extra})
    return scores, width


def finetuned_scores(method: Any, test: MultimodalDataset, batch_size: int = 256) -> dict[str, float]:
    """Test scores of a trained ``supervised`` method from its own predictions (not a probe).

    Multiclass: balanced accuracy (%) of its label column (and AUROC, %, of a binary one); multi-label:
    weighted and macro F1 (%) of the logits > 0; regression: MSE over rows and targets. Columns are named like
    :func:`probe_run`'s.
    """
    import numpy as np
    import torch
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    from commlearn.methods.supervised import select_targets

    device = next(method.parameters()).device
    method.eval()
    outs, targets = [], []
    with torch.no_grad():
        for start in range(0, len(test), batch_size):
            batch = test.get_batch(torch.arange(start, min(start + batch_size, len(test)))).to(device)
            outs.append(method.predict(batch).float().cpu())
            targets.append(select_targets(batch.labels, method.task_type, method.label_column, "fine-tune"))
    out, y = torch.cat(outs).numpy(), torch.cat([t.cpu() for t in targets]).numpy()
    names = list(test.task_names)
    if method.task_type == "multiclass":
        task = names[method.label_column]
        pred = out.argmax(1)
        scores = {f"{task} balanced_accuracy": round(100 * float(balanced_accuracy_score(y, pred)), 2)}
        if out.shape[1] == 2 and len(np.unique(y)) == 2:  # a binary task: AUROC of the logit difference
            scores[f"{task} auroc"] = round(100 * float(roc_auc_score(y, out[:, 1] - out[:, 0])), 2)
        return scores
    key = names[0] if len(names) == 1 else method.task_type  # as the probes name a multi-column task
    if method.task_type == "multilabel":
        pred = (out > 0).astype(np.int64)
        return {
            f"{key} {avg}_f1": round(100 * float(f1_score(y > 0.5, pred, average=avg, zero_division=0)), 2)
            for avg in ("weighted", "macro")
        }
    return {f"{key} mse": _rounded("mse", float(np.mean((out - y) ** 2)))}


def _rounded(metric: str, value: float) -> float:
    """A score as stored: MSE to 4 significant digits, percentages to 0.01."""
    return float(f"{value:.4g}") if metric == "mse" else round(float(value), 2)


def _format(key: str, value: float) -> str:
    return f"{value:.3g}" if key.endswith(" mse") else f"{value:.1f}"


def _format_published(key: str, value: float) -> str:
    return f"{value:.3g}" if key.endswith(" mse") else f"{value:g}"  # as published: 74.98, 67.5


def _header(key: str) -> str:
    task, _, metric = key.rpartition(" ")
    return f"{task} ({_METRIC_NAMES.get(metric, metric)})"


def format_table(
    results: Mapping[str, Mapping[str, float]],
    references: Mapping[str, Reference],
    widths: Mapping[str, int] | None = None,
) -> str:
    """Markdown table: our scores per method, the width of its probed features, the published scores and
    their source."""
    ours = list(dict.fromkeys(k for scores in results.values() for k in scores))
    published = list(dict.fromkeys(k for values, _ in references.values() for k in values))
    columns = [(k, _header(k)) for k in ours]
    ref_columns = [(k, f"published {_header(k)}") for k in published]
    return report.format_table(
        results, columns, references, ref_columns, LABELS, widths, _format, _format_published
    )


def run_experiment(
    data: str,
    methods: Sequence[str] | None = None,
    output: str | Path | None = None,
    overrides: Sequence[str] = (),
    finetune: bool = False,
) -> dict[str, dict[str, float]]:
    """Pre-train and probe each method on a real data set; write ``results.json``, ``run.json`` and
    ``table.md`` into ``output``.

    Args:
        data: a packaged real-data preset (``mosi``, ``mimic``, ``vision-touch``, ``mm-imdb``, ...).
        methods: method names or variants of the preset's ``experiment.variants`` (default: the preset's
            ``experiment.methods``).
        output: results folder (default ``runs/benchmark/<data>``); each method runs in ``output/<method>``.
        overrides: ``section.key=value`` overrides of every run (``data.root=...`` names the files).
        finetune: add the fine-tuned CoMM row (pre-training CoMM first when it is not among ``methods``).

    Returns:
        ``{method: {"<task> <metric>": score}}`` (``comm_finetuned`` for the fine-tuned row).
    """
    from commlearn.train import fit

    base = load_config(_check_preset(data), overrides)
    names = list(methods) if methods is not None else list(base.experiment.methods)
    for name in names:
        resolve_method(base, name)  # an unknown name stops here, before any training
    out = Path(output) if output is not None else Path("runs/benchmark") / data
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    settings = report.comparable_settings(base)
    results, meta = report.previous_results(out, settings)
    timings: dict[str, float] = dict(meta.get("seconds_per_method", {}))
    widths: dict[str, int] = dict(meta.get("feature_widths", {}))
    n_modalities = int(meta.get("n_modalities", 0))

    def record(name: str, scores: dict[str, float], t1: float) -> None:
        results[name] = scores
        timings[name] = round(time.perf_counter() - t1, 1)
        print(f"[benchmark] {data} {name}: {scores} ({timings[name]:.0f} s)")
        refs = references_for(data, base, n_modalities)
        new_meta = {
            "settings": settings,
            "seconds_per_method": timings,
            "feature_widths": widths,
            "n_modalities": n_modalities,
        }
        report.write_results(out, results, new_meta, _full_table(data, results, refs, widths))

    for name in names:
        t1 = time.perf_counter()
        cfg = run_config(data, name, out, overrides)
        result = fit(cfg)
        n_modalities = len(result.data.train.modality_specs)
        scores, widths[name] = probe_run(result, cfg)
        record(name, scores, t1)
    if finetune:
        t1 = time.perf_counter()
        if "comm" not in names:
            fit(run_config(data, "comm", out, overrides))  # the checkpoint it starts from (reused when done)
        cfg = finetune_config(data, out, overrides)
        result = fit(cfg)
        n_modalities = len(result.data.train.modality_specs)
        assert result.data.test is not None, "a published data set has a test split"
        widths[FINETUNED] = cfg.model.embed_dim  # its linear head reads the fused Z
        record(FINETUNED, finetuned_scores(result.method, result.data.test), t1)
    print(_full_table(data, results, references_for(data, base, n_modalities), widths))
    print(f"[benchmark] total {time.perf_counter() - t0:.0f} s; results in {out}")
    return results


def _full_table(
    data: str,
    results: Mapping[str, Mapping[str, float]],
    refs: Mapping[str, Reference],
    widths: Mapping[str, int],
) -> str:
    note = NOTES.get(data)
    return format_table(results, refs, widths) + (f"\n\n{note}" if note else "")


# ------------------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``commlearn experiment benchmark``."""
    p.add_argument("--data", required=True, help="a real data set preset, e.g. mosi, mimic, vision-touch")
    p.add_argument("--data-root", help="the data set's published files (data.root): nothing is downloaded")
    p.add_argument("--methods", help="comma-separated methods or variants (default: the preset's)")
    p.add_argument(
        "--finetune",
        action="store_true",
        help="add the fine-tuned CoMM row (recipe: the preset's experiment.finetune)",
    )
    p.add_argument("--epochs", type=int, help="pre-training epochs per method (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of the models and the probes (default: 0)")
    p.add_argument("--output", help="results folder (default: runs/benchmark/<data>)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: auto)")
    p.add_argument("--precision", help="32-true, bf16-mixed or 16-mixed (mixed precision: GPUs)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of every run")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The ``section.key=value`` overrides the experiment's options stand for."""
    out = [] if args.data_root is None else [f"data.root={args.data_root}"]
    return [*out, *training_overrides(args), *args.overrides]


def run_from_args(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Run the benchmark from parsed command-line arguments."""
    return run_experiment(
        args.data, method_list(args.methods), args.output, overrides_from_args(args), args.finetune
    )
