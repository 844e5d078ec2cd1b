"""One line, a non-zero exit status and no traceback for every expected failure; a clean stop with a checkpoint
on SIGTERM / SIGINT and on a NaN loss; argument errors answered without importing torch."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from commlearn.cli import main
from commlearn.config import ConfigError, load_config
from commlearn.losses.base import LossOutput
from commlearn.method_names import METHOD_NAMES
from commlearn.methods import METHODS, CoMM
from commlearn.methods.base import BaseMethod
from commlearn.train import Interrupted, fit, read_checkpoint

MODEL = [
    "data.batch_size=16",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "model.vector_dim=16",
    "trainer.progress_bar=false",
]
SMALL = ["data.options.n_samples=128", *MODEL]  # the synthetic data set


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------ SIGTERM / SIGINT
def test_sigterm_during_fit_saves_a_checkpoint_and_exits_non_zero(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "commlearn", "fit", *SMALL, "trainer.max_epochs=1000"]
    argv += ["trainer.checkpoint_every_n_steps=2", f"trainer.output={run}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM == 143
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    found = re.fullmatch(
        r"error: interrupted by SIGTERM at step (\d+); checkpoint saved to (.+); run the same command to resume",
        line,
    )
    assert found, line
    assert Path(found[2]) == run / "checkpoints" / "last.ckpt"
    assert read_checkpoint(found[2])["global_step"] == int(found[1]) >= 2
    assert not (run / "done.json").exists()


def test_sigint_stops_after_the_step_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: SIGINT during step 3 ends that step, writes last.ckpt at step 4 and raises Interrupted; the
    handlers in place before fit are back; the same fit continues from step 4."""
    cfg = load_config(None, [*SMALL, "trainer.max_epochs=1", f"trainer.output={tmp_path / 'run'}"])
    step = BaseMethod.training_step

    def interrupted(self: BaseMethod, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(BaseMethod, "training_step", interrupted)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(
        Interrupted, match=r"^interrupted by SIGINT at step 4; checkpoint saved to .*last\.ckpt"
    ) as e:
        fit(cfg, catch_signals=True)
    assert e.value.exit_code == 130 and e.value.step == 4
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert e.value.checkpoint == last and read_checkpoint(last)["global_step"] == 4
    monkeypatch.setattr(BaseMethod, "training_step", step)
    fit(cfg)
    assert read_checkpoint(last)["global_step"] == 8


# ------------------------------------------------------------------------------------ NaN / inf loss
@pytest.mark.parametrize("bad,every,kept", [(math.nan, 3, 6), (math.inf, 3, 6), (math.nan, 10, None)])
def test_non_finite_loss_stops_names_the_step_and_keeps_the_good_checkpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad: float,
    every: int,
    kept: int | None,
) -> None:
    compute = CoMM.compute_loss

    def diverges(self: CoMM, batch: Any) -> LossOutput:
        out = compute(self, batch)
        if self.trainer.global_step == 7:
            return LossOutput(loss=out.loss * bad, terms=out.terms, accuracies=out.accuracies)
        return out

    monkeypatch.setattr(CoMM, "compute_loss", diverges)
    run = tmp_path / "run"
    argv = ["fit", *SMALL, "trainer.max_epochs=2", f"trainer.checkpoint_every_n_steps={every}"]
    assert main([*argv, f"trainer.output={run}"]) == 2
    err = _one_line(capsys)
    last = run / "checkpoints" / "last.ckpt"
    kept_text = (
        f"the last good checkpoint {last} (step {kept}) is kept"
        if kept
        else "no checkpoint had been written yet"
    )
    assert err == (
        f"error: the training loss became {bad} at step 7; training stopped and {kept_text}; lower method.lr, "
        "or look for extreme values in the data"
    )
    if kept is None:
        assert not last.exists()
    else:
        state = read_checkpoint(last)
        assert state["global_step"] == kept
        assert all(bool(torch.isfinite(w).all()) for w in state["state_dict"].values())
    assert not (run / "done.json").exists()


