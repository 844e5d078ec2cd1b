"""The Trifeature experiment end to end on a tiny preset, and its command-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from commlearn.cli import main
from commlearn.experiments.trifeature import PRESETS, format_table, run_experiment


def test_tiny_experiment_end_to_end(tmp_path: Path) -> None:
    preset = replace(PRESETS["tiny"], n_train_pairs=128, n_probe_train_pairs=200, n_probe_test_pairs=200)
    out = tmp_path / "out"
    results = run_experiment(preset, ["comm", "factorcl"], epochs=1, output=out, data_dir=tmp_path / "cache")
    assert set(results) == {"comm", "factorcl"}
    # a later run with other methods and the same settings keeps the earlier methods' results
    results = run_experiment(
        preset, ["cross", "cross_self"], epochs=1, output=out, data_dir=tmp_path / "cache"
    )
    assert list(results) == ["comm", "factorcl", "cross", "cross_self"]
    for scores in results.values():
        assert set(scores) == {"R", "U1", "U2", "S"}
        assert all(0.0 <= v <= 100.0 for v in scores.values())
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "rus.png").stat().st_size > 10_000
    assert "| CoMM |" in (out / "table.md").read_text()
    # each method pre-trained twice (unbiased for R/U, biased for S), each with a checkpoint
    for name in results:
        for regime in ("unbiased", "biased"):
            assert (out / name / regime / "checkpoints" / "last.ckpt").is_file()


def test_table_lists_paper_numbers() -> None:
    table = format_table({"comm": {"R": 1.0, "U1": 2.0, "U2": 3.0, "S": 4.0}})
    assert "| CoMM | 1.0 | 2.0 | 3.0 | 4.0 | 99.9 | 87.8 | 71.9 |" in table


@pytest.mark.parametrize(
    "args,match",
    [
        (["--methods", "comm,nope"], "unknown method\\(s\\) \\['nope'\\]"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--synergy", "texture"], "--synergy takes two attributes"),
        (["--share", "size"], "Roles.share must be one of"),
        (["--epochs", "0"], "--epochs must be ≥ 1"),
    ],
)
def test_experiment_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    import re

    argv = ["experiment", "trifeature", "--preset", "tiny", "--output", str(tmp_path), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and re.search(match, err), err


def test_runs_at_another_precision_are_not_merged(tmp_path: Path) -> None:
    preset = replace(PRESETS["tiny"], n_train_pairs=64, n_probe_train_pairs=100, n_probe_test_pairs=100)
    out, cache = tmp_path / "out", tmp_path / "cache"
    run_experiment(preset, ["comm"], epochs=1, output=out, data_dir=cache, precision="bf16-mixed")
    assert json.loads((out / "run.json").read_text())["settings"]["precision"] == "bf16-mixed"
    results = run_experiment(preset, ["cross"], epochs=1, output=out, data_dir=cache)
    assert list(results) == ["cross"]  # the bf16 CoMM scores are not mixed into a full-precision table
    assert "precision" not in json.loads((out / "run.json").read_text())["settings"]
