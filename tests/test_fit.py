"""End to end through the real CLI entry point: fit, resume, probe, embed, and one-line errors."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.cli import main
from commlearn.train import load_method


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def _fit(run: Path, kinds: str, method: str = "comm", *extra: str) -> int:
    return main(
        [
            "fit",
            f"method.name={method}",
            f"data.options.kinds={kinds}",
            "data.options.n_samples=256",
            "data.batch_size=32",
            "model.embed_dim=32",
            "model.n_heads=2",
            "model.head_hidden=[64]",
            "model.head_out=32",
            "model.vector_dim=32",
            "model.sequence_dim=16",
            "trainer.max_epochs=6",
            "trainer.log_every_n_steps=1",
            "trainer.progress_bar=false",
            f"trainer.output={run}",
            *extra,
        ]
    )


@pytest.mark.parametrize("kinds", ["[vector,vector]", "[vector,sequence,vector]"])
def test_fit_comm_loss_decreases_and_checkpoints(tmp_path: Path, kinds: str) -> None:
    run = tmp_path / "run"
    assert _fit(run, kinds) == 0
    losses = _losses(run)
    assert len(losses) >= 40
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.1
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 48
    method, cfg = load_method(run / "checkpoints" / "last.ckpt")
    assert cfg.method.name == "comm" and method.model.n_modalities == kinds.count(",") + 1  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["cross", "cross_self"])
def test_fit_baselines_loss_decreases(tmp_path: Path, method: str) -> None:
    run = tmp_path / method
    assert _fit(run, "[vector,vector,vector]", method) == 0
    losses = _losses(run)
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.1


def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=2") == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 16
    # same folder, longer schedule: continues from step 16 instead of starting over
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=3") == 0
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "metrics.csv")) if r.get("train/loss")]
    assert max(steps) == 23 and steps.count(0) == 1
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 24
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_probe_and_embed_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=2") == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    out = tmp_path / "probe.json"
    assert main(["probe", "--checkpoint", ckpt, "--output", str(out)]) == 0
    assert "R" in out.read_text() and "balanced" in capsys.readouterr().out
    emb = tmp_path / "emb.npz"
    assert main(["embed", "--checkpoint", ckpt, "--output", str(emb)]) == 0
    arrays = np.load(emb)
    assert arrays["features"].shape == (256, 32) and arrays["labels"].shape == (256, 4)
    assert main(["embed", "--checkpoint", ckpt, "--output", str(emb), "--modalities", "1"]) == 0
    assert np.load(emb)["features"].shape == (256, 32)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["fit", "method.lrr=1"], "unknown config key 'method.lrr'"),
        (["fit", "method.name=nope"], "unknown method 'nope'"),
        (["fit", "method.options.tau=0.1"], "unknown option\\(s\\) \\['tau'\\] for method 'comm'"),
        (["fit", "data.name=arrays"], "data.root must name"),
        (
            ["fit", "data.batch_size=1", "data.options.n_samples=8", "trainer.max_steps=1"],
            "at least 2 samples",
        ),
        (["fit", "method.name=cross", "data.options.kinds=[vector]"], "cross needs at least 2 modalities"),
        (["probe", "--checkpoint", "missing.ckpt"], "checkpoint not found"),
        (["experiment", "trifeature", "--preset", "tiny", "--methods", " , "], "--methods names no method"),
        (["experiment", "benchmark", "--data", "mosi", "--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    argv = [*argv, f"trainer.output={tmp_path}"] if argv[0] == "fit" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(match, err), err


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_method(bad)


@pytest.mark.parametrize("keep", [True, False])
def test_epoch_checkpoints_kept_or_only_last(tmp_path: Path, keep: bool) -> None:
    run = tmp_path / "run"
    assert (
        _fit(
            run,
            "[vector,vector]",
            "comm",
            "trainer.max_epochs=2",
            f"trainer.keep_epoch_checkpoints={str(keep).lower()}",
        )
        == 0
    )
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in names
    epochs = [n for n in names if n.startswith("epoch=")]
    assert len(epochs) == (2 if keep else 0), names


def test_on_device_keeps_cpu_data_and_moves_supporting_data_sets() -> None:
    from commlearn.data.base import ArrayDataset
    from commlearn.train import on_device

    plain = ArrayDataset([torch.zeros(4, 3)], labels=torch.zeros(4, dtype=torch.long))
    assert on_device(plain, torch.device("cpu")) is plain
    assert on_device(plain, torch.device("meta")) is plain  # no `to`: left where it is

    class Movable(ArrayDataset):
        def to(self, device: torch.device) -> str:
            return f"moved to {device}"

    movable = Movable([torch.zeros(4, 3)], labels=torch.zeros(4, dtype=torch.long))
    assert on_device(movable, torch.device("cpu")) is movable
    assert on_device(movable, torch.device("meta")) == "moved to meta"


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "change,match",
    [
        (["method.lr=3e-3"], r"method.lr: 0.001 → 0.003"),
        (["method.name=cross"], r"method.name: 'comm' → 'cross'"),
        (["data.options.n_samples=128"], r"data.options.n_samples: 256 → 128"),
        (["model.embed_dim=16", "model.n_heads=4"], r"model.embed_dim: 32 → 16; model.n_heads: 2 → 4"),
    ],
)
def test_a_run_folder_holds_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: list[str], match: str
) -> None:
    """Another config into a folder holding a run stops with one line and leaves the folder untouched."""
    run = tmp_path / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1", *change) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(match, err), err
    assert "choose a new trainer.output, or pass trainer.resume=false" in err
    assert _snapshot(run) == before


def test_finished_run_says_so_and_restart_starts_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 0
    assert "already finished (1 epochs)" in capsys.readouterr().out
    assert _snapshot(run) == before
    # trainer.resume=false deletes the earlier run and trains a new one, with the new config
    assert (
        _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1", "method.lr=3e-3", "trainer.resume=false")
        == 0
    )
    assert load_method(run / "checkpoints" / "last.ckpt")[1].method.lr == 3e-3
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "metrics.csv")) if r.get("train/loss")]
    assert steps == list(range(8))  # the earlier run's metrics are gone


def test_a_moved_run_folder_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run copied elsewhere is the same run there: finished at its length, trained on when longer."""
    run, moved = tmp_path / "run", tmp_path / "elsewhere" / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 0
    shutil.copytree(run, moved)
    capsys.readouterr()
    assert _fit(moved, "[vector,vector]", "comm", "trainer.max_epochs=1") == 0
    assert "already finished (1 epochs)" in capsys.readouterr().out
    assert _fit(moved, "[vector,vector]", "comm", "trainer.max_epochs=2") == 0
    assert json.loads((moved / "done.json").read_text())["epochs"] == 2


