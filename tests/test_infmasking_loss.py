"""InfMasking: the loss against a slow NumPy re-statement, closed forms, gradients, mask draws, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from commlearn import dist
from commlearn.losses.comm import CoMMLoss
from commlearn.losses.infmasking import (
    InfMaskingLoss,
    draw_token_keep_masks,
    infmasking_term,
    num_kept_tokens,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lse(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _ref_nce(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Symmetric NT-Xent with intra-view negatives, one row at a time."""
    a, b = _unit(a), _unit(b)
    n = a.shape[0]
    total = 0.0
    for x, y in [(a, b), (b, a)]:
        for i in range(n):
            logits = [float(x[i] @ y[j]) / tau for j in range(n)]
            logits += [float(x[i] @ x[j]) / tau for j in range(n) if j != i]
            total += _lse(logits) - logits[i]
    return total / (2 * n)


def _ref_inf(q: np.ndarray, masked: np.ndarray, tau: float, lam: float) -> float:
    """One view's InfMasking term with an explicit covariance matrix per anchor."""
    q, k = _unit(q), _unit(masked)
    t_views, n, d = k.shape
    total = 0.0
    for i in range(n):
        mu = sum(k[t, i] for t in range(t_views)) / t_views
        sigma = np.zeros((d, d))
        for t in range(t_views):
            sigma += np.outer(k[t, i] - mu, k[t, i] - mu) / t_views
        positive = float(q[i] @ mu) / tau + lam * float(q[i] @ sigma @ q[i]) / (2 * tau**2)
        negatives = [float(q[i] @ k[t, j]) / tau for t in range(t_views) for j in range(n) if j != i]
        negatives += [float(q[i] @ q[j]) / tau for j in range(n) if j != i]
        total += -float(q[i] @ mu) / tau + _lse([positive, *negatives])
    return total / n


def _ref_total(
    z1: list[np.ndarray],
    z2: list[np.ndarray],
    m1: np.ndarray,
    m2: np.ndarray,
    tau: float,
    lam: float,
    weights: list[float] | None,
) -> float:
    terms = [_ref_inf(z1[-1], m1, tau, lam), _ref_inf(z2[-1], m2, tau, lam)]
    terms += [0.5 * (_ref_nce(z1[k], z2[-1], tau) + _ref_nce(z2[k], z1[-1], tau)) for k in range(len(z1))]
    w = [1.0] * len(terms) if weights is None else weights
    return sum(wi * ti for wi, ti in zip(w, terms, strict=True)) / len(terms)


