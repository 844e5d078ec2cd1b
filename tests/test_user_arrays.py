"""A user's own arrays (``data.name=arrays``): a split entry or separate val/test files, standardised vector
modalities, and one-line errors for class labels that are not class ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.cli import main
from commlearn.config import ConfigError, DataConfig
from commlearn.data import load_user_arrays
from commlearn.data.registry import build_data

TINY = [
    "data.name=arrays",
    "data.batch_size=16",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.vector_dim=16",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "trainer.max_steps=2",
    "trainer.progress_bar=false",
]


def _arrays(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, size=n)
    return {
        "a": (g.normal(size=(n, 4)) * 5 + 3 + y[:, None]).astype(np.float32),
        "seq": g.normal(size=(n, 6, 2)).astype(np.float32) * 4,
        "labels": y,
    }


@pytest.mark.parametrize("values", [("train", "val", "test"), (0, 1, 2)])
def test_split_entry_and_training_statistics(tmp_path: Path, values: tuple[object, ...]) -> None:
    arrays = _arrays()
    n = len(arrays["labels"])
    code = np.arange(n) % 5  # 0, 1, 2 → train; 3 → val; 4 → test
    split = np.array([values[0], values[0], values[0], values[1], values[2]])[code]
    np.savez(tmp_path / "d.npz", **arrays, split=split)
    data = build_data(DataConfig(name="arrays", root=str(tmp_path / "d.npz"), options={"split": "split"}), 0)
    assert data.val is not None and data.test is not None
    assert (len(data.train), len(data.val), len(data.test)) == (36, 12, 12)
    assert [s.name for s in data.train.modality_specs] == ["a", "seq"]  # the split entry is not a modality
    train = arrays["a"][code < 3].astype(np.float64)
    mean, std = train.mean(0), train.std(0)
    got = data.test.get_batch(torch.arange(12))
    np.testing.assert_allclose(
        got.inputs[0].numpy(), (arrays["a"][code == 4] - mean) / std, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(got.inputs[1].numpy(), arrays["seq"][code == 4])  # sequences unchanged
    assert got.labels is not None and np.array_equal(got.labels.numpy(), arrays["labels"][code == 4])
    train_a = data.train.get_batch(torch.arange(36)).inputs[0]
    assert torch.allclose(train_a.mean(0), torch.zeros(4), atol=1e-5)
    again = build_data(DataConfig(name="arrays", root=str(tmp_path / "d.npz"), options={"split": "split"}), 0)
    assert torch.equal(again.test.get_batch(torch.arange(12)).inputs[0], got.inputs[0])  # type: ignore[union-attr]
    raw = load_user_arrays(tmp_path / "d.npz", split="split", standardize=False)
    assert np.array_equal(raw.train.get_batch(torch.arange(36)).inputs[0].numpy(), arrays["a"][code < 3])


def test_separate_test_file_fit_and_probe(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", **_arrays(64, seed=0))
    np.savez(tmp_path / "test.npz", **_arrays(30, seed=1))
    run = tmp_path / "run"
    common = [*TINY, f"data.root={tmp_path / 'train.npz'}", f"trainer.output={run}"]
    assert main(["fit", *common, f"data.options={{test: {tmp_path / 'test.npz'}}}"]) == 0
    data = build_data(
        DataConfig(
            name="arrays", root=str(tmp_path / "train.npz"), options={"test": str(tmp_path / "test.npz")}
        ),
        0,
    )
    assert data.test is not None and len(data.test) == 30 and data.val is None
    scores = tmp_path / "scores.json"
    assert (
        main(["probe", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--output", str(scores)]) == 0
    )
    assert json.loads(scores.read_text())["labels"]["metric"] == "balanced_accuracy"


@pytest.mark.parametrize(
    "change,options,message",
    [
        (lambda a: a.update(labels=a["labels"] + 0.5), "{}", "holds non-integer values (e.g. "),
        (lambda a: a.update(labels=a["labels"] - 1), "{}", "holds negative class ids (e.g. -1)"),
        (
            lambda a: a.update(split=np.array(["train", "dev"] * 30)),
            "{split: split}",
            "holds ['dev']; allowed",
        ),
        (lambda a: a.update(split=np.array(["test"] * 60)), "{split: split}", "no training rows"),
        (lambda a: None, "{split: split}", "entry 'split' not found"),
        (lambda a: None, "{split: labels, test: x.npz}", "give data.options.split"),
        (lambda a: None, "{test: missing.npz}", "data path not found: missing.npz"),
    ],
)
def test_bad_user_arrays_stop_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: object, options: str, message: str
) -> None:
    arrays = _arrays()
    change(arrays)  # type: ignore[operator]
    np.savez(tmp_path / "d.npz", **arrays)
    args = ["fit", *TINY, f"data.root={tmp_path / 'd.npz'}", f"data.options={options}"]
    assert main([*args, f"trainer.output={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err


def test_other_test_file_layout_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", **_arrays())
    other = _arrays()
    other["a"] = other["a"][:, :3]
    np.savez(tmp_path / "test.npz", **other)
    with pytest.raises(ValueError, match="holds modalities \\[a vector \\(3,\\), seq sequence"):
        load_user_arrays(tmp_path / "train.npz", test=str(tmp_path / "test.npz"))
    with pytest.raises(ConfigError, match="task_type must be one of multiclass, multilabel, regression"):
        build_data(
            DataConfig(name="arrays", root=str(tmp_path / "train.npz"), options={"task_type": "binary"}), 0
        )
