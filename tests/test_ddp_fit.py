"""``commlearn fit`` on two CPU processes (Lightning's DDP launcher, gloo) trains the model one process trains on
the same global batches, and its run resumes on one process — and a one-process run on two.

Setup: synthetic vectors, no augmentation, a head without BatchNorm (the vector encoders use LayerNorm), so
nothing in a step depends on how the global batch is split. Two processes with ``data.batch_size=8`` see the
global batches of one process with ``data.batch_size=16`` (``BatchLoader``), each computes its rows against
the gathered columns, and DDP averages the gradients: the weights after every step are those of one process.

In float64: the two runs add the same gradient terms in another order, and in float32 that rounding (≈ 1e-8)
is as large as AdamW's ε for parameters whose exact gradient is zero (the key bias of attention: softmax
ignores a shift shared by all keys), which AdamW then turns into steps of ± the learning rate. In float64 the
rounding is far below ε and the runs agree to 1e-5.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from commlearn.config import ConfigError, RunConfig, load_config
from commlearn.train import fit, read_checkpoint

B_LOCAL, WORLD = 8, 2
SHORT, LONG = 6, 10  # steps; 4 steps per epoch, so both stop mid-epoch
_COMMON = [
    "method.augment=false",
    "data.options.n_samples=64",
    "model.embed_dim=16",
    "model.n_heads=2",
    "model.head_hidden=[32]",
    "model.head_out=16",
    "model.head_batch_norm=false",
    "model.vector_dim=16",
    "trainer.max_epochs=100",
    "trainer.accelerator=cpu",
    "trainer.precision=64-true",
    "trainer.log_every_n_steps=1",
    "trainer.keep_epoch_checkpoints=false",
    "trainer.progress_bar=false",
]
_TIMEOUT_S = 180


def _one_process(run: Path, steps: int, *extra: str) -> RunConfig:
    return load_config(
        None,
        [
            *_COMMON,
            f"data.batch_size={B_LOCAL * WORLD}",
            "trainer.devices=1",
            f"trainer.max_steps={steps}",
            f"trainer.output={run}",
            *extra,
        ],
    )


def _two_processes(run: Path, steps: int) -> None:
    """``python -m commlearn fit`` with 2 CPU processes (Lightning starts the second one)."""
    args = [
        *_COMMON,
        f"data.batch_size={B_LOCAL}",
        f"trainer.devices={WORLD}",
        "trainer.strategy=ddp",
        f"trainer.max_steps={steps}",
        f"trainer.output={run}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "commlearn", "fit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained comm") == 1, done.stdout  # rank 0 alone speaks for the run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(run / "checkpoints" / "last.ckpt")
    return state["state_dict"]  # type: ignore[no-any-return]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The runs, in order (a run folder is resumed in place): one process to SHORT steps and on to LONG; two
    processes to SHORT, refused on one process with another global batch, then on to LONG on one process; one
    process to SHORT, then on to LONG on two processes."""
    root = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    one = root / "one"
    fit(_one_process(one, SHORT))
    out["one_short"] = _weights(one)
    fit(_one_process(one, LONG))
    out["one_long"] = _weights(one)

    two = root / "two"
    _two_processes(two, SHORT)
    out["two_short"] = read_checkpoint(two / "checkpoints" / "last.ckpt")
    out["two_metrics_lines"] = len((two / "metrics.csv").read_text().splitlines())
    config_before = (two / "config.yaml").read_text()
    with pytest.raises(ConfigError) as refused:
        fit(_one_process(two, LONG, f"data.batch_size={B_LOCAL}"))
    out["refused"] = str(refused.value)
    out["refusal_wrote_nothing"] = (two / "config.yaml").read_text() == config_before
    result = fit(
        _one_process(two, LONG)
    )  # devices, strategy and batch size differ; the global batch does not
    out["two_then_one"] = read_checkpoint(two / "checkpoints" / "last.ckpt")
    out["two_then_one_rank0"] = result.is_global_zero

    one_then_two = root / "one_then_two"
    fit(_one_process(one_then_two, SHORT))
    _two_processes(one_then_two, LONG)
    out["one_then_two"] = _weights(one_then_two)
    return out


def test_two_processes_train_the_weights_of_one_process(runs: dict[str, Any]) -> None:
    two = runs["two_short"]
    assert two["global_step"] == SHORT
    assert two["commlearn"]["world_size"] == WORLD
    assert len(two["callbacks"]["_RandomStates"]["ranks"]) == WORLD  # every process's random states
    _assert_same(two["state_dict"], runs["one_short"])
    assert runs["two_metrics_lines"] == SHORT + 1  # one writer: a header and one row per step


def test_two_process_run_resumes_on_one_process(runs: dict[str, Any]) -> None:
    assert runs["two_then_one"]["global_step"] == LONG and runs["two_then_one_rank0"]
    _assert_same(runs["two_then_one"]["state_dict"], runs["one_long"])


def test_one_process_run_resumes_on_two_processes(runs: dict[str, Any]) -> None:
    _assert_same(runs["one_then_two"], runs["one_long"])


def test_resume_with_another_global_batch_stops_in_one_line(runs: dict[str, Any]) -> None:
    message = runs["refused"]
    assert "\n" not in message
    assert "global batch of 16 (8 per process × 2)" in message and "pass data.batch_size=16" in message
    assert runs["refusal_wrote_nothing"]


class _Trainer:
    """The two things the BatchNorm decision reads from a Lightning trainer."""

    def __init__(self, world_size: int, device: str) -> None:
        self.world_size = world_size
        self.strategy = SimpleNamespace(root_device=torch.device(device))


def test_batch_norm_syncs_on_gpus_and_stays_local_on_cpu_with_one_warning() -> None:
    from commlearn.train import _batch_norm_across_processes

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))

    gpu = model()
    _batch_norm_across_processes(gpu, _Trainer(4, "cuda"), 16)  # type: ignore[arg-type]
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in gpu.modules()) == 2
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in gpu.modules())
    cpu = model()
    with pytest.warns(
        UserWarning, match=r"no SyncBatchNorm on cpu: the 2 BatchNorm layers normalise each process"
    ):
        _batch_norm_across_processes(cpu, _Trainer(2, "cpu"), 16)  # type: ignore[arg-type]
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in cpu.modules())
    one = model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _batch_norm_across_processes(one, _Trainer(1, "cuda"), 16)  # type: ignore[arg-type]
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in one.modules())
