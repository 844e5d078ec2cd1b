"""The interaction report on synthetic data whose structure is known: R carried by both modalities, U_i by
modality i alone, S (a parity) only by both together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commlearn.cli import main
from commlearn.eval.interactions import modality_subsets


def test_modality_subsets() -> None:
    assert modality_subsets(2) == [(0,), (1,), (0, 1)]
    assert len(modality_subsets(4)) == 15 and modality_subsets(3)[-1] == (0, 1, 2)
    with pytest.raises(ValueError, match="takes 1..5 modalities, got 6"):
        modality_subsets(6)


def test_probe_interactions_recovers_the_known_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["fit", "data.options.kinds=[vector,vector]", "data.options.n_samples=512", "model.embed_dim=32"]
    argv += [
        "model.n_heads=2",
        "trainer.max_epochs=12",
        "trainer.progress_bar=false",
        f"trainer.output={run}",
    ]
    assert main(argv) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    out = tmp_path / "report.json"
    assert (
        main(["probe", "--checkpoint", ckpt, "--interactions", "--clusters", "24", "--output", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "PID (bits)" in printed and "joint gain" in printed
    report = json.loads(out.read_text())
    assert report["modalities"] == ["m0", "m1"] and out.with_suffix(".png").stat().st_size > 10_000
    tasks = report["tasks"]
    assert set(tasks) == {"R", "U0", "U1", "S"}
    for entry in tasks.values():
        assert set(entry["probes"]) == {"m0", "m1", "m0+m1"}
        pid = entry["pid"]
        parts = pid["redundancy"] + pid["unique1"] + pid["unique2"] + pid["synergy"]
        assert parts == pytest.approx(pid["total"], abs=1e-6) and pid["n_clusters1"] <= 24
        best_single = max(entry["probes"]["m0"], entry["probes"]["m1"])
        assert entry["joint_gain"] == pytest.approx(entry["probes"]["m0+m1"] - best_single, abs=0.011)
    # R (4 classes, 2 bits) is in both modalities, U0 only in m0, U1 only in m1, S (1 bit) only in both
    assert tasks["R"]["pid"]["redundancy"] > 1.5
    assert tasks["U0"]["pid"]["unique1"] > 1.5 and tasks["U0"]["pid"]["unique2"] < 0.1
    assert tasks["U1"]["pid"]["unique2"] > 1.5 and tasks["U1"]["pid"]["unique1"] < 0.1
    assert tasks["S"]["pid"]["synergy"] > 0.7 and tasks["S"]["pid"]["redundancy"] < 0.1
    assert tasks["U0"]["probes"]["m0"] > tasks["U0"]["probes"]["m1"] + 40
    assert main(["probe", "--checkpoint", ckpt, "--interactions", "--modalities", "0"]) == 2
    assert "leave out --modalities" in capsys.readouterr().err
