"""Every baseline end to end through the real CLI: a few steps on synthetic data, the loss goes down, the
checkpoint reloads with the right probe features; fine-tuning from a CoMM checkpoint; one-line errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.cli import main
from commlearn.data.synthetic import make_synthetic
from commlearn.eval import extract_features
from commlearn.train import load_method


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def _fit(run: Path, method: str, *extra: str, kinds: str = "[vector,vector]") -> int:
    return main(
        [
            "fit",
            f"method.name={method}",
            f"data.options.kinds={kinds}",
            "data.options.n_samples=128",
            "data.batch_size=32",
            "model.embed_dim=32",
            "model.n_heads=2",
            "model.head_hidden=[64]",
            "model.head_out=32",
            "model.vector_dim=32",
            "model.sequence_dim=16",
            "trainer.max_epochs=8",
            "trainer.log_every_n_steps=1",
            "trainer.progress_bar=false",
            f"trainer.output={run}",
            *extra,
        ]
    )


def _assert_decreases(run: Path, margin: float = 0.1) -> None:
    losses = _losses(run)
    assert len(losses) == 32
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - margin, losses


_CRITIC = "method.options={critic_hidden: 32}"

# method, extra overrides, probe feature width (vector_dim 32, head_out 32, embed_dim 32, 2 modalities)
_METHODS = [
    ("simclr", ["method.options={modality: 1}"], 32),
    ("supcon", [], 64),
    ("cmc", [], 64),
    ("supervised", [], 32),
    ("factorcl", [_CRITIC], 4 * 32),
    ("factorcl_sup", [_CRITIC], 4 * 32),
]


@pytest.mark.parametrize("method,extra,width", _METHODS, ids=[m[0] for m in _METHODS])
def test_fit_baseline_loss_decreases_and_reloads(
    tmp_path: Path, method: str, extra: list[str], width: int
) -> None:
    run = tmp_path / method
    assert _fit(run, method, *extra) == 0
    _assert_decreases(run)
    reloaded, cfg = load_method(run / "checkpoints" / "last.ckpt")
    assert cfg.method.name == method
    features, labels = extract_features(reloaded, make_synthetic(10, ("vector", "vector")))
    assert features.shape == (10, width) and labels is not None


@pytest.mark.parametrize("method,extra", [("comm", []), ("cmc", []), ("cross", []), ("factorcl", [_CRITIC])])
def test_three_modalities(tmp_path: Path, method: str, extra: list[str]) -> None:
    run = tmp_path / method
    assert _fit(run, method, *extra, kinds="[vector,sequence,vector]") == 0
    _assert_decreases(run)
    header = next(csv.reader(open(run / "metrics.csv")))
    pair_terms = {"cmc": "train/nce_m2_m0", "cross": "train/nce_m1_m2", "factorcl": "train/nce_shared_m1_m2"}
    if method in pair_terms:  # every modality pair is contrasted
        assert pair_terms[method] in header


def _write_arrays(path: Path, labels: np.ndarray | None) -> None:
    g = np.random.default_rng(0)
    n = 128
    base = g.normal(size=(n, 4)).astype(np.float32)
    arrays = {
        "a": base @ g.normal(size=(4, 8)).astype(np.float32),
        "b": base @ g.normal(size=(4, 8)).astype(np.float32),
    }
    if labels is not None:
        arrays["labels"] = labels
    np.savez(path, **arrays)  # type: ignore[arg-type]


def _label_of(kind: str) -> np.ndarray:
    g = np.random.default_rng(1)
    if kind == "multilabel":
        return (g.random((128, 3)) < 0.4).astype(np.float32)
    return g.normal(size=(128, 2)).astype(np.float32)


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_supervised_multilabel_and_regression(tmp_path: Path, task: str) -> None:
    # labels unrelated to the inputs: the model can still fit (memorise) them, so the training loss drops
    data = tmp_path / "data.npz"
    _write_arrays(data, _label_of(task))
    run = tmp_path / "run"
    extra = ["data.name=arrays", f"data.root={data}", "data.options={}", f"data.options.task_type={task}"]
    assert _fit(run, "supervised", *extra, "method.lr=3e-3", "method.augment=false") == 0
    _assert_decreases(run, margin=0.02)
    header = next(csv.reader(open(run / "metrics.csv")))
    assert ("train/bce" if task == "multilabel" else "train/mse") in header


def _model_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("model.")}


def test_finetune_from_comm_checkpoint(tmp_path: Path) -> None:
    comm = tmp_path / "comm"
    assert _fit(comm, "comm", "trainer.max_epochs=2") == 0
    comm_ckpt = tmp_path / "pretrained.ckpt"
    (comm / "checkpoints" / "last.ckpt").rename(comm_ckpt)
    init = f"method.options={{init_checkpoint: {comm_ckpt}}}"
    # an (almost) zero learning rate: the fine-tuned encoder must still hold the CoMM weights
    frozen = tmp_path / "frozen"
    assert _fit(frozen, "supervised", init, "trainer.max_epochs=1", "method.lr=1e-12") == 0
    want, got = _model_weights(comm_ckpt), _model_weights(frozen / "checkpoints" / "last.ckpt")
    assert set(want) == set(got) and all(
        torch.allclose(got[k].float(), want[k].float(), atol=1e-6) for k in want
    )
    scratch = tmp_path / "scratch"
    assert _fit(scratch, "supervised", "trainer.max_epochs=1", "method.lr=1e-12") == 0
    other = _model_weights(scratch / "checkpoints" / "last.ckpt")
    assert not all(
        torch.allclose(other[k].float(), want[k].float()) for k in want if want[k].is_floating_point()
    )
    # real fine-tuning learns; resuming it and reloading it no longer need the pre-trained file
    tuned = tmp_path / "tuned"
    assert _fit(tuned, "supervised", init, "trainer.max_epochs=4") == 0
    comm_ckpt.unlink()
    assert _fit(tuned, "supervised", init, "trainer.max_epochs=8") == 0
    _assert_decreases(tuned, margin=0.2)
    method, _ = load_method(tuned / "checkpoints" / "last.ckpt")
    assert extract_features(method, make_synthetic(4, ("vector", "vector")))[0].shape == (4, 32)


@pytest.mark.parametrize(
    "method,extra,labels,match",
    [
        ("supcon", [], "none", "supcon needs labels but the data set has none"),
        ("supervised", [], "none", "supervised needs labels"),
        ("factorcl_sup", [], "none", "factorcl_sup needs labels"),
        ("supcon", ["data.options.task_type=regression"], "regression", "supcon needs multiclass labels"),
        ("factorcl", ["data.options={modalities: [a]}"], "none", "factorcl needs at least 2 modalities"),
        ("simclr", ["method.options={modality: 5}"], "none", "modality must be in 0..1"),
        (
            "supervised",
            ["method.options={init_checkpoint: missing.ckpt}", "data.options.task_type=regression"],
            "regression",
            "init_checkpoint not found",
        ),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str, extra: list[str], labels: str, match: str
) -> None:
    data = tmp_path / "data.npz"
    _write_arrays(data, None if labels == "none" else _label_of(labels))
    args = ["data.name=arrays", f"data.root={data}", "data.options={}", "trainer.max_steps=2", *extra]
    assert _fit(tmp_path / "run", method, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(match, err), err
