"""``commlearn experiment benchmark`` end to end on small files in the published formats: our scores beside the
published ones with their source and the probed widths, reuse of finished runs, the fine-tuned row that starts
from the CoMM checkpoint, and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from real_data_files import MMIMDB_SIZES, write_affect, write_mmimdb

from commlearn.cli import main
from commlearn.config import load_config
from commlearn.experiments import benchmark
from commlearn.methods.supervised import Supervised
from commlearn.train import read_checkpoint

TINY = [
    "trainer.max_steps=2",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "model.sequence_dim=16",
    "model.vector_dim=16",
]


def _run(data: str, root: Path, out: Path, *args: str) -> int:
    argv = ["experiment", "benchmark", "--data", data, "--data-root", str(root), "--output", str(out)]
    return main([*argv, *args, *TINY])


def test_mosi_benchmark_table_reuse_and_finetune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_affect(tmp_path / "data", "mosi")
    out = tmp_path / "out"
    assert _run("mosi", tmp_path / "data", out, "--methods", "comm,cross") == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["comm", "cross"]
    for scores in results.values():
        assert set(scores) == {"positive balanced_accuracy", "positive auroc"}
        assert all(0.0 <= v <= 100.0 for v in scores.values())
    table = (out / "table.md").read_text()
    assert table in printed
    assert table.startswith(
        "| method | positive (bal. acc. %) | positive (AUROC %) | probed width | published positive (bal. acc. %) "
        "| source |"
    )
    source = "public CoMM code's README (Dufumier et al., ICLR 2025)"
    ours, auroc = results["comm"]["positive balanced_accuracy"], results["comm"]["positive auroc"]
    # CoMM probes its fused Z (embed_dim 16); Cross the mean-pooled features of both encoders, concatenated
    assert f"| CoMM | {ours:.1f} | {auroc:.1f} | 16 | 67.5 | {source} |" in table
    cross = results["cross"]
    assert (
        f"| Cross | {cross['positive balanced_accuracy']:.1f} | {cross['positive auroc']:.1f} | 32 | 47.8 |"
        in table
    )
    assert json.loads((out / "run.json").read_text())["feature_widths"] == {"comm": 16, "cross": 32}
    # the experiment's probe is `commlearn probe` of the run's checkpoint (cost chosen on the published val)
    ckpt = out / "comm" / "checkpoints" / "last.ckpt"
    assert main(["probe", "--checkpoint", str(ckpt), "--output", str(tmp_path / "p.json")]) == 0
    assert round(json.loads((tmp_path / "p.json").read_text())["positive"]["score"], 2) == ours

    # a second run reuses the finished pre-trainings; --finetune adds the row that starts from CoMM's weights
    stamp = ckpt.stat().st_mtime_ns
    started: dict[str, torch.Tensor] = {}
    original = Supervised.on_fit_start

    def record_start(self: Supervised) -> None:
        original(self)
        started.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(Supervised, "on_fit_start", record_start)
    assert _run("mosi", tmp_path / "data", out, "--methods", "comm", "--finetune") == 0
    assert ckpt.stat().st_mtime_ns == stamp
    results2 = json.loads((out / "results.json").read_text())
    assert list(results2) == ["comm", "cross", "comm_finetuned"]
    assert results2["comm"] == results["comm"] and results2["cross"] == results["cross"]
    comm_weights = read_checkpoint(ckpt)["state_dict"]
    encoder = {k.removeprefix("model."): v for k, v in comm_weights.items() if k.startswith("model.")}
    assert started and started.keys() == encoder.keys()
    assert all(torch.equal(started[k], encoder[k]) for k in encoder)
    stored = read_checkpoint(out / "comm_finetuned" / "checkpoints" / "last.ckpt")["commlearn"]["config"]
    assert stored["method"]["name"] == "supervised"
    assert stored["method"]["options"] == {"init_checkpoint": str(ckpt.resolve())}
    assert stored["method"]["lr"] == load_config("mosi").experiment.finetune.lr
    table = (out / "table.md").read_text()
    finetuned = results2["comm_finetuned"]["positive balanced_accuracy"]
    assert set(results2["comm_finetuned"]) == {"positive balanced_accuracy", "positive auroc"}
    auroc = results2["comm_finetuned"]["positive auroc"]
    assert f"| CoMM fine-tuned | {finetuned:.1f} | {auroc:.1f} | 16 | 74.98 | {source} |" in table


def test_finetune_alone_pretrains_comm_and_multilabel_columns(tmp_path: Path) -> None:
    """MM-IMDb (hdf5 features): weighted and macro F1 columns, the CLIP numbers with the note that they are
    not comparable; ``--finetune`` without CoMM among the methods pre-trains CoMM first."""
    write_mmimdb(tmp_path / "imdb")
    out = tmp_path / "out"
    sizes = f"data.options.split_sizes=[{', '.join(map(str, MMIMDB_SIZES))}]"
    results = benchmark.run_experiment(
        "mm-imdb", ["cross"], out, ["data.root=" + str(tmp_path / "imdb"), sizes, *TINY], finetune=True
    )
    assert (out / "comm" / "checkpoints" / "last.ckpt").is_file()
    keys = {"multilabel weighted_f1", "multilabel macro_f1"}
    assert set(results) == {"cross", "comm_finetuned"}
    assert all(set(scores) == keys for scores in results.values())
    table = (out / "table.md").read_text()
    assert "published multilabel (weighted F1 %) | published multilabel (macro F1 %)" in table
    assert "| 58.9 | 50.9 | public CoMM code's README (Dufumier et al., ICLR 2025): CLIP V+L |" in table
    assert "not comparable" in table


def test_every_reference_has_a_source_and_each_preset_a_column() -> None:
    for (_preset, n), refs in benchmark.REFERENCES.items():
        assert n >= 2 and refs
        for values, source in refs.values():
            assert values and source and source != "–"
    for preset in ("mosi", "ur-funny", "mustard", "mimic", "vision-touch"):
        refs = benchmark.references_for(preset, load_config(preset), 2)
        assert {"cross", "cross_self", "factorcl", "comm", "infmasking", "comm_finetuned"} <= set(refs)
    vt = benchmark.references_for("vision-touch", load_config("vision-touch"), 2)
    assert vt["comm"] == ({"ee_yaw_next mse": 4.55e-4}, benchmark._COMM_README)
    three = benchmark.references_for("vision-touch-contact", load_config("vision-touch-contact"), 3)
    assert three["cmc"][0] == {"contact_next balanced_accuracy": 94.1}
    table = benchmark.format_table({"comm": {"ee_yaw_next mse": 5.123e-4}}, vt, {"comm": 128})
    assert "| CoMM | 0.000512 | 128 | 0.000455 |" in table
    assert set(benchmark.benchmark_presets()) >= {"mosi", "mosei", "mimic", "mm-imdb", "vision-touch"}


@pytest.mark.parametrize(
    "args,match",
    [
        (["--data", "trifeature-cpu"], "unknown data set preset 'trifeature-cpu'"),
        (["--data", "mosi", "--methods", "comm,nope"], "unknown method 'nope'"),
        (["--data", "mosi", "--epochs", "0"], "--epochs must be ≥ 1"),
        (["--data", "mosi"], "data.root"),  # no --data-root: the loader's one line
        (["--data", "mosi", "--data-root", "{tmp}/missing.pkl"], "missing.pkl"),
    ],
)
def test_benchmark_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    argv: list[Any] = ["experiment", "benchmark", "--output", str(tmp_path / "out")]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main([*argv, *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and re.search(match, err), err


def test_digits_example_writes_the_user_arrays_and_probes(tmp_path: Path) -> None:
    """``examples/digits.py`` in a few steps: the two halves in the arrays format, the probed widths, and the
    raw-pixel probe well above chance (10 %)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "digits.py"
    spec = importlib.util.spec_from_file_location("digits_example", path)
    assert spec is not None and spec.loader is not None
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    results = digits.run(tmp_path, 1, 0, ["trainer.max_steps=3"])
    assert {name: r["width"] for name, r in results.items()} == {"comm": 128, "cross": 512, "raw pixels": 64}
    assert results["raw pixels"]["balanced_accuracy"] > 90.0
    with np.load(tmp_path / "digits.npz") as f:
        assert f["left"].shape == f["right"].shape == (1797, 32) and f["labels"].shape == (1797,)
        assert sorted(set(f["split"].tolist())) == ["test", "train", "val"]


