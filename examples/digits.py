"""Your own data, end to end: scikit-learn's handwritten digits as two modalities.

Each 8×8 digit image is cut into its left and right 8×4 halves, flattened to two vector modalities of 32
pixels, and saved in the format ``data.name=arrays`` reads: one ``.npz`` with an entry per modality, a
``labels`` entry and a ``split`` entry (train / val / test, a seeded stratified 60 / 20 / 20 split of the 1 797
images). CoMM and Cross are pre-trained on the two halves without labels (the library's defaults, apart from
the epochs), then linear probes (DESIGN §6: L2 cost chosen on the val rows, refitted on train + val) score the
test rows on

- CoMM's fused embedding Z,
- Cross's two unimodal embeddings, concatenated,
- the raw 64 pixels (no training: the baseline any representation should reach).

The task is redundant (either half nearly identifies the digit), where the CoMM paper finds CoMM on par with
Cross. Run (a couple of minutes on one CPU core)::

    python examples/digits.py [--output runs/digits] [--epochs 30] [--seed 0]

The same runs from the command line, once ``runs/digits/digits.npz`` is written::

    commlearn fit data.name=arrays data.root=runs/digits/digits.npz "data.options.modalities=[left, right]" \\
        data.options.split=split method.name=comm trainer.max_epochs=30 trainer.output=runs/digits/comm
    commlearn probe --checkpoint runs/digits/comm/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

METHODS = ("comm", "cross")


def write_digits(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the two-halves digits to ``path`` (.npz) and return its entries.

    Entries: ``left``, ``right`` float32 (N, 32) pixel intensities 0…16 (columns 0–3 and 4–7 of each row),
    ``labels`` int64 (N,) digit 0–9, ``split`` (N,) ``train`` / ``val`` / ``test`` (stratified 60 / 20 / 20).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)  # (N, 8, 8)
    labels = digits.target.astype(np.int64)
    rows = np.arange(len(labels))
    train, rest = train_test_split(rows, test_size=0.4, stratify=labels, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=seed)
    split = np.empty(len(labels), dtype="<U5")
    split[train], split[val], split[test] = "train", "val", "test"
    entries = {
        "left": images[:, :, :4].reshape(len(labels), 32),
        "right": images[:, :, 4:].reshape(len(labels), 32),
        "labels": labels,
        "split": split,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **entries)
    return entries


def raw_pixel_probe(entries: dict[str, np.ndarray], seed: int = 0) -> float:
    """Balanced accuracy (%) on the test rows of a linear probe on the raw 64 pixels (same protocol)."""
    import torch

    from commlearn.eval import probe_tasks

    x = torch.from_numpy(np.concatenate([entries["left"], entries["right"]], axis=1))
    y = torch.from_numpy(entries["labels"])[:, None]
    split = entries["split"]
    fit_rows = np.concatenate([np.flatnonzero(split == "train"), np.flatnonzero(split == "val")])
    test_rows = np.flatnonzero(split == "test")
    n_val = int((split == "val").sum())
    result = probe_tasks(
        x[fit_rows], y[fit_rows], x[test_rows], y[test_rows], ["digit"], seed=seed, val_rows=n_val
    )
    return float(result["digit"].score)


def run(
    output: Path, epochs: int, seed: int, overrides: Sequence[str] = (), methods: Sequence[str] = METHODS
) -> dict[str, dict[str, float]]:
    """Write the data, pre-train and probe each method, probe the raw pixels; print and return
    ``{name: {"balanced_accuracy": %, "width": probed feature width, "seconds": …}}``."""
    import torch

    from commlearn.config import load_config
    from commlearn.experiments.report import probe_sets, probe_splits
    from commlearn.train import fit

    torch.set_num_threads(1)
    data = output / "digits.npz"
    entries = write_digits(data, seed)
    results: dict[str, dict[str, float]] = {}
    for method in methods:
        t0 = time.perf_counter()
        cfg = load_config(
            None,
            [
                "data.name=arrays",
                f"data.root={data}",
                "data.options.modalities=[left, right]",
                "data.options.split=split",
                f"method.name={method}",
                f"trainer.max_epochs={epochs}",
                f"trainer.seed={seed}",
                f"trainer.output={output / method}",
                "trainer.accelerator=cpu",
                "trainer.progress_bar=false",
                *overrides,
            ],
        )
        result = fit(cfg)
        probe_train, test = probe_sets(result.data, seed)
        scores, width = probe_splits(result.method, probe_train, test, result.data.val, seed)
        results[method] = {
            "balanced_accuracy": round(scores["labels"].score, 1),
            "width": width,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    t0 = time.perf_counter()
    results["raw pixels"] = {
        "balanced_accuracy": round(raw_pixel_probe(entries, seed), 1),
        "width": 64,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print("| features | probed width | test balanced accuracy % |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['width']:.0f} | {r['balanced_accuracy']:.1f} |")
    (output / "results.json").write_text(json.dumps(results, indent=2))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=Path("runs/digits"), help="data, run folders and results")
    p.add_argument("--epochs", type=int, default=30, help="pre-training epochs of each method")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the models and the probes")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods to pre-train")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of both pre-trainings")
    args = p.parse_args(argv)
    run(args.output, args.epochs, args.seed, args.overrides, args.methods.split(","))


if __name__ == "__main__":
    main()
