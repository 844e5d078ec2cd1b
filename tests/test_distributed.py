"""Two ``gloo`` processes on CPU give the same contrastive losses and gradients as one process.

Setup: a global batch of ``W · B`` rows is split into ``W = 2`` contiguous slices, rank ``r`` holding rows
``[r·B, (r+1)·B)``. Each rank computes ``info_nce`` / ``CoMMLoss`` on its slice: its own ``2B`` rows against
the columns gathered from every rank (``commlearn.dist.gather_with_grad``, labels offset by ``r·B``).

What must hold, and why:

* **Loss.** Every rank has the same number of rows, so the single-process loss on the global batch (a mean
  over ``2·W·B`` rows) equals the MEAN over ranks of the per-rank losses: ``L = (1/W) Σ_r L_r``.
* **Input gradients.** Rank ``r`` calls ``backward`` on its own ``L_r`` only. The gather's backward sums the
  gradient w.r.t. the gathered tensor over all ranks (``all_reduce``) and hands each rank the slice of its own
  rows, so the gradient rank ``r`` gets for its inputs ``x_r`` is ``∂(Σ_r' L_r')/∂x_r`` — the gradient of the
  SUM of the rank losses, i.e. ``W · ∂L/∂x_r``. So we compare ``grad_r == W · (single-process grad)[rows of
  r]``.
* **Parameter gradients under DDP.** DDP averages parameter gradients over ranks: ``(1/W) Σ_r ∂(Σ_r'
  L_r')/∂θ|_r``. The per-rank parameter gradients sum to ``∂(Σ_r L_r)/∂θ = W · ∂L/∂θ``, and DDP's division by
  ``W`` brings it back to exactly the single-process ``∂L/∂θ`` — so a DDP run takes the same optimiser step as
  one process on the concatenated batch (no learning-rate rescaling needed).

All arithmetic is float64 so the comparisons are tight; the two workers are spawned once per module.
"""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from commlearn import dist
from commlearn.losses import CoMMLoss, info_nce, nce_with_accuracy

WORLD = 2
B_LOCAL = 4
DIM = 6
N_MODALITIES = 2  # CoMM: n + 1 = 3 embeddings per view
TAU = 0.1
_TIMEOUT_S = 60.0


def _inputs() -> dict[str, Any]:
    """The global batch every process (and the single-process reference) rebuilds from one seed."""
    g = torch.Generator().manual_seed(1234)
    n = WORLD * B_LOCAL
    a = torch.randn(n, DIM, generator=g, dtype=torch.float64)
    b = a + 0.7 * torch.randn(n, DIM, generator=g, dtype=torch.float64)  # correlated: accuracy is not 0/1
    z1 = [torch.randn(n, DIM, generator=g, dtype=torch.float64) for _ in range(N_MODALITIES + 1)]
    z2 = [z + 0.5 * torch.randn(n, DIM, generator=g, dtype=torch.float64) for z in z1]
    x1 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
    return {"a": a, "b": b, "z1": z1, "z2": z2, "x1": x1, "x2": x2}


def _linear() -> nn.Linear:
    torch.manual_seed(99)
    return nn.Linear(5, DIM).double()