def _inputs(
    b: int, d: int, n: int, t: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = [torch.randn(b, d, generator=g, dtype=dtype) for _ in range(n + 1)]
    z2 = [torch.randn(b, d, generator=g, dtype=dtype) for _ in range(n + 1)]
    # masked views scattered around the full embedding, as masked fusions of the same sample would be
    m1 = z1[-1] + 0.7 * torch.randn(t, b, d, generator=g, dtype=dtype)
    m2 = z2[-1] + 0.7 * torch.randn(t, b, d, generator=g, dtype=dtype)
    return z1, z2, m1, m2


def _np(xs: list[torch.Tensor]) -> list[np.ndarray]:
    return [x.detach().numpy() for x in xs]


GRID = list(itertools.product([2, 3, 5], [1, 2, 4], [0.05, 0.1, 0.5]))


@pytest.mark.parametrize("b,t,tau", GRID)
def test_matches_reference(b: int, t: int, tau: float) -> None:
    n = 2 if b != 3 else 3
    z1, z2, m1, m2 = _inputs(b, 6, n, t, seed=100 * b + 10 * t + int(100 * tau))
    loss = InfMaskingLoss(tau, mask_lambda=2.0)
    got = loss(z1, z2, m1, m2, epoch=3, max_epochs=10).item()
    want = _ref_total(_np(z1), _np(z2), m1.numpy(), m2.numpy(), tau, 2.0 * 4 / 10, None)
    assert got == pytest.approx(want, abs=1e-5, rel=1e-6)


@pytest.mark.parametrize("n", [1, 2])
def test_weighted_matches_reference_and_float32(n: int) -> None:
    z1, z2, m1, m2 = _inputs(4, 5, n, 3, seed=7 + n)
    weights = [1.0, 1.0] + [1.0] * n + [5.0]
    loss = InfMaskingLoss(0.1, mask_lambda=1.0, weights=weights)
    want = _ref_total(_np(z1), _np(z2), m1.numpy(), m2.numpy(), 0.1, 1.0, weights)
    assert loss(z1, z2, m1, m2, epoch=9, max_epochs=10).item() == pytest.approx(want, abs=1e-5)
    z1f, z2f = [z.float() for z in z1], [z.float() for z in z2]
    got32 = loss(z1f, z2f, m1.float(), m2.float(), epoch=9, max_epochs=10).item()
    assert got32 == pytest.approx(want, abs=1e-4)


def test_terms_match_reference() -> None:
    z1, z2, m1, m2 = _inputs(4, 5, 2, 3, seed=3)
    out = InfMaskingLoss(0.2, mask_lambda=0.5).compute(z1, z2, m1, m2, epoch=1, max_epochs=4)
    assert list(out.terms) == ["inf_v1", "inf_v2", "nce_m0", "nce_m1", "nce_full"]
    assert list(out.accuracies) == ["inf_v1", "inf_v2", "m0", "m1", "full"]
    lam = 0.5 * 2 / 4
    assert out.terms["inf_v1"].item() == pytest.approx(
        _ref_inf(z1[-1].numpy(), m1.numpy(), 0.2, lam), abs=1e-6
    )
    assert out.terms["inf_v2"].item() == pytest.approx(
        _ref_inf(z2[-1].numpy(), m2.numpy(), 0.2, lam), abs=1e-6
    )
    nce_full = _ref_nce(z1[-1].numpy(), z2[-1].numpy(), 0.2)
    assert out.terms["nce_full"].item() == pytest.approx(nce_full, abs=1e-6)
    assert all(not v.requires_grad for v in [*out.terms.values(), *out.accuracies.values()])
    assert all(0.0 <= v.item() <= 1.0 for v in out.accuracies.values())
    assert set(out.log_dict("train/")) >= {"train/loss", "train/inf_v1", "train/acc_inf_v2"}


def test_masked_views_as_list_or_tensor_and_order_free() -> None:
    z1, z2, m1, m2 = _inputs(3, 4, 2, 4, seed=11)
    loss = InfMaskingLoss(0.1)
    a = loss(z1, z2, m1, m2, epoch=0, max_epochs=2)
    b = loss(z1, z2, list(m1.flip(0)), list(m2), epoch=0, max_epochs=2)
    assert a.item() == pytest.approx(b.item(), abs=1e-12)


def test_comm_part_equals_comm_loss() -> None:
    z1, z2, m1, m2 = _inputs(4, 6, 2, 2, seed=5)
    got = InfMaskingLoss(0.1, weights=[0, 0, 1, 1, 1])(z1, z2, m1, m2, epoch=0, max_epochs=1)
    # CoMMLoss averages its 3 terms; InfMasking divides the same sum by n+3 = 5
    assert got.item() == pytest.approx(CoMMLoss(0.1)(z1, z2).item() * 3 / 5, abs=1e-10)


@pytest.mark.parametrize("b,t,tau", [(2, 1, 0.1), (4, 3, 0.5), (6, 5, 0.07)])
def test_identical_embeddings_closed_form(b: int, t: int, tau: float) -> None:
    e = torch.randn(1, 8, dtype=torch.float64).expand(b, 8)
    z = [e.clone() for _ in range(3)]
    masked = e.expand(t, b, 8).clone()
    out = InfMaskingLoss(tau, mask_lambda=3.0).compute(z, z, masked, masked, epoch=0, max_epochs=1)
    # every logit is 1/τ and Σ = 0: CE over 1 + (T+1)(B−1) equal logits; NT-Xent over 2B−1 equal logits
    inf = math.log(1 + (t + 1) * (b - 1))
    nce = math.log(2 * b - 1)
    assert out.terms["inf_v1"].item() == pytest.approx(inf, abs=1e-9)
    assert out.loss.item() == pytest.approx((2 * inf + 3 * nce) / 5, abs=1e-9)


def test_orthogonal_single_view_closed_form() -> None:
    b, tau = 4, 0.2
    eye = torch.eye(b, dtype=torch.float64)
    loss, acc = infmasking_term(eye, eye[None], tau, variance_weight=5.0)
    # positive q·k = 1, the 2(B−1) negatives are 0, and T = 1 has no variance
    assert loss.item() == pytest.approx(-1 / tau + math.log(math.exp(1 / tau) + 2 * (b - 1)), abs=1e-12)
    assert acc.item() == 1.0


def test_variance_correction_closed_form() -> None:
    # two masked views k = μ ± δ: q_iᵀΣ_i q_i = (q_i·δ_i)² with unit k; compare λ > 0 with λ = 0 analytically
    tau, lam = 0.1, 0.8
    q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    c, s = math.cos(0.3), math.sin(0.3)
    k = torch.tensor(
        [[[c, s, 0.0], [0.0, c, s]], [[c, -s, 0.0], [0.0, c, -s]]], dtype=torch.float64
    )  # (T=2, B=2, 3): μ_i = c·q_i, every q_iᵀ(k_t − μ) = 0 ⇒ Σ-term 0 for this q
    base, _ = infmasking_term(q, k, tau, 0.0)
    same, _ = infmasking_term(q, k, tau, lam)
    assert same.item() == pytest.approx(base.item(), abs=1e-12)
    # k_{1,0} = e1, k_{2,0} = e2 and k_{1,1} = e2, k_{2,1} = e3: q_iᵀμ_i = ½, q_iᵀΣ_i q_i = ¼ for both anchors
    e = torch.eye(3, dtype=torch.float64)
    k2 = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[1], e[2]])])
    loss, _ = infmasking_term(q, k2, tau, lam)
    pos = 0.5 / tau + lam * 0.25 / (2 * tau**2)
    row0 = -0.5 / tau + _lse([pos, 0.0, 0.0, 0.0])  # q_0 is orthogonal to e2, e3 and q_1
    row1 = -0.5 / tau + _lse([pos, 1 / tau, 0.0, 0.0])  # q_1 = e2 meets k_{2,0} = e2
    assert loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-12)


