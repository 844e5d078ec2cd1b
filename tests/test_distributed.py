"""Two ``gloo`` processes on CPU give the same contrastive losses and gradients as one process.

Setup: a global batch of ``W · B`` rows is split into ``W = 2`` contiguous slices, rank ``r`` holding rows
``[r·B, (r+1)·B)``. Each rank computes every loss of ``commlearn.losses`` on its slice: its own rows against
the columns gathered from every rank (``commlearn.dist.gather_with_grad``, positives at ``r·B + k``). Every
method of ``METHODS`` (a method added later included) is checked the same way through its ``compute_loss``.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from commlearn import dist
from commlearn.config import ModelConfig, TaskInfo
from commlearn.data.base import ModalitySpec, MultimodalBatch
from commlearn.losses import (
    CMCLoss,
    CoMMLoss,
    CrossLoss,
    CrossSelfLoss,
    FactorCLLoss,
    InfMaskingLoss,
    SupConLoss,
    info_nce,
    nce_with_accuracy,
)

WORLD = 2
B_LOCAL = 4
DIM = 6
N_MODALITIES = 2  # CoMM: n + 1 = 3 embeddings per view
N_MASKED = 3  # InfMasking: masked fusions per view
N_CLASSES = 3
TAU = 0.1
_TIMEOUT_S = 90.0
#: Methods whose ``compute_loss`` draws random numbers, so that two ranks cannot reproduce one process's draws.
RANDOM_METHODS = {"infmasking": "random token masks each step; InfMaskingLoss is checked on fixed inputs"}


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
    masked = [z1[-1] + 0.4 * torch.randn(N_MASKED, n, DIM, generator=g, dtype=torch.float64) for _ in "12"]
    factors = {
        key: [torch.randn(n, DIM, generator=g, dtype=torch.float64) for _ in range(N_MODALITIES)]
        for key in ("shared", "unique", "shared_cond", "unique_cond")
    }
    targets = [torch.randn(n, N_CLASSES, generator=g, dtype=torch.float64) for _ in range(N_MODALITIES)]
    return {
        "a": a,
        "b": b,
        "z1": z1,
        "z2": z2,
        "x1": x1,
        "x2": x2,
        "masked": masked,
        "factors": factors,
        "targets": targets,
        # every label on both ranks (V = 2 views), and one view whose ranks hold unequal numbers of anchors
        # with a positive (rank 0: 2, rank 1: 3)
        "labels": torch.tensor([0, 1, 0, 2, 1, 1, 2, 0]),
        "labels_one_view": torch.tensor([0, 0, 1, 2, 3, 3, 3, 5]),
    }


Take = Callable[..., Tensor]
Leaves = list[tuple[Tensor, int]]  # (leaf tensor, batch axis)


def _take(rank: int | None) -> Take:
    """``take(x, axis=0, grad=True)``: rank ``rank``'s rows of a global tensor (all rows for None), as a fresh
    tensor (a leaf that requires grad unless ``grad=False``)."""

    def take(x: Tensor, axis: int = 0, grad: bool = True) -> Tensor:
        if rank is not None:
            x = x.narrow(axis, rank * B_LOCAL, B_LOCAL)
        return x.clone().requires_grad_(grad)

    return take


def _leaves(*groups: list[Tensor], axis: int = 0) -> Leaves:
    return [(x, axis) for group in groups for x in group]


def _cross(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    zs = [take(z) for z in data["z1"]]
    return CrossLoss(TAU)(zs), _leaves(zs), None


def _cross_self(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    z1, z2 = [take(z) for z in data["z1"]], [take(z) for z in data["z2"]]
    return CrossSelfLoss(TAU, ssl_scale=0.5)(z1, z2), _leaves(z1, z2), None


def _cmc(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    z1, z2 = [take(z) for z in data["z1"]], [take(z) for z in data["z2"]]
    return CMCLoss(TAU)(z1, z2), _leaves(z1, z2), None


def _supcon(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    views = [take(data["z1"][0]), take(data["z2"][0])]
    return SupConLoss(TAU)(views, take(data["labels"], grad=False)), _leaves(views), None


def _supcon_one_view(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    views = [take(data["z1"][0])]
    return SupConLoss(TAU)(views, take(data["labels_one_view"], grad=False)), _leaves(views), None


def _infmasking(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    z1, z2 = [take(z) for z in data["z1"]], [take(z) for z in data["z2"]]
    m1, m2 = (take(m, axis=1) for m in data["masked"])
    loss = InfMaskingLoss(TAU, mask_lambda=0.5)(z1, z2, m1, m2, epoch=1, max_epochs=3)
    return loss, _leaves(z1, z2) + _leaves([m1, m2], axis=1), None


def _factorcl(data: dict[str, Any], take: Take) -> tuple[Tensor, Leaves, nn.Module | None]:
    torch.manual_seed(5)  # the same critics on every rank and in the reference
    module = FactorCLLoss(N_MODALITIES, DIM, DIM, N_CLASSES, critic_hidden=8, critic_layers=1).double()
    parts = {key: [take(x) for x in xs] for key, xs in data["factors"].items()}
    targets = [take(t) for t in data["targets"]]
    loss = module(parts["shared"], parts["unique"], parts["shared_cond"], parts["unique_cond"], targets)
    return loss, _leaves(*parts.values(), targets), module


#: Every contrastive loss of ``commlearn.losses`` beyond InfoNCE and CoMM (tested on their own below).
LOSS_CASES: dict[str, Callable[[dict[str, Any], Take], tuple[Tensor, Leaves, nn.Module | None]]] = {
    "cross": _cross,
    "cross_self": _cross_self,
    "cmc": _cmc,
    "supcon": _supcon,
    "supcon_one_view": _supcon_one_view,
    "infmasking": _infmasking,
    "factorcl": _factorcl,
}


def _method(name: str) -> Any:
    """Method ``name`` for two vector modalities (no augmentation, no BatchNorm), the same on every rank."""
    from commlearn.methods.registry import build_method

    specs = [ModalitySpec(f"m{i}", "vector", (5,)) for i in range(N_MODALITIES)]
    model = ModelConfig(
        embed_dim=8, n_heads=2, head_hidden=[8], head_out=DIM, head_batch_norm=False, vector_dim=8
    )
    torch.manual_seed(11)
    return build_method(name, specs, model, None, None, TaskInfo("multiclass", N_CLASSES, 0)).double()


def _method_batch(data: dict[str, Any], take: Take) -> MultimodalBatch:
    inputs = [take(data["x1"], grad=False), take(data["x2"], grad=False)]
    return MultimodalBatch(inputs=inputs, labels=take(data["labels"], grad=False))


def _method_names() -> list[str]:
    from commlearn.methods.registry import METHODS

    return sorted(name for name in METHODS if name not in RANDOM_METHODS)


def _method_grads(method: nn.Module) -> dict[str, Tensor]:
    return {k: p.grad for k, p in method.named_parameters() if p.grad is not None}


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

        take = _take(rank)
        res["losses"] = {}
        for name, case in LOSS_CASES.items():
            loss, leaves, module = case(data, take)
            loss.backward()
            grads = {} if module is None else {k: p.grad for k, p in module.named_parameters()}
            res["losses"][name] = (loss.detach(), [x.grad for x, _ in leaves], grads)

        res["methods"] = {}
        for name in _method_names():
            method = _method(name)
            out = method.compute_loss(_method_batch(data, take))
            out.loss.backward()
            res["methods"][name] = (out.loss.detach(), _method_grads(method))
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


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_every_loss_and_its_grads_match_one_process(ranks: list[dict[str, Any]], name: str) -> None:
    """Loss: the mean over ranks; input gradients: W × the rows' single-process gradients; parameter gradients
    (FactorCL's critics): their mean over ranks (what DDP applies) is the single-process gradient."""
    loss, leaves, module = LOSS_CASES[name](_inputs(), _take(None))
    loss.backward()
    got = [r["losses"][name] for r in ranks]
    torch.testing.assert_close(torch.stack([g[0] for g in got]).mean(), loss.detach(), rtol=1e-10, atol=1e-12)
    for r, (_, grads, _) in enumerate(got):
        assert len(grads) == len(leaves)
        for grad, (leaf, axis) in zip(grads, leaves, strict=True):
            assert leaf.grad is not None and grad is not None
            expected = WORLD * leaf.grad.narrow(axis, r * B_LOCAL, B_LOCAL)
            torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    if module is not None:
        for key, p in module.named_parameters():
            assert p.grad is not None
            mean = torch.stack([g[2][key] for g in got]).mean(dim=0)
            torch.testing.assert_close(mean, p.grad, rtol=1e-9, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")


def test_supcon_one_view_ranks_hold_unequal_positive_counts() -> None:
    """The one-view SupCon case is the hard one: its ranks average over different numbers of anchors."""
    labels = _inputs()["labels_one_view"]
    with_positive = [
        (labels[None, :] == labels[:, None]).sum(1).gt(1)[r * B_LOCAL : (r + 1) * B_LOCAL].sum()
        for r in range(WORLD)
    ]
    assert [int(n) for n in with_positive] == [2, 3]


@pytest.mark.parametrize("name", _method_names())
def test_every_method_trains_as_one_process_on_the_global_batch(
    ranks: list[dict[str, Any]], name: str
) -> None:
    """``compute_loss`` of every registered method (a method added later included) on two ranks: the mean of the
    rank losses is the global batch's loss, and the mean of the parameter gradients (DDP's average) is its
    gradient — so DDP takes the single-process step."""
    method = _method(name)
    out = method.compute_loss(_method_batch(_inputs(), _take(None)))
    out.loss.backward()
    got = [r["methods"][name] for r in ranks]
    torch.testing.assert_close(
        torch.stack([g[0] for g in got]).mean(), out.loss.detach(), rtol=1e-9, atol=1e-12
    )
    expected = _method_grads(method)
    assert all(g[1].keys() == expected.keys() for g in got)
    for key, grad in expected.items():
        mean = torch.stack([g[1][key] for g in got]).mean(dim=0)
        torch.testing.assert_close(mean, grad, rtol=1e-8, atol=1e-10, msg=lambda m, k=key: f"{name} {k}: {m}")