def test_a_shorter_length_than_the_folders_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder keeps only the run's last state, so a shorter length stops instead of returning it: for a
    finished run (done.json) and for an interrupted one (its checkpoint's epoch)."""
    run = tmp_path / "run"
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=2") == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trained past the requested length (2 epochs, step 16; requested " in err, err
    assert _snapshot(run) == before
    (run / "done.json").unlink()  # as after a kill: the checkpoint alone says how far the run got
    assert _fit(run, "[vector,vector]", "comm", "trainer.max_epochs=1") == 2
    err = capsys.readouterr().err.strip()
    assert "trained past the requested length (interrupted in epoch 2, step 16; requested " in err, err


def test_foreign_folder_and_foreign_checkpoints_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "other"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "model.pt").write_bytes(b"x")
    assert _fit(folder, "[vector,vector]") == 2
    assert "holds checkpoints or logs but no config.yaml" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    for path, match in (
        (text, "not a PyTorch checkpoint, or a damaged one"),
        (plain, "not a checkpoint written"),
    ):
        assert main(["probe", "--checkpoint", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and match in err and "\n" not in err, err


def test_checkpoint_rebuilds_its_data_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored modality specs are compared with the data rebuilt from the stored config."""
    g = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, a=g.normal(size=(64, 6)).astype(np.float32), b=g.normal(size=(64, 5)).astype(np.float32))
    run = tmp_path / "run"
    common = ["fit", "data.name=arrays", f"data.root={data}", "data.batch_size=16", "model.embed_dim=16"]
    common += [
        "model.n_heads=2",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"trainer.output={run}",
    ]
    assert main(common) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    emb = tmp_path / "e.npz"
    assert main(["embed", "--checkpoint", ckpt, "--output", str(emb)]) == 0
    np.savez(data, a=g.normal(size=(64, 7)).astype(np.float32), b=g.normal(size=(64, 5)).astype(np.float32))
    capsys.readouterr()
    assert main(["embed", "--checkpoint", ckpt, "--output", str(emb)]) == 2
    err = capsys.readouterr().err
    assert "was trained on modalities [a vector (6,), b vector (5,)]" in err and "a vector (7,)" in err
    assert main([*common, "trainer.max_epochs=2"]) == 2  # resuming on other data stops too
    assert "was trained on modalities" in capsys.readouterr().err


def test_embed_is_in_eval_mode_and_takes_modalities(tmp_path: Path) -> None:
    """A sample's embedding does not depend on its batch-mates (BatchNorm, dropout in eval mode), and
    ``modalities`` embeds with the others missing, as the fusion does."""
    from commlearn.config import ModelConfig
    from commlearn.data.synthetic import make_synthetic
    from commlearn.methods import CoMM, build_method

    data = make_synthetic(16, ("vector", "sequence"))
    method = build_method("comm", data.modality_specs, ModelConfig(embed_dim=16, n_heads=2))
    assert isinstance(method, CoMM)
    method.train()
    whole = method.embed(data.get_batch(torch.arange(16)))
    half = method.embed(data.get_batch(torch.arange(8)))
    torch.testing.assert_close(whole[:8], half)
    assert method.training  # the mode is restored
    batch = data.get_batch(torch.arange(4))
    method.eval()
    with torch.no_grad():
        expected = method.model(batch.inputs, batch.padding, modalities=[1])
    torch.testing.assert_close(method.embed(batch, modalities=[1]), expected)
    with pytest.raises(
        ValueError, match=r"modalities \[2\] cannot be embedded by CoMM; choose from \[0, 1\]"
    ):
        method.embed(batch, modalities=[2])
