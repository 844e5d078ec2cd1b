"""The loss-memory benchmark's simulated ranks: they leave ``commlearn.dist`` as it was, give a rank the
shapes of a real gather, and its memory grows as B_local · B_global while the whole batch's grows as B_global²."""

from __future__ import annotations

import torch

from bench_dist import loss_memory, simulated_ranks
from commlearn import dist
from commlearn.losses import info_nce


def test_simulated_ranks_gather_world_copies_and_restore_dist() -> None:
    before = (dist.world_size, dist.rank, dist.gather_with_grad, dist.sum_over_ranks)
    x = torch.randn(3, 2, requires_grad=True)
    with simulated_ranks(4):
        assert dist.world_size() == 4 and dist.rank() == 0
        assert dist.gather_with_grad(x).shape == (12, 2)
        info_nce(x, x + 0.1).backward()  # runs with a (3, 12) logits block per view pair
    assert (dist.world_size, dist.rank, dist.gather_with_grad, dist.sum_over_ranks) == before
    assert x.grad is not None


def test_rows_memory_grows_linearly_the_whole_batch_quadratically() -> None:
    cpu = torch.device("cpu")
    rows = [loss_memory(16, w, 32, "rows", cpu) for w in (2, 4, 8)]
    whole = [loss_memory(16, w, 32, "whole", cpu) for w in (2, 4, 8)]
    assert all(r < w for r, w in zip(rows[1:], whole[1:], strict=True))
    assert rows[2] / rows[1] < 2.2 and whole[2] / whole[1] > 3.0