# ------------------------------------------------------------------------------------ data files
def _npz(path: Path, **extra: np.ndarray) -> np.ndarray:
    g = np.random.default_rng(0)
    a = g.normal(size=(64, 6)).astype(np.float32)
    np.savez(path, a=a, b=g.normal(size=(64, 5)).astype(np.float32), labels=np.arange(64) % 3, **extra)
    return a


def _fit_arrays(root: Path, out: Path, *extra: str) -> int:
    return main(["fit", "data.name=arrays", f"data.root={root}", *MODEL, f"trainer.output={out}", *extra])


def test_corrupt_npz_payload_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid zip whose member bytes are flipped: the CRC check fails when the entry is read."""
    data = tmp_path / "d.npz"
    a = _npz(data)
    raw = bytearray(data.read_bytes())
    at = raw.find(a.tobytes()[40:56])
    assert at > 0
    raw[at] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert _fit_arrays(data, tmp_path / "run") == 2
    assert _one_line(capsys) == (
        f"error: cannot read entry 'a' of {data}: Bad CRC-32 for file 'a.npy'; the file is damaged: write it again"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "entry,value,what",
    [
        ("text", np.array(["a sentence"] * 64), "strings (dtype <U10)"),
        ("labels", np.array(["cat", "dog"] * 32), "strings (dtype <U3)"),
        ("b", np.array([b"x"] * 64), "byte strings (dtype |S1)"),
        ("c", np.ones((64, 2), dtype=np.complex64), "complex numbers (dtype complex64)"),
    ],
)
def test_entries_that_are_not_numbers_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, value: np.ndarray, what: str
) -> None:
    data = tmp_path / "d.npz"
    g = np.random.default_rng(0)
    arrays = {"a": g.normal(size=(64, 6)).astype(np.float32), "b": g.normal(size=(64, 5)).astype(np.float32)}
    np.savez(data, **{**arrays, "labels": np.arange(64) % 3, entry: value})
    assert _fit_arrays(data, tmp_path / "run") == 2
    assert _one_line(capsys) == (
        f"error: entry {entry!r} of {data} holds {what}: store numbers (features, token ids, or class ids "
        "0..K-1 for labels)"
    )


def test_token_ids_beyond_the_vocabulary_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Integer (N, T) entries are token ids; an id ≥ model.vocab_size would index past the embedding table."""
    data = tmp_path / "d.npz"
    g = np.random.default_rng(0)
    _npz(data, words=g.integers(0, 50, size=(64, 7)))
    assert _fit_arrays(data, tmp_path / "run", "model.vocab_size=40") == 2
    high = int(np.load(data)["words"].max())
    assert _one_line(capsys) == (
        f"error: token ids must lie in 0..39 (model.vocab_size=40), got ids 0..{high}: set model.vocab_size to "
        f"at least {high + 1}, or map the ids into range"
    )
    assert _fit_arrays(data, tmp_path / "run2", "model.vocab_size=50", "trainer.max_steps=1") == 0


def test_pickled_object_entry_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npz"
    _npz(data, notes=np.array([{"k": 1}] * 64, dtype=object))
    assert _fit_arrays(data, tmp_path / "run") == 2
    assert _one_line(capsys) == (
        f"error: entry 'notes' of {data} holds Python objects (a pickled array), which are not read: store "
        "numeric arrays"
    )


