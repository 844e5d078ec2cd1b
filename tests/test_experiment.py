"""The Trifeature experiment end to end on the tiny preset: results, run folders whose checkpoints rebuild the
probed data, agreement with `fit --config`, and its command-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from commlearn.cli import main
from commlearn.config import load_config
from commlearn.experiments.trifeature import format_table, run_config, run_experiment, time_to_accuracy
from commlearn.train import fit, read_checkpoint


def _small(cache: Path, pairs: int = 128, probe: int = 200) -> list[str]:
    return [
        f"data.root={cache}",
        f"data.options.n_pairs={pairs}",
        f"data.options.n_probe_train_pairs={probe}",
        f"data.options.n_probe_test_pairs={probe}",
        "trainer.progress_bar=false",
    ]


def test_tiny_experiment_end_to_end_and_its_checkpoints_probe_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    small = _small(tmp_path / "cache")
    results = run_experiment("tiny", ["comm", "factorcl"], out, small)
    assert set(results) == {"comm", "factorcl"}
    # a later run with other methods and the same settings keeps the earlier methods' results
    results = run_experiment("tiny", ["cross", "cross_self"], out, small)
    assert list(results) == ["comm", "factorcl", "cross", "cross_self"]
    for scores in results.values():
        assert set(scores) == {"R", "U1", "U2", "S"}
        assert all(0.0 <= v <= 100.0 for v in scores.values())
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "rus.png").stat().st_size > 10_000
    assert "| CoMM |" in (out / "table.md").read_text()
    # the width of the features each method's probes read: CoMM's fused Z, Cross's concatenated encoders
    widths = json.loads((out / "run.json").read_text())["feature_widths"]
    assert set(widths) == set(results) and all(w > 0 for w in widths.values())
    assert f"| CoMM | {results['comm']['R']:.1f} |" in (out / "table.md").read_text()
    # each method pre-trained twice (unbiased for R/U, biased for S); `commlearn probe` on either checkpoint
    # rebuilds the data the experiment probed and gives the experiment's scores
    for name in results:
        for regime, tasks in (("unbiased", ("R", "U1", "U2")), ("biased", ("S",))):
            ckpt = out / name / regime / "checkpoints" / "last.ckpt"
            stored = read_checkpoint(ckpt)["commlearn"]["config"]
            assert stored["data"]["options"]["biased"] == (regime == "biased")
            assert stored["method"]["name"] == name
            scores_file = tmp_path / f"{name}-{regime}.json"
            assert main(["probe", "--checkpoint", str(ckpt), "--output", str(scores_file)]) == 0
            probed = json.loads(scores_file.read_text())
            assert {t: round(probed[t]["score"], 2) for t in tasks} == {t: results[name][t] for t in tasks}
    # running it again trains nothing: every run folder says it is finished, the scores are the same
    assert run_experiment("tiny", ["comm"], out, small)["comm"] == results["comm"]


def test_fit_with_the_preset_trains_what_the_experiment_trains(tmp_path: Path) -> None:
    """`commlearn fit --config trifeature-cpu` and the cpu experiment's CoMM pre-training: same first step."""
    small = [*_small(tmp_path / "cache"), "trainer.max_steps=1"]
    by_fit = tmp_path / "fit"
    assert main(["fit", "--config", "trifeature-cpu", *small, f"trainer.output={by_fit}"]) == 0
    fit(run_config("cpu", "comm", "unbiased", tmp_path / "exp", small))
    a = read_checkpoint(by_fit / "checkpoints" / "last.ckpt")["state_dict"]
    b = read_checkpoint(tmp_path / "exp" / "comm" / "unbiased" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_config("trifeature-tiny").experiment.method_options["factorcl"] == {"critic_hidden": 32}
    factorcl = run_config("tiny", "factorcl", "biased", tmp_path, ["method.options.critic_layers=2"])
    assert factorcl.method.options == {"critic_hidden": 32, "critic_layers": 2}
    assert factorcl.data.options["biased"] is True


def test_table_names_the_source_of_every_reference_number() -> None:
    scores = {"R": 1.0, "U1": 2.0, "U2": 3.0, "S": 4.0}
    table = format_table(
        {"comm": scores, "infmasking": scores, "simclr": scores}, {"comm": 128, "simclr": 256}
    )
    assert table.startswith("| method | R | U1 | U2 | S | probed width | published R | published U |")
    assert (
        "| CoMM | 1.0 | 2.0 | 3.0 | 4.0 | 128 | 99.9 | 87.8 | 71.9 | CoMM paper (Dufumier et al., ICLR 2025), "
        "Fig. 3 |" in table
    )
    assert (
        "| InfMasking | 1.0 | 2.0 | 3.0 | 4.0 | – | 99.9 | 90.6 | 77.0 | InfMasking paper (Wen et al., "
        "NeurIPS 2025) |" in table
    )
    assert "| simclr | 1.0 | 2.0 | 3.0 | 4.0 | 256 | – | – | – | – |" in table


def test_infmasking_runs_in_the_experiment(tmp_path: Path) -> None:
    results = run_experiment("tiny", ["infmasking"], tmp_path / "out", _small(tmp_path / "cache", 64, 100))
    assert set(results["infmasking"]) == {"R", "U1", "U2", "S"}


@pytest.mark.parametrize(
    "args,match",
    [
        (["--methods", "comm,nope"], "unknown method 'nope'"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--synergy", "texture"], "--synergy takes two attributes"),
        (["--share", "size"], "Roles.share must be one of"),
        (["--epochs", "0"], "--epochs must be ≥ 1"),
        (["method.lr=-1"], "method.lr must be > 0"),
        (["--curves", "0,1"], "--curves epochs must be in 1..1"),
        (["--curves", "one"], "--curves takes comma-separated epochs"),
    ],
)
def test_experiment_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    argv = ["experiment", "trifeature", "--preset", "tiny", "--output", str(tmp_path), "--data-dir",
            str(tmp_path / "cache"), *args]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and re.search(match, err), err


def test_runs_at_another_precision_are_not_merged(tmp_path: Path) -> None:
    out, small = tmp_path / "out", _small(tmp_path / "cache", 64, 100)
    run_experiment("tiny", ["comm"], out, [*small, "trainer.precision=bf16-mixed"])
    assert json.loads((out / "run.json").read_text())["settings"]["trainer"]["precision"] == "bf16-mixed"
    results = run_experiment("tiny", ["cross"], out, small)
    assert list(results) == ["cross"]  # the bf16 CoMM scores are not mixed into a full-precision table
    results = run_experiment("tiny", ["cross_self"], out, [*small, "trainer.progress_bar=true"])
    assert list(results) == ["cross", "cross_self"]  # the progress bar does not change results


def test_learning_curves_and_the_loss_ablation_variants(tmp_path: Path) -> None:
    """``curves`` probes each unbiased pre-training after epochs 1 and 2 (the second resumes the first) and
    the one-epoch biased runs (``experiment.biased_epochs``) once; the preset's variants run CoMM with only
    some of its loss terms."""
    out = tmp_path / "out"
    small = [*_small(tmp_path / "cache", 64, 100), "trainer.max_epochs=2", "experiment.biased_epochs=1"]
    results = run_experiment("tiny", ["comm_full_only", "comm_masked_only"], out, small, curves=[2, 1])
    curves = json.loads((out / "curves.json").read_text())
    assert list(curves) == ["comm_full_only", "comm_masked_only"]
    for name, rows in curves.items():
        assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [2, 4]
        assert {t: rows[-1][t] for t in ("R", "U1", "U2")} == {t: results[name][t] for t in ("R", "U1", "U2")}
        assert "S" not in rows[1] and rows[0]["S"] == results[name]["S"]
    assert (out / "curves.png").stat().st_size > 10_000
    rows = curves["comm_full_only"]  # cumulative fit seconds of each regime's run
    assert 0 < rows[0]["seconds_unbiased"] < rows[1]["seconds_unbiased"] and rows[0]["seconds_biased"] > 0
    assert "| CoMM (L only) |" in (out / "time_to_accuracy.md").read_text()
    biased = read_checkpoint(out / "comm_full_only" / "biased" / "checkpoints" / "last.ckpt")
    assert biased["global_step"] == 2  # one epoch of 2 steps
    stored = read_checkpoint(out / "comm_full_only" / "unbiased" / "checkpoints" / "last.ckpt")
    assert stored["commlearn"]["config"]["method"]["options"] == {"loss_weights": [0, 0, 1]}
    assert stored["global_step"] == 4
    assert "CoMM (L only)" in (out / "table.md").read_text()


def test_learning_curves_resume_and_never_probe_a_later_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run folder keeps only its last state. The same command again reuses the points it probed (training
    nothing); one killed after its first point resumes to the curves of an uninterrupted run; a shorter
    length on the same folders stops with one line instead of probing the longer runs."""
    from commlearn.config import ConfigError
    from commlearn.experiments import trifeature

    small = [*_small(tmp_path / "cache", 64, 100), "trainer.max_epochs=2", "experiment.biased_epochs=1"]
    whole = tmp_path / "whole"
    results = run_experiment("tiny", ["comm"], whole, small, curves=[1, 2])
    curves = json.loads((whole / "curves.json").read_text())
    ckpt = whole / "comm" / "unbiased" / "checkpoints" / "last.ckpt"
    mtime = ckpt.stat().st_mtime_ns
    assert run_experiment("tiny", ["comm"], whole, small, curves=[1, 2]) == results
    assert json.loads((whole / "curves.json").read_text()) == curves and ckpt.stat().st_mtime_ns == mtime

    calls = []
    real = trifeature.pretrain_and_probe

    def killed_after_one(*args: object) -> trifeature.Probed:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)  # type: ignore[arg-type]

    killed = tmp_path / "killed"
    monkeypatch.setattr(trifeature, "pretrain_and_probe", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("tiny", ["comm"], killed, small, curves=[1, 2])
    monkeypatch.setattr(trifeature, "pretrain_and_probe", real)
    assert run_experiment("tiny", ["comm"], killed, small, curves=[1, 2]) == results

    def scores(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in rows]

    assert scores(json.loads((killed / "curves.json").read_text())["comm"]) == scores(curves["comm"])
    with pytest.raises(
        ConfigError, match=r"trained past the requested length \(2 epochs, step 4; requested "
    ):
        run_experiment("tiny", ["comm"], whole, [*small, "trainer.max_epochs=1"])


def test_time_to_accuracy_reads_the_first_point_at_each_threshold() -> None:
    rows = [
        {
            "epoch": 1,
            "R": 85.0,
            "U1": 40.0,
            "U2": 60.0,
            "S": 71.0,
            "seconds_unbiased": 60.0,
            "seconds_biased": 30,
        },
        {
            "epoch": 2,
            "R": 96.0,
            "U1": 55.0,
            "U2": 52.0,
            "S": 65.0,
            "seconds_unbiased": 150.0,
            "seconds_biased": 60,
        },
    ]
    table = time_to_accuracy({"comm": rows}).splitlines()
    assert table[0] == "| method | R ≥ 80 | R ≥ 95 | U ≥ 50 | U ≥ 80 | S ≥ 60 | S ≥ 70 |"
    # U is the lower of U1 and U2 (40 at epoch 1); S counts the biased run's seconds
    assert table[2] == (
        "| CoMM | 1 ep (1.0 min) | 2 ep (2.5 min) | 2 ep (2.5 min) | not reached (best 52.0) | 1 ep (0.5 min) "
        "| 1 ep (0.5 min) |"
    )
