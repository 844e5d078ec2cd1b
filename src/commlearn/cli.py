"""The ``commlearn`` command line: ``fit``, ``probe``, ``embed``, ``experiment``.

Every subcommand is reachable from Python as ``main(["fit", "--config", ...])``; bad input ends with a one-line
``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commlearn", description="CoMM: contrastive multimodal learning")
    sub = p.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="pre-train a method from a YAML config")
    fit.add_argument("--config", type=Path, help="YAML file (sections data, model, method, trainer)")
    fit.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. method.lr=3e-4")

    probe = sub.add_parser("probe", help="linear-probe a trained checkpoint on its data set's labels")
    probe.add_argument("--checkpoint", type=Path, required=True)
    probe.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of samples held out for scoring"
    )
    probe.add_argument("--output", type=Path, help="write the scores here as JSON")
    probe.add_argument("overrides", nargs="*", help="data.* overrides (e.g. data.root=other.npz)")

    embed = sub.add_parser("embed", help="export embeddings of a data set to .npz")
    embed.add_argument("--checkpoint", type=Path, required=True)
    embed.add_argument("--output", type=Path, required=True, help="the .npz file to write (features, labels)")
    embed.add_argument(
        "--modalities", type=str, help="comma-separated modality indices to use (others missing)"
    )
    embed.add_argument("overrides", nargs="*", help="data.* overrides")

    exp = sub.add_parser("experiment", help="run a packaged experiment")
    exp_sub = exp.add_subparsers(dest="experiment", required=True)
    from commlearn.experiments.trifeature import add_arguments

    add_arguments(exp_sub.add_parser("trifeature", help="the bimodal Trifeature R/U/S experiment"))
    return p


def _data_from_checkpoint(checkpoint: Path, overrides: Sequence[str]):  # type: ignore[no-untyped-def]
    from commlearn.config import merge, parse_overrides
    from commlearn.data.registry import build_dataset
    from commlearn.train import load_method

    method, cfg = load_method(checkpoint)
    extra = parse_overrides(overrides)
    if set(extra) - {"data"}:
        raise ValueError(f"only data.* overrides apply here, got {sorted(set(extra) - {'data'})}")
    merge(cfg, extra)
    dataset = build_dataset(cfg.data.name, cfg.data.root, cfg.trainer.seed, cfg.data.options)
    return method, cfg, dataset


def _run_fit(args: argparse.Namespace) -> int:
    from commlearn.config import load_config
    from commlearn.train import fit

    cfg = load_config(args.config, args.overrides)
    result = fit(cfg)
    print(
        f"trained {cfg.method.name}; run folder: {result.output}; last checkpoint: {result.last_checkpoint}"
    )
    return 0


def _run_probe(args: argparse.Namespace) -> int:
    from commlearn.eval import probe_tasks

    method, cfg, dataset = _data_from_checkpoint(args.checkpoint, args.overrides)
    if not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    features, labels = method.extract_features(dataset)
    if labels is None:
        raise ValueError("the data set has no labels to probe; give data.options with labels")
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(cfg.trainer.seed))
    n_test = max(1, int(round(args.test_fraction * len(features))))
    test, train = order[:n_test], order[n_test:]
    lab = labels if labels.ndim == 2 else labels[:, None]
    results = probe_tasks(
        features[train], lab[train], features[test], lab[test], dataset.task_names, dataset.task_type
    )
    scores = {name: r.to_dict() for name, r in results.items()}
    for name, r in results.items():
        print(f"{name:>10}: {r.metric} = {r.score:.2f}")
    if args.output:
        args.output.write_text(json.dumps(scores, indent=2))
    return 0


def _run_embed(args: argparse.Namespace) -> int:
    method, _cfg, dataset = _data_from_checkpoint(args.checkpoint, args.overrides)
    if args.modalities:
        from commlearn.data.base import MultimodalBatch

        try:
            keep = [int(m) for m in args.modalities.split(",")]
        except ValueError:
            raise ValueError(
                f"--modalities must be comma-separated indices, got {args.modalities!r}"
            ) from None
        model = getattr(method, "model", None)
        if model is None:
            raise ValueError(f"--modalities needs a fused model (comm); {type(method).__name__} has none")
        feats = []
        with torch.no_grad():
            for start in range(0, len(dataset), 256):
                b: MultimodalBatch = dataset.get_batch(torch.arange(start, min(start + 256, len(dataset))))
                feats.append(model(b.inputs, b.padding, modalities=keep))
        features = torch.cat(feats)
        _, labels = None, None
    else:
        features, labels = method.extract_features(dataset)
    arrays = {"features": features.numpy()}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **arrays)  # type: ignore[arg-type]
    print(f"wrote {tuple(features.shape)} features to {args.output}")
    return 0


def _run_experiment(args: argparse.Namespace) -> int:
    from commlearn.experiments.trifeature import run_from_args

    run_from_args(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {"fit": _run_fit, "probe": _run_probe, "embed": _run_embed, "experiment": _run_experiment}
    try:
        return handlers[args.command](args)
    except ValueError as e:  # includes ConfigError: one line, no traceback
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