def test_lambda_ramp() -> None:
    loss = InfMaskingLoss(0.1, mask_lambda=2.0)
    assert [loss.variance_weight(e, 4) for e in range(4)] == [0.5, 1.0, 1.5, 2.0]


def test_gradients_match_finite_differences_of_reference() -> None:
    b, d, n, t, tau, lam = 3, 3, 1, 2, 0.3, 0.7
    z1, z2, m1, m2 = _inputs(b, d, n, t, seed=21)
    leaves = [x.clone().requires_grad_(True) for x in [*z1, *z2, m1, m2]]
    loss = InfMaskingLoss(tau, mask_lambda=lam, weights=[1.0, 2.0, 0.5, 1.5])
    out = loss(leaves[: n + 1], leaves[n + 1 : 2 * n + 2], leaves[-2], leaves[-1], epoch=0, max_epochs=1)
    grads = torch.autograd.grad(out, leaves)

    def ref(arrays: list[np.ndarray]) -> float:
        return _ref_total(
            arrays[: n + 1], arrays[n + 1 : 2 * n + 2], arrays[-2], arrays[-1], tau, lam, [1.0, 2.0, 0.5, 1.5]
        )

    base = [x.detach().numpy().copy() for x in leaves]
    h = 1e-6
    for a_idx, g in enumerate(grads):
        numeric = np.zeros_like(base[a_idx])
        for idx in np.ndindex(base[a_idx].shape):
            plus = [x.copy() for x in base]
            minus = [x.copy() for x in base]
            plus[a_idx][idx] += h
            minus[a_idx][idx] -= h
            numeric[idx] = (ref(plus) - ref(minus)) / (2 * h)
        np.testing.assert_allclose(g.numpy(), numeric, atol=1e-6)


def test_gradcheck_term() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, m: infmasking_term(a, m, 0.2, 1.3)[0], (q, k))


def test_rank_local_rows_average_to_global_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated 2-rank run: each rank holds B rows and "gathers" the other rank's (normalised) rows; the mean
    # of the rank losses must equal the single-process loss on the global batch (labels offset by rank · B).
    world, b, t, tau, lam = 2, 3, 2, 0.1, 0.6
    g = torch.Generator().manual_seed(8)
    q = torch.randn(world * b, 4, generator=g, dtype=torch.float64)
    k = q + 0.5 * torch.randn(t, world * b, 4, generator=g, dtype=torch.float64)
    want = infmasking_term(q, k, tau, lam)[0].item()
    q_n, k_n = F.normalize(q, dim=-1), F.normalize(k, dim=-1).transpose(0, 1)
    losses = []
    for r in range(world):

        def gather(x: torch.Tensor, r: int = r) -> torch.Tensor:
            full = q_n if x.ndim == 2 else k_n
            return torch.cat([x if s == r else full[s * b : (s + 1) * b] for s in range(world)])

        monkeypatch.setattr(dist, "gather_with_grad", gather)
        monkeypatch.setattr(dist, "rank", lambda r=r: r)
        rows = slice(r * b, (r + 1) * b)
        losses.append(infmasking_term(q[rows], k[:, rows], tau, lam)[0].item())
    assert sum(losses) / world == pytest.approx(want, abs=1e-12)


# ----------------------------------------------------------------------------------------------- mask draws


@pytest.mark.parametrize(
    "length,ratio,kept",
    [
        (36, 0.7, 10),
        (50, 0.8, 10),
        (10, 0.8, 2),
        (24, 0.8, 4),
        (128, 0.5, 64),
        (10, 0.9, 1),
        (1, 0.7, 1),
        (3, 0.0, 3),
        (5, 0.99, 1),
    ],
)
def test_num_kept_tokens(length: int, ratio: float, kept: int) -> None:
    assert num_kept_tokens(length, ratio) == kept


