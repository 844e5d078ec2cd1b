"""Exact resume: a run stopped mid-epoch and resumed ends with the weights of an uninterrupted run; the loader's
position and the global random states travel in checkpoints; ``last.ckpt`` holds the final step."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from commlearn.config import RunConfig, load_config
from commlearn.data.base import ArrayDataset
from commlearn.data.loader import BatchLoader
from commlearn.methods.base import BaseMethod
from commlearn.train import fit, read_checkpoint, rng_states, set_rng_states

STEPS_PER_EPOCH, EPOCHS = 8, 3  # 128 samples, batches of 16


def _config(run: Path, *extra: str) -> RunConfig:
    return load_config(
        None,
        [
            "data.options.n_samples=128",
            "data.batch_size=16",
            "model.embed_dim=16",
            "model.n_heads=2",
            "model.head_hidden=[32]",
            "model.head_out=16",
            "model.vector_dim=16",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.log_every_n_steps=1",
            "trainer.progress_bar=false",
            f"trainer.output={run}",
            *extra,
        ],
    )


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]  # type: ignore[no-any-return]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """Final weights of uninterrupted runs, with step checkpoints (every 5 steps) and with epoch checkpoints."""
    out = {}
    for name, extra in (("steps", ["trainer.checkpoint_every_n_steps=5"]), ("epochs", [])):
        run = tmp_path_factory.mktemp("uninterrupted") / name
        fit(_config(run, *extra))
        out[name] = _weights(run)
    return out


class _Killed(Exception):
    """Stands for the process being killed."""


@pytest.mark.parametrize("kill_at", [11, 16])  # checkpoints at steps 10 and 15: both mid-epoch
def test_run_killed_mid_epoch_resumes_to_the_same_weights(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uninterrupted: dict[str, dict[str, torch.Tensor]],
    kill_at: int,
) -> None:
    run = tmp_path / "run"
    cfg = _config(run, "trainer.checkpoint_every_n_steps=5")
    step = BaseMethod.training_step

    def dies(self: BaseMethod, batch: object, batch_idx: int) -> torch.Tensor:
        if self.trainer.global_step == kill_at:
            raise _Killed
        return step(self, batch, batch_idx)  # type: ignore[arg-type]

    monkeypatch.setattr(BaseMethod, "training_step", dies)
    with pytest.raises(_Killed):
        fit(cfg)
    stopped_at = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert stopped_at["global_step"] == kill_at // 5 * 5
    assert stopped_at["global_step"] % STEPS_PER_EPOCH != 0  # mid-epoch
    monkeypatch.setattr(BaseMethod, "training_step", step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cfg)
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH * EPOCHS
    _assert_same_weights(_weights(run), uninterrupted["steps"])


def test_scheduled_run_killed_mid_epoch_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With warm-up and a cosine schedule too (the schedule's length must not make Lightning build the loader
    before the checkpoint restores its position: the resumed run would restart its epoch)."""
    schedule = ("trainer.checkpoint_every_n_steps=5", "method.warmup_epochs=1", "method.scheduler=cosine")
    fit(_config(tmp_path / "whole", *schedule))
    run = tmp_path / "run"
    step = BaseMethod.training_step

    def dies(self: BaseMethod, batch: object, batch_idx: int) -> torch.Tensor:
        if self.trainer.global_step == 13:
            raise _Killed
        return step(self, batch, batch_idx)  # type: ignore[arg-type]

    monkeypatch.setattr(BaseMethod, "training_step", dies)
    with pytest.raises(_Killed):
        fit(_config(run, *schedule))
    monkeypatch.setattr(BaseMethod, "training_step", step)
    fit(_config(run, *schedule))
    _assert_same_weights(_weights(run), _weights(tmp_path / "whole"))


@pytest.mark.parametrize("mode", ["steps", "epochs"])
def test_run_stopped_by_max_steps_mid_epoch_continues_that_epoch(
    tmp_path: Path, uninterrupted: dict[str, dict[str, torch.Tensor]], mode: str
) -> None:
    """Lightning counts an epoch cut short by max_steps as complete; last.ckpt is written at its last step, so
    the resumed run trains the epoch's remaining batches."""
    run = tmp_path / "run"
    extra = ["trainer.checkpoint_every_n_steps=5"] if mode == "steps" else []
    fit(_config(run, *extra, "trainer.max_steps=13"))
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 13
    fit(_config(run, *extra))
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH * EPOCHS
    _assert_same_weights(_weights(run), uninterrupted[mode])


def test_step_checkpoints_end_with_the_final_step(tmp_path: Path) -> None:
    """Every 5 steps over 24 steps: last.ckpt holds step 24, not 20; the kept step file is the newest multiple."""
    run = tmp_path / "run"
    fit(_config(run, "trainer.checkpoint_every_n_steps=5", "trainer.max_epochs=3"))
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 24
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch=2-step=20.ckpt", "last.ckpt"]
    run = tmp_path / "steps_only"
    fit(_config(run, "trainer.checkpoint_every_n_steps=5", "trainer.max_steps=7"))
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 7


def test_loader_state_continues_the_epoch() -> None:
    data = ArrayDataset([torch.arange(20).float()[:, None]], labels=torch.arange(20))
    loader = BatchLoader(data, 3, shuffle=True, seed=4)
    loader.set_epoch(2)
    whole = [b.labels for b in loader]  # 6 batches of epoch 2
    loader.set_epoch(2)
    it = iter(loader)
    first = [next(it).labels for _ in range(4)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 4}
    resumed = BatchLoader(data, 3, shuffle=True, seed=4)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    rest = [b.labels for b in resumed]
    assert all(torch.equal(a, b) for a, b in zip([*first, *rest], whole, strict=True))
    assert resumed.state_dict() == {"epoch": 3, "batches": 0}
    # a finished epoch resumes at the next one
    done = BatchLoader(data, 3, shuffle=True, seed=4)
    done.load_state_dict({"epoch": 2, "batches": 6})
    assert done.state_dict() == {"epoch": 3, "batches": 0}
    loader.set_epoch(3)
    assert all(torch.equal(a.labels, b.labels) for a, b in zip(done, loader, strict=True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not a BatchLoader state: \{'step': 3\}"):
        done.load_state_dict({"step": 3})


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    def draw() -> tuple[torch.Tensor, np.ndarray, float, float]:
        return torch.rand(3), np.random.rand(3), random.random(), float(np.random.randn())  # noqa: NPY002

    np.random.randn()  # noqa: NPY002  (leaves a cached Gaussian in numpy's state)
    path = tmp_path / "rng.pt"
    torch.save(rng_states(), path)
    expected = draw()
    draw()
    set_rng_states(torch.load(path, weights_only=True))
    got = draw()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2:] == expected[2:]