def _local(x: Tensor, rank: int) -> Tensor:
    """Rank ``rank``'s rows of a global tensor, as a fresh leaf that requires grad."""
    return x[rank * B_LOCAL : (rank + 1) * B_LOCAL].clone().requires_grad_(True)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=_TIMEOUT_S),
    )
    try:
        data = _inputs()
        res: dict[str, Any] = {"rank": dist.rank(), "world_size": dist.world_size()}

        a, b = _local(data["a"], rank), _local(data["b"], rank)
        loss, acc = nce_with_accuracy(a, b, TAU)
        loss.backward()
        assert a.grad is not None and b.grad is not None
        res["nce"] = (loss.detach(), acc, a.grad, b.grad)

        z1 = [_local(z, rank) for z in data["z1"]]
        z2 = [_local(z, rank) for z in data["z2"]]
        comm = CoMMLoss(TAU)(z1, z2)
        comm.backward()
        res["comm"] = (comm.detach(), [z.grad for z in z1], [z.grad for z in z2])

        model = DistributedDataParallel(_linear())
        x1, x2 = _local(data["x1"], rank).detach(), _local(data["x2"], rank).detach()
        both = model(torch.cat([x1, x2]))  # one DDP forward per backward
        ddp_loss = info_nce(both[:B_LOCAL], both[B_LOCAL:], TAU)
        ddp_loss.backward()
        res["ddp"] = (ddp_loss.detach(), {k: p.grad for k, p in model.module.named_parameters()})
        torch.save(res, Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Run the two workers once; their saved results, in rank order."""
    out = tmp_path_factory.mktemp("dist")
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + _TIMEOUT_S
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"distributed workers did not finish within {_TIMEOUT_S:.0f} s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _rows(x: Tensor, rank: int) -> Tensor:
    return x[rank * B_LOCAL : (rank + 1) * B_LOCAL]


def test_workers_see_the_process_group(ranks: list[dict[str, Any]]) -> None:
    assert [r["rank"] for r in ranks] == list(range(WORLD))
    assert all(r["world_size"] == WORLD for r in ranks)


def test_info_nce_loss_and_input_grads_match_one_process(ranks: list[dict[str, Any]]) -> None:
    data = _inputs()
    a, b = data["a"].clone().requires_grad_(True), data["b"].clone().requires_grad_(True)
    loss, acc = nce_with_accuracy(a, b, TAU)
    loss.backward()
    assert a.grad is not None and b.grad is not None
    rank_losses = torch.stack([r["nce"][0] for r in ranks])
    torch.testing.assert_close(rank_losses.mean(), loss.detach(), rtol=1e-12, atol=1e-12)
    # the per-rank losses differ (each rank owns different rows): the mean is not a trivial coincidence
    assert not torch.allclose(rank_losses[0], rank_losses[1])
    torch.testing.assert_close(torch.stack([r["nce"][1] for r in ranks]).mean(), acc)
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["nce"][2], WORLD * _rows(a.grad, r), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(res["nce"][3], WORLD * _rows(b.grad, r), rtol=1e-10, atol=1e-12)


def test_comm_loss_and_input_grads_match_one_process(ranks: list[dict[str, Any]]) -> None:
    data = _inputs()
    z1 = [z.clone().requires_grad_(True) for z in data["z1"]]
    z2 = [z.clone().requires_grad_(True) for z in data["z2"]]
    loss = CoMMLoss(TAU)(z1, z2)
    loss.backward()
    torch.testing.assert_close(
        torch.stack([r["comm"][0] for r in ranks]).mean(), loss.detach(), rtol=1e-12, atol=1e-12
    )
    for r, res in enumerate(ranks):
        for got, z in zip(res["comm"][1] + res["comm"][2], z1 + z2, strict=True):
            assert z.grad is not None
            torch.testing.assert_close(got, WORLD * _rows(z.grad, r), rtol=1e-10, atol=1e-12)


def test_ddp_parameter_grads_equal_single_process_grads(ranks: list[dict[str, Any]]) -> None:
    data = _inputs()
    model = _linear()
    both = model(torch.cat([data["x1"], data["x2"]]))
    n = WORLD * B_LOCAL
    loss = info_nce(both[:n], both[n:], TAU)
    loss.backward()
    torch.testing.assert_close(
        torch.stack([r["ddp"][0] for r in ranks]).mean(), loss.detach(), rtol=1e-12, atol=1e-12
    )
    for res in ranks:  # DDP's average over ranks of the summed-loss gradient is exactly ∂L/∂θ
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(res["ddp"][1][name], p.grad, rtol=1e-10, atol=1e-12)