def test_draw_masks_shapes_counts_and_at_least_one() -> None:
    g = torch.Generator().manual_seed(0)
    masks = draw_token_keep_masks([36, 1, 7], batch_size=5, mask_ratio=0.8, n_views=4, generator=g)
    assert [tuple(m.shape) for m in masks] == [(4, 5, 36), (4, 5, 1), (4, 5, 7)]
    assert all(m.dtype == torch.bool for m in masks)
    for m, want in zip(masks, [7, 1, 1], strict=True):
        assert (m.sum(dim=-1) == want).all()


def test_draw_masks_reproducible_and_varied() -> None:
    def draw(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return draw_token_keep_masks([20, 12], batch_size=6, mask_ratio=0.5, n_views=3, generator=g)

    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    m = a[0].reshape(-1, 20)  # 18 rows of 10 kept out of 20: independent rows are almost never all equal
    assert len({tuple(r.tolist()) for r in m}) > 1


def test_draw_masks_uniform_positions() -> None:
    g = torch.Generator().manual_seed(3)
    (m,) = draw_token_keep_masks([8], batch_size=500, mask_ratio=0.75, n_views=4, generator=g)
    freq = m.float().mean(dim=(0, 1))  # each position kept with probability 2/8
    assert torch.allclose(freq, torch.full((8,), 0.25), atol=0.04)


def test_draw_masks_no_masking_keeps_everything() -> None:
    (m,) = draw_token_keep_masks([5], batch_size=2, mask_ratio=0.0)
    assert m.all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_tokens": [], "batch_size": 2, "mask_ratio": 0.5}, "at least one modality"),
        ({"n_tokens": [3, 0], "batch_size": 2, "mask_ratio": 0.5}, "at least 1 token"),
        ({"n_tokens": [3], "batch_size": 0, "mask_ratio": 0.5}, "batch_size"),
        ({"n_tokens": [3], "batch_size": 2, "mask_ratio": 1.0}, r"mask_ratio must be in \[0, 1\)"),
        ({"n_tokens": [3], "batch_size": 2, "mask_ratio": -0.1}, "mask_ratio"),
        ({"n_tokens": [3], "batch_size": 2, "mask_ratio": 0.5, "n_views": 0}, "n_views"),
        ({"n_tokens": [3], "batch_size": 2, "mask_ratio": 0.5, "device": "meta"}, "generator is on"),
    ],
)
def test_draw_masks_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        draw_token_keep_masks(**kwargs, generator=torch.Generator())


# ------------------------------------------------------------------------------------------------ loss errors


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="temperature"):
        InfMaskingLoss(0.0)
    with pytest.raises(ValueError, match="mask_lambda"):
        InfMaskingLoss(0.1, mask_lambda=-1.0)
    with pytest.raises(ValueError, match="weights"):
        InfMaskingLoss(0.1, weights=[1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        InfMaskingLoss(0.1, weights=[1.0, 1.0, 1.0])


def test_compute_errors() -> None:
    z1, z2, m1, m2 = _inputs(3, 4, 2, 2, seed=1)
    loss = InfMaskingLoss(0.1)
    kw = {"epoch": 0, "max_epochs": 2}
    with pytest.raises(ValueError, match="same number of embeddings"):
        loss(z1, z2[:2], m1, m2, **kw)
    with pytest.raises(ValueError, match="n\\+1 ≥ 2"):
        loss(z1[:1], z2[:1], m1, m2, **kw)
    with pytest.raises(ValueError, match="same number T"):
        loss(z1, z2, m1, m2[:1], **kw)
    with pytest.raises(ValueError, match="at least one masked"):
        loss(z1, z2, [], m2, **kw)
    with pytest.raises(ValueError, match=r"\(T, B, d\)"):
        loss(z1, z2, m1[0], m2, **kw)
    with pytest.raises(ValueError, match="masked must be"):
        loss(z1, z2, m1[:, :2], m2, **kw)
    with pytest.raises(ValueError, match="one shape"):
        loss(z1, z2, [m1[0], m1[1, :, :3]], m2, **kw)
    with pytest.raises(ValueError, match="needs n\\+3 = 5"):
        InfMaskingLoss(0.1, weights=[1.0] * 4)(z1, z2, m1, m2, **kw)
    with pytest.raises(ValueError, match="epoch must be in 0..1"):
        loss(z1, z2, m1, m2, epoch=2, max_epochs=2)
    with pytest.raises(ValueError, match="max_epochs"):
        loss(z1, z2, m1, m2, epoch=0, max_epochs=0)
    bad = m1.clone()
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(z1, z2, bad, m2, **kw)
    with pytest.raises(ValueError, match="at least 2 samples"):
        loss([z[:1] for z in z1], [z[:1] for z in z2], m1[:, :1], m2[:, :1], **kw)
    with pytest.raises(ValueError, match="variance_weight"):
        infmasking_term(z1[-1], m1, 0.1, -0.5)