class _Predicts(torch.nn.Module):
    """A stand-in for a trained ``supervised`` method whose predictions are its input."""

    def __init__(self, task_type: str, label_column: int = 0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.task_type, self.label_column = task_type, label_column

    def predict(self, batch: Any) -> torch.Tensor:
        return batch.inputs[0]


@pytest.mark.parametrize("task_type", ["multiclass", "multilabel", "regression"])
def test_finetuned_scores_against_scikit_learn(task_type: str) -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    from commlearn.data.base import ArrayDataset

    gen = torch.Generator().manual_seed(0)
    out = torch.randn(300, 3 if task_type == "multilabel" else 2, generator=gen)
    if task_type == "regression":
        y = out + 0.1 * torch.randn(out.shape, generator=gen)
        names = ["target"]
    elif task_type == "multilabel":
        y = ((out + torch.randn(out.shape, generator=gen)) > 0).float()
        names = ["a", "b", "c"]
    else:
        y = torch.stack([(out[:, 1] - out[:, 0] + torch.randn(300, generator=gen) > 0).long()] * 2, 1)
        names = ["other", "task"]
    data = ArrayDataset([out], labels=y, task_names=names, task_type=task_type)  # type: ignore[arg-type]
    scores = benchmark.finetuned_scores(_Predicts(task_type, label_column=1), data, batch_size=64)
    if task_type == "regression":
        assert scores == {"target mse": pytest.approx(float(((out - y) ** 2).mean()), rel=1e-3)}
    elif task_type == "multilabel":
        for avg in ("weighted", "macro"):
            expected = 100 * f1_score(y.numpy(), (out > 0).numpy(), average=avg, zero_division=0)
            assert scores[f"multilabel {avg}_f1"] == pytest.approx(expected, abs=0.01)
    else:
        label = y[:, 1].numpy()
        assert scores["task balanced_accuracy"] == pytest.approx(
            100 * balanced_accuracy_score(label, out.argmax(1).numpy()), abs=0.01
        )
        expected = 100 * roc_auc_score(label, (out[:, 1] - out[:, 0]).numpy())
        assert scores["task auroc"] == pytest.approx(expected, abs=0.01)
