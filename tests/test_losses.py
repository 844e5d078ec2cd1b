"""Losses against an independent slow NumPy reference, closed forms, symmetry and gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from commlearn.losses import CoMMLoss, CrossLoss, CrossSelfLoss, info_nce, nce_with_accuracy


def _ref_nce(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Slow loop version of DESIGN §3's NCE, float64."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    n = a.shape[0]
    total = 0.0
    for x, y in [(a, b), (b, a)]:
        for i in range(n):
            logits = []
            for j in range(n):
                logits.append(float(x[i] @ y[j]) / tau)  # cross-view column j
            for j in range(n):
                if j != i:
                    logits.append(float(x[i] @ x[j]) / tau)  # intra-view negatives, self excluded
            m = max(logits)
            lse = m + np.log(sum(np.exp(v - m) for v in logits))
            total += lse - logits[i]
    return total / (2 * n)


def _ref_comm(z1: list[np.ndarray], z2: list[np.ndarray], tau: float, weights: list[float] | None) -> float:
    k = len(z1)
    w = [1.0 / k] * k if weights is None else [x / sum(weights) for x in weights]
    return sum(w[i] * 0.5 * (_ref_nce(z1[i], z2[-1], tau) + _ref_nce(z2[i], z1[-1], tau)) for i in range(k))


@pytest.mark.parametrize("b,d,tau", list(itertools.product([2, 3, 8], [1, 5, 32], [0.05, 0.1, 1.0])))
def test_info_nce_matches_reference(b: int, d: int, tau: float) -> None:
    g = torch.Generator().manual_seed(b * 100 + d)
    a, c = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    got = info_nce(a, c, tau).item()
    assert got == pytest.approx(_ref_nce(a.double().numpy(), c.double().numpy(), tau), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("b,d,n,tau", [(2, 4, 1, 0.1), (4, 8, 2, 0.1), (6, 3, 3, 0.5), (5, 16, 4, 0.07)])
@pytest.mark.parametrize("weighted", [False, True])
def test_comm_loss_matches_reference(b: int, d: int, n: int, tau: float, weighted: bool) -> None:
    g = torch.Generator().manual_seed(n * 10 + b)
    z1 = [torch.randn(b, d, generator=g) for _ in range(n + 1)]
    z2 = [torch.randn(b, d, generator=g) for _ in range(n + 1)]
    weights = [float(i + 1) for i in range(n + 1)] if weighted else None
    got = CoMMLoss(tau, weights)(z1, z2).item()
    want = _ref_comm([z.double().numpy() for z in z1], [z.double().numpy() for z in z2], tau, weights)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_identical_views_closed_form() -> None:
    # Orthogonal unit embeddings, a == b: positive logit 1/τ, 2B-2 negatives at 0 →
    # loss = log(e^{1/τ} + 2B - 2) - 1/τ.
    b, tau = 4, 0.5
    a = torch.eye(b)
    want = np.log(np.exp(1 / tau) + 2 * b - 2) - 1 / tau
    assert info_nce(a, a.clone(), tau).item() == pytest.approx(want, rel=1e-5)
    loss, acc = nce_with_accuracy(a, a.clone(), tau)
    assert acc.item() == 1.0


def test_symmetry_and_scale_invariance() -> None:
    a, b = torch.randn(7, 5), torch.randn(7, 5)
    assert info_nce(a, b).item() == pytest.approx(info_nce(b, a).item(), rel=1e-6)
    assert info_nce(3 * a, 0.5 * b).item() == pytest.approx(info_nce(a, b).item(), rel=1e-5)
    perm = torch.randperm(7)
    assert info_nce(a[perm], b[perm]).item() == pytest.approx(info_nce(a, b).item(), rel=1e-5)


def test_gradients_match_float64_autograd_and_finite_differences() -> None:
    torch.manual_seed(0)
    z1 = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    z2 = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    loss_fn = CoMMLoss(0.2)
    assert torch.autograd.gradcheck(lambda *zs: loss_fn(list(zs[:3]), list(zs[3:])), (*z1, *z2))
    # float32 gradients agree with the float64 ones
    f32 = [z.detach().float().requires_grad_() for z in (*z1, *z2)]
    loss_fn(f32[:3], f32[3:]).backward()
    loss_fn(list(z1), list(z2)).backward()
    for a, b in zip(f32, (*z1, *z2), strict=True):
        assert torch.allclose(a.grad.double(), b.grad, atol=1e-5)  # type: ignore[union-attr]


def test_comm_terms_and_accuracies_are_reported() -> None:
    z1 = [torch.randn(6, 4) for _ in range(3)]
    z2 = [z.clone() for z in z1]
    out = CoMMLoss().compute(z1, z2)
    assert set(out.terms) == {"nce_m0", "nce_m1", "nce_full"}
    assert set(out.accuracies) == {"m0", "m1", "full"}
    assert out.accuracies["full"].item() == 1.0  # identical full views retrieve each other
    assert out.loss.item() == pytest.approx(sum(out.terms.values()).item() / 3, rel=1e-5)


def test_cross_losses_against_reference() -> None:
    g = torch.Generator().manual_seed(3)
    zs = [torch.randn(5, 4, generator=g) for _ in range(3)]
    npz = [z.double().numpy() for z in zs]
    pairs = [(0, 1), (0, 2), (1, 2)]
    want = sum(_ref_nce(npz[i], npz[j], 0.1) for i, j in pairs) / 3
    assert CrossLoss(0.1)(zs).item() == pytest.approx(want, rel=1e-5)
    ws = [torch.randn(5, 4, generator=g) for _ in range(3)]
    npw = [w.double().numpy() for w in ws]
    cross2 = sum(_ref_nce(npw[i], npw[j], 0.1) for i, j in pairs) / 3
    self_terms = sum(_ref_nce(npz[i], npw[i], 0.1) for i in range(3))
    got = CrossSelfLoss(0.1, ssl_scale=0.5)(zs, ws).item()
    assert got == pytest.approx(0.5 * (want + cross2) + 0.5 * 0.5 * self_terms, rel=1e-5)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: info_nce(torch.randn(1, 4), torch.randn(1, 4)), "at least 2 samples"),
        (lambda: info_nce(torch.randn(4, 3), torch.randn(5, 3)), "equal shapes"),
        (lambda: info_nce(torch.randn(4), torch.randn(4)), "2-d"),
        (lambda: info_nce(torch.full((3, 2), float("nan")), torch.randn(3, 2)), "NaN or Inf"),
        (lambda: info_nce(torch.randn(3, 2), torch.randn(3, 2), temperature=0), "temperature must be > 0"),
        (lambda: CoMMLoss()([torch.randn(3, 2)] * 3, [torch.randn(3, 2)] * 2), "same number of embeddings"),
        (lambda: CoMMLoss()([torch.randn(3, 2)], [torch.randn(3, 2)]), "n\\+1 ≥ 2"),
        (lambda: CoMMLoss(weights=[1, 1])([torch.randn(3, 2)] * 3, [torch.randn(3, 2)] * 3), "2 weights"),
        (lambda: CoMMLoss(weights=[-1, 1]), "non-negative"),
        (lambda: CrossLoss()([torch.randn(3, 2)]), "at least 2 modalities"),
    ],
)
def test_bad_input_errors(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
