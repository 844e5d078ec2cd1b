"""The ``commlearn`` command line: ``fit``, ``probe``, ``embed``, ``experiment``, ``shards``.

Every subcommand is reachable from Python as ``main(["fit", "--config", ...])``. An expected failure ends with
a one-line ``error: ...`` on stderr and a non-zero exit status, without a traceback: bad input (a config, an
argument, a data file: status 2), a run stopped by a NaN loss (2) or by SIGTERM / SIGINT (128 + the signal
number, with a checkpoint to resume from), a file that cannot be written (1). ``commlearn --debug ...`` shows
the traceback of those too; anything else (a bug) always shows it. The training stack is imported only once
the arguments and the config are read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _modalities(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(m) for m in text.split(",")]
    except ValueError:
        raise ValueError(f"--modalities must be comma-separated indices, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    from commlearn.experiments import benchmark, trifeature

    p = argparse.ArgumentParser(prog="commlearn", description="CoMM: contrastive multimodal learning")
    p.add_argument("--debug", action="store_true", help="show the traceback of every error, not one line")
    sub = p.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="pre-train a method from a preset or YAML config")
    fit.add_argument(
        "--config", help="a packaged preset (e.g. trifeature-cpu) or a YAML file (sections data, model, ...)"
    )
    fit.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. method.lr=3e-4")

    probe = sub.add_parser("probe", help="linear-probe a trained checkpoint on its data set's labels")
    probe.add_argument("--checkpoint", type=Path, required=True)
    probe.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of samples held out for scoring when the data set has no test split",
    )
    probe.add_argument("--modalities", help="comma-separated modality indices to embed (others missing)")
    probe.add_argument(
        "--interactions",
        action="store_true",
        help="probe every subset of the modalities and estimate R, U and S in bits (JSON + plot)",
    )
    probe.add_argument("--clusters", type=int, default=20, help="k-means clusters per embedding for R/U/S")
    probe.add_argument("--output", type=Path, help="write the scores (or the report) here as JSON")
    probe.add_argument("overrides", nargs="*", help="data.* overrides (e.g. data.root=other.npz)")

    embed = sub.add_parser("embed", help="export embeddings of a data set to .npz")
    embed.add_argument("--checkpoint", type=Path, required=True)
    embed.add_argument(
        "--output", type=Path, required=True, help="the .npz file to write (features, ids and labels)"
    )
    embed.add_argument("--modalities", help="comma-separated modality indices to use (others missing)")
    embed.add_argument("overrides", nargs="*", help="data.* overrides")

    shards = sub.add_parser(
        "shards", help="write a config's data as WebDataset tar shards, streamed by data.name=shards"
    )
    shards.add_argument("--config", help="a packaged preset or a YAML file: its data section is written")
    shards.add_argument("--output", type=Path, required=True, help="a new folder for the shards")
    shards.add_argument("--samples-per-shard", type=int, default=1000, help="samples per tar file")
    shards.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. data.root=...")

    exp = sub.add_parser("experiment", help="run a packaged experiment")
    exp_sub = exp.add_subparsers(dest="experiment", required=True)
    trifeature.add_arguments(exp_sub.add_parser("trifeature", help="the bimodal Trifeature R/U/S experiment"))
    benchmark.add_arguments(
        exp_sub.add_parser(
            "benchmark", help="methods on a real data set's published split, beside the published numbers"
        )
    )
    return p


def _run_fit(args: argparse.Namespace) -> int:
    from commlearn.config import load_config

    cfg = load_config(args.config, args.overrides)  # config errors answer before the training stack loads
    from commlearn.train import fit

    result = fit(cfg, catch_signals=True)  # SIGTERM / SIGINT: a checkpoint, then one line (see main)
    if not result.is_global_zero:  # one of several processes: rank 0 speaks for the run
        return 0
    if result.finished_before:
        print(
            f"run {result.output} already finished ({cfg.trainer.max_epochs} epochs); raise trainer.max_epochs "
            "to train longer, or choose a new trainer.output"
        )
        return 0
    print(
        f"trained {cfg.method.name}; run folder: {result.output}; last checkpoint: {result.last_checkpoint}"
    )
    return 0


def _run_probe(args: argparse.Namespace) -> int:
    from commlearn.experiments.report import probe_sets, probe_splits
    from commlearn.train import load_run

    method, cfg, data = load_run(args.checkpoint, args.overrides)
    modalities = _modalities(args.modalities)
    probe_train, test_set = probe_sets(data, cfg.trainer.seed, args.test_fraction)
    if args.interactions:
        return _interactions(method, probe_train, test_set, cfg.trainer.seed, args)
    # a published validation split chooses the probes' L2 strength
    results, _width = probe_splits(
        method, probe_train, test_set, data.val, cfg.trainer.seed, modalities, cfg.data.name
    )
    for name, r in results.items():
        print(f"{name:>10}: {r.metric} = {r.score:.2f}")
    if args.output:
        args.output.write_text(json.dumps({name: r.to_dict() for name, r in results.items()}, indent=2))
    return 0


def _interactions(method: Any, probe_train: Any, test_set: Any, seed: int, args: argparse.Namespace) -> int:
    from commlearn.eval.interactions import interaction_report, write_report

    if args.modalities is not None:
        raise ValueError("--interactions probes every subset of the modalities: leave out --modalities")
    if args.clusters < 2:
        raise ValueError(f"--clusters must be ≥ 2, got {args.clusters}")
    report = interaction_report(method, probe_train, test_set, seed, args.clusters)
    for task, entry in report["tasks"].items():
        probes = ", ".join(f"{k} {v:.1f}" for k, v in entry["probes"].items())
        gain = "" if entry["joint_gain"] is None else f"; joint gain {entry['joint_gain']:+.1f}"
        print(f"{task}: {report['metric'][task]}: {probes}{gain}")
        pid = entry["pid"]
        if pid is not None and "redundancy" in pid:
            print(
                f"{'':>{len(task)}}  PID (bits): R {pid['redundancy']:.3f}, U1 {pid['unique1']:.3f}, "
                f"U2 {pid['unique2']:.3f}, S {pid['synergy']:.3f} of I {pid['total']:.3f}"
            )
    if args.output:
        write_report(report, args.output)
        print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


def _run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from commlearn.data.base import sample_ids
    from commlearn.eval import extract_features
    from commlearn.train import load_run

    method, _cfg, data = load_run(args.checkpoint, args.overrides)
    features, labels = extract_features(method, data.train, modalities=_modalities(args.modalities))
    arrays: dict[str, Any] = {"features": features.numpy(), "ids": sample_ids(data.train)}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **arrays)
    print(f"wrote {tuple(features.shape)} features and {', '.join(list(arrays)[1:])} to {args.output}")
    return 0


def _run_shards(args: argparse.Namespace) -> int:
    import yaml

    from commlearn.config import config_to_dict, load_config

    cfg = load_config(args.config, args.overrides)
    from commlearn.data.registry import build_data
    from commlearn.data.shards import write_shards

    index = write_shards(build_data(cfg.data, cfg.trainer.seed), args.output, args.samples_per_shard)
    for split, entry in index["splits"].items():
        n = sum(s["samples"] for s in entry["shards"])
        print(f"{split}: {n} samples in {len(entry['shards'])} shards")
    # the same run on the shards: the config with its data section replaced (a fit of it rebuilds this data)
    resolved = config_to_dict(cfg)
    resolved["data"] = {
        **resolved["data"],
        "name": "shards",
        "root": str(args.output.resolve()),
        "options": {},
    }
    if cfg.data.val_fraction > 0 and "val" not in index["splits"]:
        resolved["data"]["val_fraction"] = 0.0
        print(
            "fit.yaml sets data.val_fraction=0: a stream cannot hold out random samples for a validation loss"
        )
    (args.output / "fit.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    print(f"wrote {args.output}; train on it with: commlearn fit --config {args.output / 'fit.yaml'}")
    return 0


def _run_experiment(args: argparse.Namespace) -> int:
    from commlearn.experiments import benchmark, trifeature

    experiments = {"trifeature": trifeature.run_from_args, "benchmark": benchmark.run_from_args}
    experiments[args.experiment](args)
    return 0


def _exit_status(error: BaseException) -> int | None:
    """The exit status of an expected error (one line, no traceback), or None for a bug."""
    if isinstance(error, ValueError):  # ConfigError included: a config, an argument or data is wrong
        return 2
    train = sys.modules.get("commlearn.train")  # TrainingStopped exists only once training was loaded
    if train is not None and isinstance(error, train.TrainingStopped):
        return int(error.exit_code)
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, OSError):  # a file or folder that cannot be read or written
        return 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {
        "fit": _run_fit,
        "probe": _run_probe,
        "embed": _run_embed,
        "experiment": _run_experiment,
        "shards": _run_shards,
    }
    if args.command in ("fit", "experiment"):
        from commlearn.speed import keep_freed_memory

        keep_freed_memory()  # this process is ours: training runs faster on glibc (see commlearn.speed)
    try:
        return handlers[args.command](args)
    except (Exception, KeyboardInterrupt) as e:
        status = _exit_status(e)
        if status is None or args.debug:
            raise
        text = "interrupted by SIGINT" if isinstance(e, KeyboardInterrupt) else str(e).strip()
        print(f"error: {text.splitlines()[0] if text else type(e).__name__}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