# ------------------------------------------------------------------------------------ config values
@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.max_epochs=-5", "trainer.max_epochs must be ≥ 1, got -5"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be ≥ 1, got 0"),
        ("trainer.max_steps=0", "trainer.max_steps must be ≥ 1, or -1 (epochs decide), got 0"),
        (
            "trainer.devices=0",
            "trainer.devices must be 'auto', a count ≥ 1, -1 (every device) or a list of device ids, got 0",
        ),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps must be ≥ 1, got 0"),
        (
            "trainer.checkpoint_every_n_steps=-1",
            "trainer.checkpoint_every_n_steps must be ≥ 0 (0: at epoch ends only), got -1",
        ),
        ("trainer.num_nodes=0", "trainer.num_nodes must be ≥ 1, got 0"),
        ("data.batch_size=0", "data.batch_size must be ≥ 1, got 0"),
        ("data.val_fraction=1.5", "data.val_fraction must be in [0, 1), got 1.5"),
        (
            "experiment.biased_epochs=0",
            "experiment.biased_epochs must be ≥ 1, or null (as long as the unbiased runs), got 0",
        ),
        (
            "trainer.strategy=nope",
            "Lightning cannot run with trainer.accelerator='auto', trainer.devices='auto', "
            "trainer.num_nodes=1, trainer.strategy='nope', trainer.precision='32-true': You selected an invalid "
            "strategy name",
        ),
        (
            "trainer.precision=64x",
            "Lightning cannot run with trainer.accelerator='auto', trainer.devices='auto', "
            "trainer.num_nodes=1, trainer.strategy='auto', trainer.precision='64x': Precision '64x' is invalid",
        ),
    ],
)
def test_nonsense_trainer_values_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    run = tmp_path / "run"
    assert main(["fit", *SMALL, override, f"trainer.output={run}"]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"error: {message}"), err
    assert not run.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Lightning raises MisconfigurationException (not a ValueError): mapped to one line."""
    assert main(["fit", *SMALL, "trainer.accelerator=gpu", f"trainer.output={tmp_path / 'run'}"]) == 2
    assert _one_line(capsys) == (
        "error: trainer.accelerator=gpu but this machine has no GPU that PyTorch can use (No supported gpu "
        "backend found!); pass trainer.accelerator=cpu, or auto to use a GPU when there is one"
    )


# ------------------------------------------------------------------------------------ --debug
def test_debug_shows_the_traceback_of_expected_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trainer.max_epochs must be ≥ 1, got -5"):
        main(["--debug", "fit", "trainer.max_epochs=-5", f"trainer.output={tmp_path}"])
    with pytest.raises(ValueError, match="checkpoint not found"):
        main(["--debug", "probe", "--checkpoint", str(tmp_path / "missing.ckpt")])


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug: list[str]) -> None:
    import commlearn.train

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(commlearn.train, "fit", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main([*debug, "fit", f"trainer.output={tmp_path}"])


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["fit", *SMALL, "trainer.max_epochs=1", f"trainer.output={blocker / 'run'}"]) == 1
    assert "file" in _one_line(capsys)


# ------------------------------------------------------------------------------------ start-up
def test_method_names_list_the_registry() -> None:
    assert list(METHOD_NAMES) == list(METHODS)


@pytest.mark.parametrize(
    "argv,status,message",
    [
        (["experiment", "trifeature", "--methods", "nope"], 2, "unknown method 'nope'; choose one of"),
        (["experiment", "trifeature", "--methods", "comm,nope"], 2, "unknown method 'nope'"),
        (["experiment", "trifeature", "--preset", "nope"], 2, "unknown preset 'nope'"),
        (["experiment", "trifeature", "--synergy", "texture"], 2, "--synergy takes two attributes"),
        (["fit", "method.lrr=1"], 2, "unknown config key 'method.lrr'"),
        (["fit", "--config", "nope.yaml"], 2, "config file not found: nope.yaml"),
        (["--help"], 0, None),
        (["experiment", "trifeature", "--help"], 0, None),
    ],
)
def test_argument_errors_answer_without_importing_torch(
    argv: list[str], status: int, message: str | None
) -> None:
    script = (
        "import sys\n"
        "from commlearn.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch', code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == f"no torch {status}", done.stdout + done.stderr
    if message is not None:
        err = done.stderr.strip()
        assert err.startswith("error: ") and "\n" not in err and message in err, err
